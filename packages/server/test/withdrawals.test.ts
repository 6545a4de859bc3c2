import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WithdrawalChannel } from '@tixian/sdk';
import { paysOutsideTixian, WITHDRAWAL_CHANNELS } from '../src/domain/channels.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { officialSdk, type PingppClient } from './helpers/pingpp.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';


describeEngines('withdrawals through the official Node SDK', (engine) => {
  let h: Harness;
  let worker: PayoutWorker;
  let pingpp: PingppClient;

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { sandboxDelayMs: 0 } });
    worker = new PayoutWorker(h.rt);
    pingpp = await officialSdk(h);
  });
  afterAll(async () => h?.close());

  /** Runs the payout worker until the withdrawal leaves `pending` (bounded rounds, no sleeping). */
  async function settle(id: string) {
    for (let round = 0; round < 20; round++) {
      const w = await pingpp.withdrawals.retrieve(h.appId, id);
      if (w.status !== 'pending') return w;
      await worker.runOnce();
    }
    throw new Error(`withdrawal ${id} still pending after 20 worker rounds`);
  }

  async function balances(user: string) {
    const u = await pingpp.users.retrieve(h.appId, user);
    return { available: u.available_balance, withdrawable: u.withdrawable_balance };
  }

  async function lines(user: string) {
    const list = await pingpp.balanceTransactions.list(h.appId, { user, per_page: 100 });
    return list.data.map((l: { type: string; amount: number; available_balance: number }) => [l.type, l.amount, l.available_balance]).reverse();
  }

  function create(user: string, channel: WithdrawalChannel, payee: string, amount = 1000, userFee = 10) {
    return pingpp.withdrawals.create(h.appId, {
      user, amount, channel, user_fee: userFee, order_no: orderNo(), description: 'test232description', extra: seedExtra(channel, payee),
    });
  }

  // custom pays nothing through tixian (withdrawals_custom.test.ts): every other channel pays through the sandbox.
  describe.each(WITHDRAWAL_CHANNELS.filter((c) => !paysOutsideTixian(c)))('%s', (channel) => {
    const user = `u_${channel}`;
    beforeAll(async () => {
      await pingpp.users.create(h.appId, { id: user, name: null });
      await h.fund(user, 10_000);
      await pingpp.balanceBonuses.create(h.appId, { user, amount: 500, order_no: `bonus${channel.replace('_', '')}` });
    });

    it('create → confirm → succeeded', async () => {
      const w = await create(user, channel, sandboxPayee(channel, ''));
      expect(w).toMatchObject({ object: 'withdrawal', status: 'created', amount: 1000, user_fee: 10, channel, source: null, livemode: false });
      expect(await balances(user)).toEqual({ available: 9500, withdrawable: 9000 });
      const confirmed = await pingpp.withdrawals.confirm(h.appId, w.id);
      expect(confirmed.status).toBe('pending');
      expect(confirmed.source).toMatch(/^tr_/);
      const done = await settle(w.id);
      expect(done.status).toBe('succeeded');
      expect(done.time_succeeded).toEqual(expect.any(Number));
      expect(done.source).toBe(confirmed.source);
      expect(await balances(user)).toEqual({ available: 9500, withdrawable: 9000 });
    });

    it('create → cancel returns the hold', async () => {
      const w = await create(user, channel, sandboxPayee(channel, ''), 700, 0);
      expect(await balances(user)).toEqual({ available: 8800, withdrawable: 8300 });
      const canceled = await pingpp.withdrawals.cancel(h.appId, w.id);
      expect(canceled).toMatchObject({ status: 'canceled', time_canceled: expect.any(Number) });
      expect(await balances(user)).toEqual({ available: 9500, withdrawable: 9000 });
      // A canceled withdrawal cannot be confirmed; the SDK surfaces Ping++'s error.
      await expect(pingpp.withdrawals.confirm(h.appId, w.id)).rejects.toMatchObject({ type: 'PingppInvalidRequest', rawType: 'invalid_request_error', param: 'status', message: expect.stringContaining('不能被更新状态') });
    });

    it('create → confirm → failed (the user\'s fault) returns the balance', async () => {
      const w = await create(user, channel, sandboxPayee(channel, '0002'), 2000, 20);
      expect(await balances(user)).toEqual({ available: 7500, withdrawable: 7000 });
      await pingpp.withdrawals.confirm(h.appId, w.id);
      const done = await settle(w.id);
      expect(done.status).toBe('failed');
      expect(done.failure_msg).toEqual(expect.any(String));
      expect(await balances(user)).toEqual({ available: 9500, withdrawable: 9000 });
    });

    it('create → confirm → back to created (merchant\'s fault) → confirm → succeeded', async () => {
      const w = await create(user, channel, sandboxPayee(channel, '0003'), 3000, 0);
      await pingpp.withdrawals.confirm(h.appId, w.id);
      const back = await settle(w.id);
      expect(back.status).toBe('created');
      expect(back.failure_msg).toEqual(expect.any(String));
      expect(await balances(user)).toEqual({ available: 6500, withdrawable: 6000 });
      await pingpp.withdrawals.confirm(h.appId, w.id);
      const done = await settle(w.id);
      expect(done.status).toBe('succeeded');
      expect(done.source).not.toBe(back.source);
      expect(await balances(user)).toEqual({ available: 6500, withdrawable: 6000 });
    });

    it('an unknown channel answer is queried, never resubmitted blind, and succeeds', async () => {
      const w = await create(user, channel, sandboxPayee(channel, '0004'), 500, 0);
      await pingpp.withdrawals.confirm(h.appId, w.id);
      await worker.runOnce();
      expect((await pingpp.withdrawals.retrieve(h.appId, w.id)).status).toBe('pending');
      // The retry after an unknown answer is scheduled in the future: move the clock-free path by
      // making it due now, as time passing would.
      await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', w.id).execute();
      const done = await settle(w.id);
      expect(done.status).toBe('succeeded');
      const payouts = await h.rt.store.db.selectFrom('sandbox_payouts').selectAll().where('withdrawal_id', '=', w.id).execute();
      expect(payouts).toHaveLength(1);
      expect(payouts[0]!.queries).toBeGreaterThanOrEqual(1);
    });

    it('balance transactions tell the whole story', async () => {
      expect(await lines(user)).toEqual([
        ['credited', 10000, 10000],
        ['receipts_extra', 500, 10500],
        ['withdrawal', -1000, 9500],
        ['withdrawal', -700, 8800],
        ['withdrawal_revoked', 700, 9500],
        ['withdrawal', -2000, 7500],
        ['withdrawal_failed', 2000, 9500],
        ['withdrawal', -3000, 6500],
        ['withdrawal', -500, 6000],
      ]);
    });
  });

  it('lists with filters and total_withdrawals_amount over all matching withdrawals', async () => {
    const page = await pingpp.withdrawals.list(h.appId, { per_page: 3, status: 'succeeded' });
    expect(page.data).toHaveLength(3);
    expect(page.has_more).toBe(true);
    // succeeded per channel: 1000 + 3000 + 500
    expect(page.total_withdrawals_amount).toBe(7 * 4500);
    const wx = await pingpp.withdrawals.list(h.appId, { channel: 'wx', user: 'u_wx', per_page: 100 });
    expect(wx.data.every((w: { channel: string }) => w.channel === 'wx')).toBe(true);
    expect(wx.total_withdrawals_amount).toBe(1000 + 700 + 2000 + 3000 + 500);
    const none = await pingpp.withdrawals.list(h.appId, { 'created[lt]': 1 });
    expect(none).toMatchObject({ data: [], total_withdrawals_amount: 0, has_more: false });
    const cursor = await h.request('GET', h.appPath(`/withdrawals?limit=2&starting_after=${page.data[0].id}&status=succeeded`));
    expect(cursor.json.data[0].id).toBe(page.data[1].id);
  });

  it('a cursor whose withdrawal has left the status filter still marks the place to go on from', async () => {
    // The merchant's loop: list `status=created`, confirm or cancel each, ask for the next page
    // after the last id, which is no longer `created`.
    await pingpp.users.create(h.appId, { id: 'cursor_user' });
    await h.fund('cursor_user', 10_000);
    const made: string[] = []; // newest first, as lists are
    for (let i = 0; i < 5; i++) made.unshift((await create('cursor_user', 'alipay', sandboxPayee('alipay', ''), 100, 0)).id);
    const ids = (res: { json: Record<string, unknown> }) => (res.json.data as { id: string }[]).map((w) => w.id);
    const list = (q: string) => h.request('GET', h.appPath(`/withdrawals?user=cursor_user&status=created&${q}`));

    const page1 = await list('limit=2');
    expect(ids(page1)).toEqual(made.slice(0, 2));
    for (const id of made.slice(0, 2)) await pingpp.withdrawals.cancel(h.appId, id);
    const page2 = await list(`limit=2&starting_after=${made[1]}`);
    expect(page2.status, page2.body).toBe(200);
    expect({ ids: ids(page2), has_more: page2.json.has_more }).toEqual({ ids: made.slice(2, 4), has_more: true });

    // Both directions go on from the cursor's place in the order, skipping rows that do not match.
    await pingpp.withdrawals.cancel(h.appId, made[3]!);
    expect(ids(await list(`limit=2&starting_after=${made[3]}`))).toEqual([made[4]]);
    expect(ids(await list(`limit=2&ending_before=${made[3]}`))).toEqual([made[2]]);
    expect(ids(await list(`limit=2&ending_before=${made[1]}`))).toEqual([]);
    // A cursor from another app or mode is still unknown.
    const live = await h.request('GET', h.appPath(`/withdrawals?status=created&starting_after=${made[1]}`), { key: h.liveKey });
    expect(live.status).toBe(400);
    expect(live.json.error.param).toBe('starting_after');
  });

  it('user= (empty) matches no withdrawal, as in every other list, and totals 0', async () => {
    const everyone = await h.request('GET', h.appPath('/withdrawals?per_page=1'));
    expect(everyone.json.total_withdrawals_amount).toBeGreaterThan(0);
    for (const q of ['user=', 'user=&status=succeeded', 'user=&limit=5']) {
      const res = await h.request('GET', h.appPath(`/withdrawals?${q}`));
      expect(res.status, q).toBe(200);
      expect({ data: res.json.data, total: res.json.total_withdrawals_amount, has_more: res.json.has_more }, q).toEqual({ data: [], total: 0, has_more: false });
    }
    expect((await h.request('GET', h.appPath('/balance_transactions?user='))).json.data).toEqual([]);
  });

  it('total_withdrawals_amount saturates at 2^31−1, which the Java and C# SDKs read as an int', async () => {
    const MAX_INT32 = 2_147_483_647;
    // Two users' withdrawals (the kept totals) and one user's withdrawals over time (the SUM of
    // their rows) both add up past 2^31−1 while each balance stays below it.
    for (const user of ['big_a', 'big_b']) {
      await pingpp.users.create(h.appId, { id: user });
      await h.fund(user, 1_500_000_000);
      const w = await create(user, 'alipay', sandboxPayee('alipay', ''), 1_500_000_000, 0);
      await pingpp.withdrawals.cancel(h.appId, w.id);
      await create(user, 'alipay', sandboxPayee('alipay', ''), 1_500_000_000, 0);
    }
    for (const q of ['per_page=1', 'status=created&per_page=1', 'user=big_a&per_page=1', 'user=big_a&limit=1', 'channel=alipay&limit=1']) {
      const res = await h.request('GET', h.appPath(`/withdrawals?${q}`));
      expect(res.json.total_withdrawals_amount, q).toBe(MAX_INT32);
    }
    // Below the bound the total is exact.
    const one = await h.request('GET', h.appPath('/withdrawals?user=big_a&status=canceled'));
    expect(one.json.total_withdrawals_amount).toBe(1_500_000_000);
  });

  it('settle accounts pay withdrawals without extra; with channel+extra the settle account is ignored', async () => {
    await pingpp.users.create(h.appId, { id: 'sa_user' });
    await h.fund('sa_user', 5000);
    const sa = await h.request('POST', h.appPath('/users/sa_user/settle_accounts'), {
      body: { channel: 'bank_account', recipient: { account: '6214850288880002', name: '李四', type: 'b2c', open_bank_code: '0308' } },
    });
    expect(sa.status).toBe(200);
    const viaAccount = await pingpp.withdrawals.create(h.appId, { user: 'sa_user', amount: 1000, order_no: orderNo(), settle_account: sa.json.id });
    expect(viaAccount).toMatchObject({ channel: 'unionpay', settle_account: sa.json.id, extra: { account: '621485***0002', name: '***四' } });
    // The Java example sends settle_account alongside channel+extra: the settle account is ignored.
    const ignored = await pingpp.withdrawals.create(h.appId, {
      user: 'sa_user', amount: 100, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay'), settle_account: 'test_user_001', user_fee: 5,
    });
    expect(ignored).toMatchObject({ channel: 'alipay', settle_account: null });
    await pingpp.withdrawals.confirm(h.appId, viaAccount.id);
    expect((await settle(viaAccount.id)).status).toBe('failed');
  });

  it('live mode without a payout driver refuses to confirm with a channel_error and changes nothing', async () => {
    const live = await officialSdk(h, h.liveKey);
    await live.users.create(h.appId, { id: 'live_user' });
    await h.fund('live_user', 1000, h.liveKey);
    const w = await live.withdrawals.create(h.appId, { user: 'live_user', amount: 100, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay') });
    const before = await h.snapshot();
    await expect(live.withdrawals.confirm(h.appId, w.id)).rejects.toMatchObject({ type: 'PingppChannelError', rawType: 'channel_error' });
    expect(await h.snapshot()).toEqual(before);
    expect((await live.withdrawals.retrieve(h.appId, w.id)).status).toBe('created');
  });

  it('emits one event per final outcome, in the same transaction as the state change', async () => {
    const events = await h.rt.store.db.selectFrom('events').select(['type', 'body']).execute();
    const succeeded = events.filter((e) => e.type === 'balance.withdrawal.succeeded');
    const failed = events.filter((e) => e.type === 'balance.withdrawal.failed');
    const finals = await h.rt.store.db.selectFrom('withdrawals').select(['id', 'status']).where('status', 'in', ['succeeded', 'failed']).execute();
    expect(succeeded.length + failed.length).toBe(finals.length);
    const ids = events.map((e) => (JSON.parse(e.body) as { data: { object: { id: string } } }).data.object.id);
    expect(new Set(ids).size).toBe(ids.length);
    const sample = JSON.parse(succeeded[0]!.body);
    expect(sample).toMatchObject({ object: 'event', livemode: false, type: 'balance.withdrawal.succeeded', scope: h.appId, acct_id: h.merchant.account });
    expect(sample.data.object).toMatchObject({ object: 'withdrawal', status: 'succeeded' });
  });

  it('the ledger verifies clean at the end', async () => {
    const report = await h.verify();
    expect(report.drift).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('ledger verify notices a withdrawal whose status changed without its ledger entry', async () => {
    const open = await h.rt.store.db.selectFrom('withdrawals').select(['id', 'app']).where('status', '=', 'created').where('livemode', '=', 0).executeTakeFirstOrThrow();
    await h.rt.store.db.updateTable('withdrawals').set({ status: 'canceled' }).where('id', '=', open.id).execute();
    const report = await h.verify();
    expect(report.ok).toBe(false);
    // The kept withdrawal totals (per status) no longer match the rows either.
    expect(new Set(report.drift.map((d) => d.kind))).toEqual(new Set(['hold_mismatch', 'withdrawal_totals']));
    await h.rt.store.db.updateTable('withdrawals').set({ status: 'created' }).where('id', '=', open.id).execute();
    expect((await h.verify()).ok).toBe(true);
  });
});
