import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PayoutWorker } from '../src/channels/worker.ts';
import { ManualClock } from '../src/clock.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { liveSdkUser, startLivePayouts } from './helpers/channels.ts';
import type { PingppClient } from './helpers/pingpp.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeWechat } from './fakes/wechat.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';

/**
 * Live wx payouts end to end: the official Ping++ Node SDK (live key) → tixian → the unchanged
 * wechatpay-axios-plugin → a fake WeChat Pay gateway. The payee's confirmation step shows on the
 * pending withdrawal as `extra.wx_confirmation`.
 */
describeEngines('live WeChat Pay payouts through the official SDKs', (engine) => {
  let h: Harness;
  let fake: FakeWechat;
  let worker: PayoutWorker;
  let pingpp: PingppClient;
  const user = 'live_wx_user';

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    ({ h, worker } = await startLivePayouts(engine, fake.credentials(), { config: { allowPrivateWebhooks: true } }));
    pingpp = await liveSdkUser(h, user);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  async function round(id: string) {
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', id).where('status', '=', 'pending').execute();
    await worker.runOnce();
    return pingpp.withdrawals.retrieve(h.appId, id);
  }

  async function confirmed(openid: string) {
    const w = await pingpp.withdrawals.create(h.appId, { user, amount: 1000, user_fee: 10, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: openid, name: '张三' } });
    await pingpp.withdrawals.confirm(h.appId, w.id);
    return w;
  }

  it('waits for the payee with package_info on the withdrawal and in one pending_confirmation event; confirmed in WeChat → succeeded, paid once', async () => {
    const subscribed = await upsertEndpoint(h.rt, { app: h.appId, livemode: true, url: 'http://127.0.0.1:9/confirmations', events: ['balance.withdrawal.pending_confirmation'] });
    const plain = await upsertEndpoint(h.rt, { app: h.appId, livemode: true, url: 'http://127.0.0.1:9/results' });
    const w = await confirmed('o_live_ok');
    const waiting = await round(w.id);
    expect(waiting.status).toBe('pending');
    expect(waiting.extra.wx_confirmation).toEqual({ package_info: expect.any(String), mch_id: fake.mchid, app_id: 'wxlite0000000001', out_bill_no: w.id });
    expect(waiting.extra.open_id).toBe('o_live_ok');
    expect((await round(w.id)).status).toBe('pending');
    const events = await h.rt.store.db.selectFrom('events').select(['id', 'body']).where('type', '=', 'balance.withdrawal.pending_confirmation').execute();
    expect(events).toHaveLength(1); // once per channel order, not per query
    expect(JSON.parse(events[0]!.body).data.object).toMatchObject({ id: w.id, status: 'pending', extra: { wx_confirmation: waiting.extra.wx_confirmation } });
    const deliveries = await h.rt.store.db.selectFrom('webhook_deliveries').select('endpoint_id').where('event_id', '=', events[0]!.id).execute();
    expect(deliveries.map((d) => d.endpoint_id)).toEqual([subscribed.endpoint.id]);
    expect(plain.endpoint.events).toEqual(['balance.withdrawal.succeeded', 'balance.withdrawal.failed']);
    fake.confirm(w.id);
    const done = await round(w.id);
    expect(done.status).toBe('succeeded');
    expect(fake.debits.get(w.id)).toBe(1);
    expect(fake.bills.get(w.id)!.transfer_amount).toBe(990);
  });

  it('a transfer whose answer was lost still shows its confirmation: WeChat\'s query has no package_info, so the same transfer is asked for again, one bill, paid once', async () => {
    const openid = 'o_live_lost_answer';
    const w = await pingpp.withdrawals.create(h.appId, { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: openid, name: '张三' } });
    await pingpp.withdrawals.confirm(h.appId, w.id);
    fake.cutAfterAccept.add(openid); // WeChat keeps the bill; its answer never arrives
    const lost = await round(w.id);
    expect(lost.status).toBe('pending');
    expect(lost.extra.wx_confirmation).toBeUndefined();
    expect(fake.bills.get(w.id)?.state).toBe('WAIT_USER_CONFIRM');
    fake.cutAfterAccept.delete(openid);

    const calls = fake.calls.length;
    const shown = await round(w.id);
    expect(shown.extra.wx_confirmation).toEqual({ package_info: fake.bills.get(w.id)!.package_info, mch_id: fake.mchid, app_id: 'wxlite0000000001', out_bill_no: w.id });
    expect(fake.calls.slice(calls)).toEqual([`GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/${w.id}`, 'POST /v3/fund-app/mch-transfer/transfer-bills']);
    // Shown once: later rounds only query.
    const queried = fake.calls.length;
    expect((await round(w.id)).extra.wx_confirmation).toEqual(shown.extra.wx_confirmation);
    expect(fake.calls.slice(queried)).toEqual([`GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/${w.id}`]);
    fake.confirm(w.id);
    expect((await round(w.id)).status).toBe('succeeded');
    expect([...fake.bills.keys()].filter((no) => no.startsWith(w.id))).toEqual([w.id]);
    expect(fake.debits.get(w.id)).toBe(1);
  });

  it("an expired confirmation ends as the user's failure, the hold returned", async () => {
    const before = (await pingpp.users.retrieve(h.appId, user)).withdrawable_balance as number;
    const w = await confirmed('o_live_expire');
    expect((await round(w.id)).status).toBe('pending');
    fake.expire(w.id);
    const done = await round(w.id);
    expect(done.status).toBe('failed');
    expect(done.failure_msg).toContain('OVERDUE_CLOSE');
    expect((await pingpp.users.retrieve(h.appId, user)).withdrawable_balance).toBe(before);
    expect(fake.debits.has(w.id)).toBe(false);
  });

  it('a wx channel without its appid configured cannot be confirmed in live mode', async () => {
    const w = await pingpp.withdrawals.create(h.appId, { user, amount: 1000, channel: 'wx_pub', order_no: orderNo(), extra: { open_id: 'o_pub' } });
    const res = await h.request('PUT', h.appPath(`/withdrawals/${w.id}`), { key: h.liveKey, body: { status: 'pending' } });
    expect(res.status).toBe(402);
    expect(res.json.error).toMatchObject({ type: 'channel_error', param: 'channel' });
  });

  it('ledger clean, nothing paid twice', async () => {
    expect([...fake.debits.values()].every((n) => n === 1)).toBe(true);
    expect((await h.verify()).ok).toBe(true);
  });
});

