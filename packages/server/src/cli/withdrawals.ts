import type { Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import { findStuckWithdrawals, STUCK_LIMIT_MAX, type StuckReport } from '../services/withdrawals_stuck.ts';
import { requireApp, storageOptions, UsageError, withRuntime } from './shared.ts';

export interface StuckFlags extends ConfigFlags {
  app?: string;
  olderThan: string;
  limit: string;
  json?: boolean;
}

/**
 * `tixian withdrawals stuck [--app APP_ID] [--older-than 30m] [--json]`: confirmed withdrawals whose
 * payout has no final answer yet, for an operator or a cron job (exit 1 when any is found).
 */
export function registerWithdrawalCommands(program: Command): void {
  const withdrawals = program.command('withdrawals').description('withdrawals and their payouts');
  storageOptions(
    withdrawals
      .command('stuck')
      .description('list confirmed (pending) withdrawals older than a bound whose payout has no final answer; exit 1 when any')
      .option('--app <app_id>', 'only this app')
      .option('--older-than <duration>', 'age bound, e.g. 30m, 2h, 1d (counted from the confirm)', '30m')
      .option('--limit <n>', `at most this many (1..${STUCK_LIMIT_MAX})`, '200')
      .option('--json', 'print JSON'),
  ).action(async (opts: StuckFlags) => {
    const report = await stuckWithdrawals(opts);
    console.log(opts.json ? JSON.stringify(report, null, 2) : formatStuck(report));
    process.exitCode = report.withdrawals.length > 0 ? 1 : 0;
  });
}

export async function stuckWithdrawals(opts: StuckFlags): Promise<StuckReport> {
  let olderThanMs: number | undefined;
  try {
    olderThanMs = durationMsFrom(opts.olderThan, '--older-than', 0, 365 * 86_400_000);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > STUCK_LIMIT_MAX) throw new UsageError(`--limit must be an integer in 1..${STUCK_LIMIT_MAX}, got ${opts.limit}`);
  return withRuntime(opts, async (rt) => {
    if (opts.app !== undefined) await requireApp(rt, opts.app);
    return findStuckWithdrawals(rt, { ...(opts.app !== undefined ? { app: opts.app } : {}), olderThanMs: olderThanMs ?? 30 * 60_000, limit });
  });
}

export function formatStuck(report: StuckReport): string {
  if (report.withdrawals.length === 0) return `no stuck withdrawals (pending longer than ${report.older_than_s} s)`;
  const lines = [`${report.withdrawals.length}${report.has_more ? '+' : ''} withdrawal(s) pending longer than ${report.older_than_s} s:`];
  for (const w of report.withdrawals) {
    const next = w.next_try_at === null ? '-' : new Date(w.next_try_at * 1000).toISOString();
    lines.push(
      `  ${w.id}  ${w.app} ${w.livemode ? 'live' : 'test'}  ${w.channel}  ${w.amount} fen  age ${w.age_s} s  ` +
        `phase ${w.payout_phase ?? '-'}  tries ${w.payout_tries}  next ${next}\n    ${w.last_answer}` +
        `\n    channel said: ${w.channel_answer ?? '(nothing yet)'}` +
        (w.channel_answer_at === null ? '' : `  at ${new Date(w.channel_answer_at * 1000).toISOString()}`),
    );
  }
  if (report.has_more) lines.push('  … more: raise --limit or narrow with --app');
  return lines.join('\n');
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration with its unit, e.g. `500ms`, `1s`, `30m`, `2h`, `1d`; the unit is required. */
export function durationMsFrom(value: string | undefined, name: string, minMs: number, maxMs: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_UNITS_MS[m[2]!]! : NaN;
  if (!(ms >= minMs && ms <= maxMs)) throw new Error(`${name} must be a duration like 1s or 30m, from ${minMs} ms to ${maxMs} ms, got ${value}`);
  return ms;
}
