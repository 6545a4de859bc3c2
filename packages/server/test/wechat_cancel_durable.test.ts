import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PayoutWorker } from '../src/channels/worker.ts';
import type { Harness } from './helpers/harness.ts';
import { startLivePayouts } from './helpers/channels.ts';
import { heldWalSync } from './helpers/wal-sync.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * The API takes a cancel's outcome at its batch's COMMIT (group-commit.ts, answerAt 'committed'),
 * before the batch is durable. A cancel that finds a WeChat bill waiting for the payee asks WeChat
 * to give the bill up, and that call leaves the process: it must wait until what the cancel read
 * is durable, or a power cut could take back the state WeChat was told about. Two things see to
 * it: the cancel awaits `committedDurable()` (services/withdrawals.ts), and its read of the
 * credentials outside a transaction waits for the syncs in flight (db.ts). Either alone passes
 * this test; with both taken out it fails.
 */
describe('SQLite: a cancel asks WeChat to give up a bill only once what it read is durable', () => {
  const sync = heldWalSync();
  let h: Harness;
  let fake: FakeWechat;
  let worker: PayoutWorker;
  const user = 'durable_cancel_user';

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    ({ h, worker } = await startLivePayouts('sqlite', fake.credentials(), { sqliteWalSync: sync.factory }));
    await h.request('POST', h.appPath('/users'), { key: h.liveKey, body: { id: user } });
    await h.fund(user, 100_000, h.liveKey);
  });
  afterAll(async () => {
    sync.state.hold = false;
    sync.release();
    await h?.close();
    await fake?.close();
  });

  it('holds the call to WeChat while the WAL sync is held, and makes it once the sync returns', async () => {
    const put = (id: string, status: string) => h.request('PUT', h.appPath(`/withdrawals/${id}`), { key: h.liveKey, body: { status } });
    const w = (await h.request('POST', h.appPath('/withdrawals'), { key: h.liveKey, body: { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: 'o_durable' } } })).json;
    expect((await put(w.id, 'pending')).status).toBe(200);
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', w.id).execute();
    expect(await worker.runOnce()).toBe(1);
    const cancelCall = `POST /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/${w.id}/cancel`;

    sync.state.hold = true;
    const committed = h.rt.store.groupCommit!.stats.transactions;
    const answer = put(w.id, 'canceled');
    // The cancel's transaction has committed; its sync (and every later one) is held.
    await vi.waitFor(() => {
      expect(h.rt.store.groupCommit!.stats.transactions).toBeGreaterThan(committed);
      expect(sync.state.held.length).toBeGreaterThan(0);
    });
    // No call for a second (with both guards taken out it came at once).
    await expect(vi.waitFor(() => expect(fake.calls).toContain(cancelCall), { timeout: 1_000, interval: 20 })).rejects.toThrow();
    expect(fake.calls).not.toContain(cancelCall);

    sync.state.hold = false;
    sync.release();
    const res = await answer;
    expect(res.status).toBe(200);
    expect(fake.calls).toContain(cancelCall);
    expect(fake.bills.get(w.id)!.state).toBe('CANCELING');
  });
});
