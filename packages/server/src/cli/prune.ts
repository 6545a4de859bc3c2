import type { Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import { pruneHistory } from '../store/prune.ts';
import { storageOptions, UsageError, withRuntime } from './shared.ts';

/**
 * `tixian prune --before DATE`: deletes history nothing needs any more (see store/prune.ts for
 * exactly what). Never the ledger, withdrawals or any other API object.
 */
export function registerPruneCommand(program: Command): void {
  storageOptions(
    program
      .command('prune')
      .description('delete finished webhook history (events whose deliveries are final, their deliveries and attempts) and sandbox payout records of final withdrawals, older than a date')
      .requiredOption('--before <date>', 'YYYY-MM-DD (UTC midnight) or an ISO 8601 time; must not be in the future')
      .option('--json', 'print JSON'),
  ).action(async (opts: ConfigFlags & { before: string; json?: boolean }) => {
    const beforeMs = parseBefore(opts.before, Date.now());
    const report = await withRuntime(opts, (rt) => pruneHistory(rt.store, beforeMs));
    if (opts.json) console.log(JSON.stringify(report));
    else {
      console.log(
        `pruned before ${new Date(beforeMs).toISOString()}: ${report.events} events, ${report.webhook_deliveries} deliveries, ` +
          `${report.webhook_attempts} attempts, ${report.sandbox_payouts} sandbox payouts${report.complete ? '' : ' (stopped at the batch bound: run it again for the rest)'}`,
      );
    }
  });
}

export function parseBefore(text: string, nowMs: number): number {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(ms)) throw new UsageError(`--before must be YYYY-MM-DD or an ISO 8601 time, got ${JSON.stringify(text.slice(0, 40))}`);
  if (ms > nowMs) throw new UsageError(`--before ${text} is in the future`);
  return ms;
}
