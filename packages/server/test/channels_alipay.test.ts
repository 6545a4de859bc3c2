import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PayoutWorker } from '../src/channels/worker.ts';
import { setCredentials } from '../src/channels/credentials.ts';
import { loadAlipayDriver } from '../src/channels/alipay-load.ts';
import type { PayoutOrder } from '../src/channels/driver.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { liveSdkUser, startLivePayouts } from './helpers/channels.ts';
import type { PingppClient } from './helpers/pingpp.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeAlipay } from './fakes/alipay.ts';
import { registry } from '../src/observability/metrics.ts';

/**
 * Live-mode Alipay payouts end to end: the official Ping++ Node SDK (live key) → tixian → the
 * official alipay-sdk → a local fake Alipay gateway that checks signatures and counts debits.
 */
describeEngines('live Alipay payouts through the official SDKs', (engine) => {
  let h: Harness;
  let fake: FakeAlipay;
  let worker: PayoutWorker;
  let pingpp: PingppClient;
  const user = 'live_alipay_user';

  beforeAll(async () => {
    fake = await new FakeAlipay().start();
    ({ h, worker } = await startLivePayouts(engine, fake.credentials(), { config: { allowPrivateWebhooks: true } }));
    pingpp = await liveSdkUser(h, user);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  /** Worker rounds until the withdrawal leaves `pending`; each retry is made due at once (time passing, without waiting). */
  async function settle(id: string, rounds = 20) {
    for (let round = 0; round < rounds; round++) {
      await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', id).where('status', '=', 'pending').execute();
      await worker.runOnce();
      const w = await pingpp.withdrawals.retrieve(h.appId, id);
      if (w.status !== 'pending') return w;
    }
    throw new Error(`withdrawal ${id} still pending after ${rounds} worker rounds`);
  }

  async function withdrawable() {
    return (await pingpp.users.retrieve(h.appId, user)).withdrawable_balance as number;
  }

  async function confirmed(payee: string, amount = 1000, userFee = 10) {
    const w = await pingpp.withdrawals.create(h.appId, { user, amount, user_fee: userFee, channel: 'alipay', order_no: orderNo(), extra: { account: payee, name: '张三' } });
    expect(w.livemode).toBe(true);
    await pingpp.withdrawals.confirm(h.appId, w.id);
    return w;
  }

  it('pays: succeeded, one debit of amount less fee at Alipay, under the withdrawal id', async () => {
    const before = await withdrawable();
    const w = await confirmed('ok@example.com', 1234, 34);
    const done = await settle(w.id);
    expect(done.status).toBe('succeeded');
    expect(fake.debits.get(w.id)).toBe(1);
    expect(fake.orders.get(w.id)).toMatchObject({ amount: '12.00', payee: 'ok@example.com', name: '张三' });
    expect(await withdrawable()).toBe(before - 1234);
  });

  it("the payee's fault: failed, the hold goes back to the user, nothing paid", async () => {
    fake.unknownPayees.add('nobody@example.com');
    const before = await withdrawable();
    const w = await confirmed('nobody@example.com');
    const done = await settle(w.id);
    expect(done.status).toBe('failed');
    expect(done.failure_msg).toContain('PAYEE_NOT_EXIST');
    expect(fake.debits.has(w.id)).toBe(false);
    expect(await withdrawable()).toBe(before);
  });

  it('the merchant short of funds: back to created; after a top-up a re-confirm pays on a new Alipay order', async () => {
    fake.balanceFen = 500;
    const w = await confirmed('short@example.com');
    const back = await settle(w.id);
    expect(back.status).toBe('created');
    expect(back.failure_msg).toContain('BALANCE_IS_NOT_ENOUGH');
    expect(fake.orders.has(w.id)).toBe(false);
    fake.balanceFen = 100_000_000;
    await pingpp.withdrawals.confirm(h.appId, w.id);
    const done = await settle(w.id);
    expect(done.status).toBe('succeeded');
    expect(fake.debits.get(`${w.id}_2`)).toBe(1);
    expect(fake.debits.has(w.id)).toBe(false);
  });

  it('accepted, then the connection cut: queried, succeeded, paid once', async () => {
    fake.cutAfterAccept.add('cut@example.com');
    const w = await confirmed('cut@example.com');
    await worker.runOnce();
    // The order is paid at Alipay, but tixian never heard: it must not call it either way.
    expect(fake.debits.get(w.id)).toBe(1);
    expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('pending');
    const callsBefore = fake.calls.length;
    const done = await settle(w.id);
    // The next round asked Alipay about the order before anything else.
    expect(fake.calls[callsBefore]).toBe('alipay.fund.trans.common.query');
    expect(done.status).toBe('succeeded');
    expect(fake.debits.get(w.id)).toBe(1);
    fake.cutAfterAccept.delete('cut@example.com');
  });

  it('a submit lost before Alipay kept it: the query finds no order, the same out_biz_no is sent again, paid once', async () => {
    fake.dropBeforeAccept.add('lost@example.com');
    const w = await confirmed('lost@example.com');
    await worker.runOnce();
    expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('pending');
    expect(fake.orders.has(w.id)).toBe(false);
    fake.dropBeforeAccept.delete('lost@example.com');
    const callsBefore = fake.calls.length;
    const done = await settle(w.id);
    expect(done.status).toBe('succeeded');
    expect(fake.calls.slice(callsBefore, callsBefore + 2)).toEqual(['alipay.fund.trans.common.query', 'alipay.fund.trans.uni.transfer']);
    expect(fake.debits.get(w.id)).toBe(1);
  });

  it('a system error and a non-JSON 502 are unknown outcomes, queried, then paid once', async () => {
    fake.script.push('system_error', 'bad_gateway');
    const w = await confirmed('flaky@example.com');
    await worker.runOnce();
    expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('pending');
    const done = await settle(w.id);
    expect(done.status).toBe('succeeded');
    expect(fake.script).toEqual([]);
    expect(fake.debits.get(w.id)).toBe(1);
  });

  it('in progress several times, then success', async () => {
    fake.dealing.set('slow@example.com', 3);
    const w = await confirmed('slow@example.com');
    await worker.runOnce();
    expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('pending');
    const done = await settle(w.id);
    expect(done.status).toBe('succeeded');
    expect(fake.orders.get(w.id)!.dealingLeft).toBeLessThanOrEqual(0);
    expect(fake.debits.get(w.id)).toBe(1);
  });

  it('an answer whose signature does not verify is unknown: never success, never failure', async () => {
    const unverified = async () => (await registry.getSingleMetric('tixian_channel_unverified_answers_total')!.get()).values.find((v) => v.labels.channel === 'alipay')?.value ?? 0;
    const unverifiedBefore = await unverified();
    fake.badSignature = true;
    fake.unknownPayees.add('forged@example.com');
    try {
      const ok = await confirmed('badsig@example.com');
      const refused = await confirmed('forged@example.com');
      for (let i = 0; i < 4; i++) {
        await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', 'in', [ok.id, refused.id]).execute();
        await worker.runOnce();
        expect((await pingpp.withdrawals.retrieve(h.appId, ok.id)).status).toBe('pending');
        expect((await pingpp.withdrawals.retrieve(h.appId, refused.id)).status).toBe('pending');
      }
      expect(await unverified()).toBeGreaterThanOrEqual(unverifiedBefore + 8);
      fake.badSignature = false;
      expect((await settle(ok.id)).status).toBe('succeeded');
      expect(fake.debits.get(ok.id)).toBe(1);
      expect((await settle(refused.id)).status).toBe('failed');
    } finally {
      fake.badSignature = false;
    }
  });

  it('an answer trickled past the call deadline: the request ends by the deadline, nothing is sent after the give-up; queried, paid once', async () => {
    const callMs = 1_000;
    const cutMs = 2_000;
    fake.trickle.set('trickle@example.com', cutMs);
    try {
      const w = await confirmed('trickle@example.com');
      // A worker that gives a channel call up (and aborts its signal) after 1 s.
      const quick = new PayoutWorker(h.rt, { leaseMs: 10_000, channelTimeoutMs: callMs });
      const callsBefore = fake.calls.length;
      await quick.runOnce();
      expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('pending');
      const trickled = fake.trickles.find((t) => t.outBizNo === w.id)!;
      // Past the fake's cut of the connection, when an HTTP client that resends after a socket error would have.
      await sleep(Math.max(0, trickled.startMs + cutMs + 500 - Date.now()));
      expect(fake.calls.slice(callsBefore), 'a request reached Alipay after the worker gave the call up').toEqual(['alipay.fund.trans.uni.transfer']);
      expect(trickled.closedMs! - trickled.startMs, 'the request outlived the call deadline').toBeLessThan(callMs + 200);
      fake.trickle.delete('trickle@example.com');
      const done = await settle(w.id);
      expect(done.status).toBe('succeeded');
      expect(fake.debits.get(w.id)).toBe(1);
    } finally {
      fake.trickle.delete('trickle@example.com');
    }
  });

  it('a call whose signal is aborted mid-answer ends at once as unknown: the connection is closed, nothing is resent', async () => {
    const cutMs = 1_500;
    const abortMs = 300;
    fake.trickle.set('given-up@example.com', cutMs);
    try {
      const { AlipayDriver } = await loadAlipayDriver();
      const driver = new AlipayDriver({ store: h.rt.store, box: h.rt.box, log: h.rt.log });
      const order: PayoutOrder = {
        key: `givenup${Date.now()}`, withdrawalId: 'givenup', app: h.appId, channel: 'alipay', amount: 1000, extra: { account: 'given-up@example.com', name: '张三' }, livemode: true, confirmedMs: Date.now(),
      };
      const callsBefore = fake.calls.length;
      // The call may take 10 s, but is given up (its signal aborted) early, as the worker does at its deadline.
      const controller = new AbortController();
      const t0 = Date.now();
      const giveUp = setTimeout(() => controller.abort(new Error('channel call timed out')), abortMs);
      const outcome = await driver.submit(order, { timeoutMs: 10_000, signal: controller.signal, nowMs: Date.now() });
      clearTimeout(giveUp);
      expect(Date.now() - t0, 'the call outlived its signal').toBeLessThan(abortMs + 200);
      expect(outcome).toMatchObject({ kind: 'unknown', message: expect.stringContaining('channel call timed out') });
      const trickled = fake.trickles.find((t) => t.outBizNo === order.key)!;
      await sleep(Math.max(0, trickled.startMs + cutMs + 500 - Date.now()));
      expect(fake.calls.slice(callsBefore), 'a request reached Alipay after the call was given up').toEqual(['alipay.fund.trans.uni.transfer']);
      expect(trickled.closedMs! - t0, 'the connection outlived the signal').toBeLessThan(abortMs + 200);
    } finally {
      fake.trickle.delete('given-up@example.com');
    }
  });

  it('no order was ever paid twice, and the ledger is clean', async () => {
    expect(fake.doublePaid()).toEqual([]);
    expect((await h.verify()).ok).toBe(true);
  });

  describe('refusals before any money moves', () => {
    it('an Alipay payout below 0.10 yuan is refused at create in live mode', async () => {
      const res = await h.request('POST', h.appPath('/withdrawals'), {
        key: h.liveKey, body: { user, amount: 19, user_fee: 10, channel: 'alipay', order_no: orderNo(), extra: { account: 'a@example.com', name: '张三' } },
      });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({ type: 'invalid_request_error', param: 'amount' });
    });

    it('unionpay, allinpay and jdpay have no live driver: confirm answers 402 channel_error and changes nothing', async () => {
      const w = await pingpp.withdrawals.create(h.appId, {
        user, amount: 1000, channel: 'jdpay', order_no: orderNo(), extra: { account: '6214850288888888', name: '张三', open_bank_code: '0308' },
      });
      const res = await h.request('PUT', h.appPath(`/withdrawals/${w.id}`), { key: h.liveKey, body: { status: 'pending' } });
      expect(res.status).toBe(402);
      expect(res.json.error).toMatchObject({ type: 'channel_error', param: 'channel' });
      expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('created');
    });

    it('an app without live Alipay credentials cannot confirm an Alipay withdrawal', async () => {
      await h.rt.store.db.deleteFrom('channel_credentials').where('app', '=', h.appId).execute();
      try {
        const w = await pingpp.withdrawals.create(h.appId, { user, amount: 1000, channel: 'alipay', order_no: orderNo(), extra: { account: 'x@example.com', name: '张三' } });
        const res = await h.request('PUT', h.appPath(`/withdrawals/${w.id}`), { key: h.liveKey, body: { status: 'pending' } });
        expect(res.status).toBe(402);
        expect(res.json.error.message).toContain('channels set');
        expect(res.json.error.message).not.toContain('PRIVATE KEY');
      } finally {
        await setCredentials(h.rt, h.appId, true, fake.credentials());
      }
    });
  });

  it("test mode pays through Alipay's own sandbox when the app has test credentials, else through the built-in sandbox", async () => {
    await setCredentials(h.rt, h.appId, false, fake.credentials());
    await h.createUser('test_mode_user');
    await h.fund('test_mode_user', 10_000);
    const pay = async () => {
      const created = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user: 'test_mode_user', amount: 1000, channel: 'alipay', order_no: orderNo(), extra: { account: 'tm@example.com', name: '张三' } },
      });
      expect(created.json.livemode).toBe(false);
      const id = created.json.id as string;
      expect((await h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })).status).toBe(200);
      for (let round = 0; round < 20; round++) {
        await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', id).where('status', '=', 'pending').execute();
        // The built-in sandbox answers after --sandbox-delay-ms: make its orders old enough.
        await h.rt.store.db.updateTable('sandbox_payouts').set({ submitted_ms: 0 }).where('withdrawal_id', '=', id).execute();
        await worker.runOnce();
        const w = await h.request('GET', h.appPath(`/withdrawals/${id}`));
        if (w.json.status !== 'pending') return w.json;
      }
      throw new Error(`test withdrawal ${id} still pending`);
    };
    const viaAlipay = await pay();
    expect(viaAlipay.status).toBe('succeeded');
    expect(fake.debits.get(viaAlipay.id)).toBe(1);

    await h.rt.store.db.deleteFrom('channel_credentials').where('app', '=', h.appId).where('livemode', '=', 0).execute();
    const viaSandbox = await pay();
    expect(viaSandbox.status).toBe('succeeded');
    expect(fake.orders.has(viaSandbox.id)).toBe(false);
    expect(await h.rt.store.db.selectFrom('sandbox_payouts').select('key').where('withdrawal_id', '=', viaSandbox.id).execute()).toHaveLength(1);
  });

  it('channels check proves the credentials with a signed call; a wrong key fails it', async () => {
    const { AlipayDriver } = await loadAlipayDriver();
    const good = { channel: 'alipay' as const, app_id: fake.appId, private_key: fake.appPrivateKey, alipay_public_key: fake.alipayPublicKey, endpoint: fake.endpoint };
    expect((await AlipayDriver.check(good, 3000)).ok).toBe(true);
    const rejected = fake.rejectedSignatures;
    const other = new FakeAlipay();
    const wrongKey = { ...good, private_key: other.appPrivateKey };
    const checked = await AlipayDriver.check(wrongKey, 3000);
    expect(checked.ok).toBe(false);
    expect(checked.message).not.toContain(other.appPrivateKey.split('\n')[1]!.slice(0, 20));
    expect(fake.rejectedSignatures).toBe(rejected + 1);
  });
});
