import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyPayoutResult } from '../src/services/withdrawals.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { heldWalSync } from './helpers/wal-sync.ts';
import { WebhookRig } from './helpers/webhooks.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/**
 * The payout worker applies a channel's result with `answerAt: 'committed'` (channels/worker.ts):
 * it goes on at its batch's COMMIT, while the WAL sync is still in flight. That is safe only if
 * nothing of the result leaves the process before it is durable: the webhook it queued must wait
 * for the sync (the dispatcher sends only what a durable claim gave it).
 */
describe('SQLite: a payout result taken at COMMIT; its webhook leaves only once it is durable', () => {
  const sync = heldWalSync();
  let rig: WebhookRig;

  beforeEach(async () => {
    rig = await WebhookRig.start('sqlite', { sqliteWalSync: sync.factory });
  });
  afterEach(async () => {
    sync.state.hold = false;
    sync.release();
    await rig.close();
  });

  /** A confirmed withdrawal, leased and asked as the worker leaves it before it applies the channel's answer. */
  async function leasedWithdrawal(): Promise<{ id: string; round: number; leaseMs: number; seen: number }> {
    const { h, receiver } = rig;
    await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url: receiver.urlFor('/payouts') });
    await h.createUser('pr_user');
    await h.fund('pr_user', 10_000);
    const created = await h.request('POST', h.appPath('/withdrawals'), {
      body: { user: 'pr_user', amount: 100, channel: 'wx_pub', order_no: orderNo(), extra: seedExtra('wx_pub', sandboxPayee('wx_pub', '')) },
    });
    expect(created.status, created.body).toBe(200);
    const id = created.json.id as string;
    expect((await h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })).status).toBe(200);
    const leaseMs = Date.now() + 60_000;
    await h.rt.store.db.updateTable('withdrawals').set({ payout_lease_ms: leaseMs, payout_phase: 'query' }).where('id', '=', id).execute();
    const { payout_round: round } = await h.rt.store.db.selectFrom('withdrawals').select('payout_round').where('id', '=', id).executeTakeFirstOrThrow();
    return { id, round, leaseMs, seen: receiver.requests.length };
  }

  /** Applies `succeeded` at COMMIT with the sync held; resolves once it has (its batch's sync still held). */
  async function applyWithSyncHeld(w: { id: string; round: number; leaseMs: number }): Promise<void> {
    sync.state.hold = true;
    let applied: boolean | null = null;
    void applyPayoutResult(rig.h.rt, { id: w.id, round: w.round, leaseMs: w.leaseMs }, { kind: 'succeeded' }, rig.h.merchant.account, { answerAt: 'committed' }).then((a) => (applied = a));
    await vi.waitFor(() => expect(applied).toBe(true));
    expect(sync.state.held.length).toBeGreaterThan(0); // its batch's sync has not returned
  }

  /**
   * Nothing reaches the endpoint for a second while the dispatcher works: with the guards taken out
   * (the claim and the reads answered before the sync), the event arrived well within it.
   */
  const nothingSentFor = async (seen: number) =>
    expect(vi.waitFor(() => expect(rig.receiver.requests.length).toBeGreaterThan(seen), { timeout: 1_000, interval: 20 })).rejects.toThrow();

  it('resolves with the sync held, and the succeeded event reaches the endpoint only after the sync returns', async () => {
    const { receiver } = rig;
    const w = await leasedWithdrawal();
    await applyWithSyncHeld(w);

    const drained = rig.dispatcher().drain();
    await nothingSentFor(w.seen);

    sync.state.hold = false;
    sync.release();
    expect(await drained).toBe(1);
    const sent = receiver.requests.slice(w.seen).map((r) => r.event);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ type: 'balance.withdrawal.succeeded', data: { object: { id: w.id, status: 'succeeded' } } });
  });

  it('a result whose sync then fails is never told to the endpoint: the dispatcher fails instead of sending it', async () => {
    const w = await leasedWithdrawal();
    await applyWithSyncHeld(w);

    const drained = rig.dispatcher().drain();
    await nothingSentFor(w.seen);
    sync.state.hold = false;
    sync.state.held.splice(0).forEach((run) => run(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
    await expect(drained).rejects.toThrow(/could not make a commit durable/);
    await nothingSentFor(w.seen);
  });
});