describeEngines('WeChat: not found past the 30-day query window is not proof of absence', (engine) => {
  let h: Harness;
  let fake: FakeWechat;
  let worker: PayoutWorker;
  let pingpp: PingppClient;
  const clock = new ManualClock(Date.now());
  const user = 'live_wx_window_user';

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    ({ h, worker } = await startLivePayouts(engine, fake.credentials(), { clock }));
    pingpp = await liveSdkUser(h, user);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  async function round(id: string) {
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', id).where('status', '=', 'pending').execute();
    await worker.runOnce();
    return pingpp.withdrawals.retrieve(h.appId, id);
  }
  const transfers = () => fake.calls.filter((c) => c === 'POST /v3/fund-app/mch-transfer/transfer-bills').length;

  it('a bill paid with its answer lost, still unsettled a month on, is not sent again when the query no longer finds it', async () => {
    const openid = 'o_live_window';
    fake.preAuthorized.add(openid); // 免确认收款: paid at once
    fake.cutAfterAccept.add(openid); // and the answer is lost
    const w = await pingpp.withdrawals.create(h.appId, { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: openid } });
    await pingpp.withdrawals.confirm(h.appId, w.id);
    expect((await round(w.id)).status).toBe('pending');
    expect(fake.debits.get(w.id)).toBe(1);
    fake.cutAfterAccept.delete(openid);

    // Within the window a query finds the bill whatever its age (here 28 days): no transfer sent.
    clock.advance(28 * 86_400_000);
    fake.badSignature = true; // no answer verifies (a key rotation the merchant has not caught up with)
    expect((await round(w.id)).status).toBe('pending');
    // Day 31: WeChat's query no longer knows the bill.
    clock.advance(3 * 86_400_000);
    fake.badSignature = false;
    fake.bills.delete(w.id);
    const before = transfers();
    expect((await round(w.id)).status).toBe('pending');
    expect(transfers()).toBe(before);
    expect(fake.doublePaid()).toEqual([]);
    const row = await h.rt.store.db.selectFrom('withdrawals').select('payout_answer').where('id', '=', w.id).executeTakeFirstOrThrow();
    expect(row.payout_answer).toMatch(/^unknown: wechat: not found, but the bill is 31 days old, past the 30-day query window/);
  });
});
