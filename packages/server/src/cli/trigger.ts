import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Argument, type Command } from 'commander';
import type { Withdrawal } from '@tixian/sdk';
import type { ConfigFlags } from '../config.ts';
import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';
import { createUser } from '../services/users.ts';
import { createBalanceSettlement } from '../services/balance_settlements.ts';
import { cancelWithdrawal, confirmWithdrawal, createWithdrawal, retrieveWithdrawal } from '../services/withdrawals.ts';
import { PayoutWorker } from '../channels/worker.ts';
import { storageOptions, UsageError, withRuntime } from './shared.ts';

/**
 * `tixian trigger EVENT --app APP_ID`: makes something happen in test mode so a merchant can see
 * their webhook handler run, like `stripe trigger`. It goes through the same services as the API
 * (a test user, a balance_settlement, a withdrawal on the sandbox channel, confirm or cancel), runs
 * the payout here until the sandbox answers, and prints the event it produced. A running
 * `tixian serve` (or any dispatcher on this database) delivers the webhook.
 *
 * Test mode only: the sandbox moves no money. The failing case uses the sandbox's test payee
 * ending in 0002 (the payee account is invalid: the user's fault, the hold is returned).
 */

export const TRIGGERS = ['balance.withdrawal.succeeded', 'balance.withdrawal.failed', 'balance.withdrawal.canceled', 'balance.withdrawal.created'] as const;
type Trigger = (typeof TRIGGERS)[number];

const DEFAULT_AMOUNT_FEN = 1_000;
const MAX_AMOUNT_FEN = 100_000_000;
/** The payout waits for the sandbox's outcome (TIXIAN_SANDBOX_DELAY_MS) plus this much, then gives up. */
const PAYOUT_WAIT_EXTRA_MS = 30_000;
const PAYOUT_POLL_MS = 50;

export function registerTriggerCommand(program: Command): void {
  storageOptions(
    program
      .command('trigger')
      .description('make a test-mode withdrawal reach an event, to exercise your webhook endpoint')
      .addArgument(new Argument('<event>', 'what to trigger').choices(TRIGGERS))
      .requiredOption('--app <app_id>', 'app id (its test mode is used)')
      .option('--amount <fen>', 'withdrawal amount in fen', String(DEFAULT_AMOUNT_FEN))
      .option('--json', 'print JSON'),
  ).action(async (event: string, opts: ConfigFlags & { app: string; amount: string; json?: boolean }) => {
    if (!(TRIGGERS as readonly string[]).includes(event)) throw new UsageError(`unknown trigger ${event}; one of: ${TRIGGERS.join(', ')}`);
    const amount = Number(opts.amount);
    if (!Number.isInteger(amount) || amount < 1 || amount > MAX_AMOUNT_FEN) throw new UsageError(`--amount must be an integer in 1..${MAX_AMOUNT_FEN} (fen), got ${opts.amount}`);
    await withRuntime(opts, async (rt) => {
      const result = await trigger(rt, opts.app, event as Trigger, amount);
      if (opts.json) console.log(JSON.stringify(result, null, 2));
      else for (const line of result.lines) console.log(line);
    });
  });
}

export interface TriggerResult {
  user: string;
  withdrawal: Withdrawal;
  /** The event the withdrawal produced; null for states tixian emits no event for. */
  event: { id: string; type: string; pending_webhooks: number } | null;
  lines: string[];
}

export async function trigger(rt: Runtime, appId: string, what: Trigger, amount: number): Promise<TriggerResult> {
  const app = await rt.store.db.selectFrom('apps').select(['id', 'account_id']).where('id', '=', appId).executeTakeFirst();
  if (!app) throw new UsageError(`no such app: ${appId}`);
  const scope: Scope = { accountId: app.account_id, app: app.id, livemode: false, requestId: null };
  const tag = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const userId = `trigger_${tag}`;
  const lines: string[] = [];

  await createUser(rt, scope, { id: userId, name: 'tixian trigger', metadata: { tixian_trigger: what } });
  await createBalanceSettlement(rt, scope, { user: userId, amount, order_no: `trgs${tag}`, description: `tixian trigger ${what}` });
  lines.push(`test user ${userId} credited ${amount} fen`);
  // The sandbox decides by the payee: ending in 0002 fails the payout (the user's account is invalid).
  const payee = what === 'balance.withdrawal.failed' ? `trigger${tag}0002` : `trigger${tag}@example.com`;
  let w = await createWithdrawal(rt, scope, {
    user: userId, amount, channel: 'alipay', extra: { account: payee, name: 'tixian trigger' }, order_no: `trgw${tag}`, description: `tixian trigger ${what}`,
  });
  lines.push(`withdrawal ${w.id} created`);
  const startedS = Math.floor(rt.clock.nowMs() / 1000) - 1;

  if (what === 'balance.withdrawal.canceled') {
    w = await cancelWithdrawal(rt, scope, w.id);
    lines.push(`withdrawal ${w.id} canceled`);
  } else if (what !== 'balance.withdrawal.created') {
    await confirmWithdrawal(rt, scope, w.id);
    lines.push(`withdrawal ${w.id} confirmed; paying out on the sandbox channel`);
    w = await runPayout(rt, scope, w.id);
    lines.push(`withdrawal ${w.id} ${w.status}${w.failure_msg ? `: ${w.failure_msg}` : ''}`);
  }

  const event = await findEvent(rt, scope, w.id, startedS);
  if (event) {
    lines.push(`event ${event.id} ${event.type}: queued for ${event.pending_webhooks} webhook endpoint(s); a running tixian serve delivers it`);
    lines.push(`  see its tries: tixian events deliveries ${event.id}`);
  } else {
    lines.push(`no event: tixian sends webhooks for balance.withdrawal.succeeded and balance.withdrawal.failed only (as Ping++ documents)`);
  }
  return { user: userId, withdrawal: w, event, lines };
}

/**
 * Pays out this one withdrawal here until it is final (bounded by the sandbox delay). A worker
 * running in this process may take it first; then this waits for that worker's answer.
 */
async function runPayout(rt: Runtime, scope: Scope, id: string): Promise<Withdrawal> {
  const worker = new PayoutWorker(rt, { only: id });
  const deadline = Date.now() + rt.config.sandboxDelayMs + PAYOUT_WAIT_EXTRA_MS;
  for (;;) {
    await worker.runOnce();
    const w = await retrieveWithdrawal(rt, scope, id);
    if (w.status !== 'pending') return w;
    if (Date.now() > deadline) throw new Error(`withdrawal ${id} still pending after ${rt.config.sandboxDelayMs + PAYOUT_WAIT_EXTRA_MS} ms`);
    // The sandbox answers after its delay; nothing in this process can wake us sooner.
    await sleep(PAYOUT_POLL_MS);
  }
}

async function findEvent(rt: Runtime, scope: Scope, withdrawalId: string, sinceS: number) {
  const rows = await rt.store.db
    .selectFrom('events')
    .select(['id', 'type', 'body', 'pending_webhooks'])
    .where('app', '=', scope.app)
    .where('livemode', '=', 0)
    .where('created', '>=', sinceS)
    .orderBy('created', 'desc')
    .limit(200)
    .execute();
  const mine = rows.find((r) => (JSON.parse(r.body) as { data: { object: { id?: string } } }).data.object.id === withdrawalId);
  return mine ? { id: mine.id, type: mine.type, pending_webhooks: mine.pending_webhooks } : null;
}
