import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { startLivePayouts } from './helpers/channels.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * Giving up a WeChat bill that waits for the payee: `PUT status=canceled` on the pending withdrawal
 * asks WeChat to cancel the bill (transfer-bills cancel) and queries it; once WeChat says CANCELLED
 * the withdrawal is back in `created` and can be cancelled (hold returned) or confirmed again. A
 * bill the payee already confirmed cannot be cancelled and is paid.
 */
describeEngines('WeChat Pay transfer-bills cancel', (engine) => {
  let h: Harness;
  let fake: FakeWechat;
  let worker: PayoutWorker;
  const user = 'cancel_user';

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    ({ h, worker } = await startLivePayouts(engine, fake.credentials()));
    await h.request('POST', h.appPath('/users'), { key: h.liveKey, body: { id: user } });
    await h.fund(user, 1_000_000, h.liveKey);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  const put = (id: string, status: string) => h.request('PUT', h.appPath(`/withdrawals/${id}`), { key: h.liveKey, body: { status } });
  const get = async (id: string) => (await h.request('GET', h.appPath(`/withdrawals/${id}`), { key: h.liveKey })).json;
  const balance = async () => (await h.request('GET', h.appPath(`/users/${user}`), { key: h.liveKey })).json.withdrawable_balance as number;

  async function waiting(openid: string): Promise<string> {
    const w = (await h.request('POST', h.appPath('/withdrawals'), { key: h.liveKey, body: { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: openid } } })).json;
    expect((await put(w.id, 'pending')).status).toBe(200);
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', w.id).execute();
    expect(await worker.runOnce()).toBe(1);
    expect((await get(w.id)).extra.wx_confirmation.out_bill_no).toBe(w.id);
    return w.id;
  }

  it('cancels the bill at WeChat, queries it, and the withdrawal comes back to created; cancelled then, the hold is returned', async () => {
    const before = await balance();
    const id = await waiting('o_cancel_ok');
    expect(await balance()).toBe(before - 1000);
    const res = await put(id, 'canceled');
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('pending'); // nothing changes on WeChat's word
    expect(fake.calls).toContain(`POST /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/${id}/cancel`);
    expect(fake.bills.get(id)!.state).toBe('CANCELING');
    // The cancel made the bill due for a query now: the worker takes it without waiting minutes.
    expect(await worker.runOnce()).toBe(1);
    const back = await get(id);
    expect(back.status).toBe('created');
    expect(back.failure_msg).toContain('cancelled');
    expect(() => fake.confirm(id)).toThrow(); // the payee can no longer take it
    expect((await put(id, 'canceled')).json.status).toBe('canceled');
    expect(await balance()).toBe(before);
    expect(fake.debits.has(id)).toBe(false);
  });

  it('a bill given up can be confirmed again: a new bill number, paid once', async () => {
    const id = await waiting('o_cancel_again');
    expect((await put(id, 'canceled')).status).toBe(200);
    expect(await worker.runOnce()).toBe(1);
    expect((await get(id)).status).toBe('created');
    expect((await put(id, 'pending')).status).toBe(200);
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', id).execute();
    expect(await worker.runOnce()).toBe(1);
    const again = (await get(id)).extra.wx_confirmation.out_bill_no as string;
    expect(again).not.toBe(id);
    fake.confirm(again);
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', id).execute();
    expect(await worker.runOnce()).toBe(1);
    expect((await get(id)).status).toBe('succeeded');
    expect(fake.debits.get(again)).toBe(1);
    expect(fake.debits.has(id)).toBe(false);
  });

  it('a bill the payee already confirmed cannot be cancelled: 400, and it is paid', async () => {
    const id = await waiting('o_cancel_late');
    fake.confirm(id);
    const res = await put(id, 'canceled');
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'invalid_state', param: 'status' });
    expect(await worker.runOnce()).toBe(1); // queried at once all the same
    expect((await get(id)).status).toBe('succeeded');
    expect(fake.debits.get(id)).toBe(1);
  });

  it('a pending withdrawal without a bill waiting for the payee still cannot be cancelled, and WeChat is not asked', async () => {
    fake.preAuthorized.add('o_cancel_pre');
    const w = (await h.request('POST', h.appPath('/withdrawals'), { key: h.liveKey, body: { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: 'o_cancel_pre' } } })).json;
    expect((await put(w.id, 'pending')).status).toBe(200);
    const calls = fake.calls.length;
    expect((await put(w.id, 'canceled')).status).toBe(400);
    expect(fake.calls.length).toBe(calls);
  });

  it('ledger clean, nothing paid twice', async () => {
    expect(fake.doublePaid()).toEqual([]);
    expect((await h.verify()).ok).toBe(true);
  });
});
