import type { WithdrawalChannel } from '@tixian/sdk';
import type { Store } from '../store/db.ts';
import type { Clock } from '../clock.ts';
import { payeeAccount } from '../domain/channels.ts';
import type { ChannelDriver, DriverRegistry, PayoutOrder, PayoutOutcome } from './driver.ts';
import type { LiveDrivers } from './live.ts';

/**
 * The test-mode channel: no money moves. Like a real channel it remembers each order by its key
 * (in `sandbox_payouts`), so a repeated submit pays once. The outcome is chosen by the payee's
 * identifier (account or open_id), like a payment provider's test card numbers:
 *
 *   ends in 0002 or fail_user      → failed, the user's fault (hold returned to the user)
 *   ends in 0003 or fail_merchant  → back to `created`, not the user's fault (the merchant's payout
 *                                    account is short on the first confirm; confirming again succeeds)
 *   ends in 0004 or unknown        → the submit answer is lost (timeout); a query then finds it succeeded
 *   anything else                  → succeeded
 *
 * Each outcome is available `delayMs` after the submit; until then the order is processing.
 */
export type SandboxBehaviour = 'succeed' | 'fail_user' | 'fail_merchant' | 'unknown';

export function sandboxBehaviour(payee: string): SandboxBehaviour {
  const p = payee.toLowerCase();
  if (p.endsWith('0002') || p.endsWith('fail_user')) return 'fail_user';
  if (p.endsWith('0003') || p.endsWith('fail_merchant')) return 'fail_merchant';
  if (p.endsWith('0004') || p.endsWith('unknown')) return 'unknown';
  return 'succeed';
}

export class SandboxDriver implements ChannelDriver {
  readonly name = 'sandbox';

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly delayMs: number,
  ) {}

  async submit(order: PayoutOrder): Promise<PayoutOutcome> {
    const payee = payeeAccount(order.channel, order.extra);
    await this.store.oneStatement((db) =>
      db
        .insertInto('sandbox_payouts')
        .values({ key: order.key, withdrawal_id: order.withdrawalId, recipient: payee, amount: order.amount, submitted_ms: this.clock.nowMs(), queries: 0, submits: 1 })
        // A repeat leaves the order as it was (a channel pays a key once) but is counted.
        .onConflict((oc) => oc.column('key').doUpdateSet((eb) => ({ submits: eb('sandbox_payouts.submits', '+', 1) })))
        .execute());
    if (sandboxBehaviour(payee) === 'unknown') return { kind: 'unknown', message: 'sandbox: the answer to this submit was lost' };
    return this.outcome(order.key);
  }

  async query(order: PayoutOrder): Promise<PayoutOutcome> {
    const row = await this.store.db.selectFrom('sandbox_payouts').select('key').where('key', '=', order.key).executeTakeFirst();
    if (!row) return { kind: 'not_found' };
    await this.store.oneStatement((db) => db.updateTable('sandbox_payouts').set((eb) => ({ queries: eb('queries', '+', 1) })).where('key', '=', order.key).execute());
    return this.outcome(order.key);
  }

  private async outcome(key: string): Promise<PayoutOutcome> {
    const row = await this.store.db.selectFrom('sandbox_payouts').selectAll().where('key', '=', key).executeTakeFirstOrThrow();
    const readyMs = row.submitted_ms + this.delayMs;
    const now = this.clock.nowMs();
    if (now < readyMs) return { kind: 'processing', retryAfterMs: readyMs - now };
    switch (sandboxBehaviour(row.recipient)) {
      case 'fail_user':
        return { kind: 'failed', blame: 'user', message: 'sandbox: the payee account is invalid (test value ending in 0002)' };
      case 'fail_merchant':
        // Only the first round fails: later rounds carry a suffixed key (see payoutKey).
        if (row.key !== row.withdrawal_id) return { kind: 'succeeded' };
        return { kind: 'failed', blame: 'merchant', message: "sandbox: the merchant's payout account is short of funds (test value ending in 0003)" };
      default:
        return { kind: 'succeeded' };
    }
  }
}

/**
 * Test mode pays through the sandbox on every channel; live mode through `live` (the real drivers,
 * channels/live.ts), which has none for a channel without a driver.
 */
export class DefaultDrivers implements DriverRegistry {
  private readonly sandbox: ChannelDriver;
  constructor(store: Store, clock: Clock, sandboxDelayMs: number, private readonly live: LiveDrivers | null = null) {
    const sandbox = new SandboxDriver(store, clock, sandboxDelayMs);
    this.sandbox = live ? live.testMode(sandbox) : sandbox;
  }
  driverFor(channel: WithdrawalChannel, livemode: boolean): ChannelDriver | null {
    return livemode ? (this.live?.driverFor(channel) ?? null) : this.sandbox;
  }
}
