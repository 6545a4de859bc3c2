import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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

  beforeAll(async () => {
    rig = await WebhookRig.start('sqlite', { sqliteWalSync: sync.factory });
  });
  afterAll(async () => {
    sync.state.hold = false;
    sync.release();
    await rig?.close();
  });

  it('resolves with the sync held, and the succeeded event reaches the endpoint only after the sync returns', async () => {
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
    // Leased and asked, as the worker leaves a withdrawal before it applies the channel's answer.
    const leaseMs = Date.now() + 60_000;
    await h.rt.store.db.updateTable('withdrawals').set({ payout_lease_ms: leaseMs, payout_phase: 'query' }).where('id', '=', id).execute();
    const { payout_round: round } = await h.rt.store.db.selectFrom('withdrawals').select('payout_round').where('id', '=', id).executeTakeFirstOrThrow();
    const seen = receiver.requests.length;

    sync.state.hold = true;
    let applied: boolean | null = null;
    void applyPayoutResult(h.rt, { id, round, leaseMs }, { kind: 'succeeded' }, h.merchant.account, { answerAt: 'committed' }).then((a) => (applied = a));
    await vi.waitFor(() => expect(applied).toBe(true));
    expect(sync.state.held.length).toBeGreaterThan(0); // its batch's sync has not returned

    const drained = rig.dispatcher().drain();
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(receiver.requests.length).toBe(seen);

    sync.state.hold = false;
    sync.release();
    expect(await drained).toBe(1);
    const sent = receiver.requests.slice(seen).map((r) => r.event);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ type: 'balance.withdrawal.succeeded', data: { object: { id, status: 'succeeded' } } });
  });
});
