import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { officialSdk } from './helpers/pingpp.ts';
import { orderNo, seedExtra } from './helpers/withdrawals.ts';
import { createOperator } from '../src/admin/operators.ts';

/**
 * The `custom` channel (§6.1, §6.6): the merchant pays outside any channel and tixian records it.
 * Confirm makes it `succeeded` in the same request, with what a channel success does: the hold
 * leaves for payout clearing (and fee income), `time_succeeded`, the kept totals, one
 * `balance.withdrawal.succeeded` event, and the batch's settlement.
 */
describeEngines('custom withdrawals', (engine) => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { sandboxDelayMs: 0 } });
  });
  afterAll(async () => h?.close());

  const create = (body: Record<string, unknown>, key?: string) =>
    h.request('POST', h.appPath('/withdrawals'), { body: { channel: 'custom', order_no: `c-${orderNo()}_x`, ...body }, ...(key ? { key } : {}) });
  const put = (id: string, status: 'pending' | 'canceled', key?: string) =>
    h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status }, ...(key ? { key } : {}) });
  const balances = async (user: string, key?: string) => {
    const u = (await h.request('GET', h.appPath(`/users/${user}`), key ? { key } : {})).json;
    return { available: u.available_balance as number, withdrawable: u.withdrawable_balance as number };
  };
  /** The balance.withdrawal.* events stored for a withdrawal. */
  const eventsOf = async (id: string) => {
    const rows = await h.rt.store.db.selectFrom('events').select(['id', 'type', 'body']).where('type', 'like', 'balance.withdrawal.%').execute();
    return rows.filter((r) => (JSON.parse(r.body) as { data: { object: { id: string } } }).data.object.id === id);
  };

  it('creates with or without extra: {}, refuses any extra key and a bad order_no', async () => {
    await h.createUser('cu_create');
    await h.fund('cu_create', 10_000);
    const without = await create({ user: 'cu_create', amount: 1000 });
    expect(without.status, without.body).toBe(200);
    expect(without.json).toMatchObject({ object: 'withdrawal', channel: 'custom', status: 'created', extra: {}, source: null, time_succeeded: null });
    const empty = await create({ user: 'cu_create', amount: 500, user_fee: 5, extra: {} });
    expect(empty.status, empty.body).toBe(200);
    expect(empty.json).toMatchObject({ channel: 'custom', status: 'created', extra: {}, user_fee: 5 });
    expect(await balances('cu_create')).toEqual({ available: 8500, withdrawable: 8500 });

    const unknownKey = await create({ user: 'cu_create', amount: 100, extra: { account: '6225' } });
    expect(unknownKey.status).toBe(400);
    expect(unknownKey.json.error).toMatchObject({ type: 'invalid_request_error', param: 'extra[account]' });
    for (const bad of ['abc.123', 'a'.repeat(65), '', '中文']) {
      const res = await create({ user: 'cu_create', amount: 100, order_no: bad });
      expect(res.status, bad).toBe(400);
      expect(res.json.error.param, bad).toBe('order_no');
    }
    // The spec's balance/custom rule: letters, digits, - and _.
    expect((await create({ user: 'cu_create', amount: 100, order_no: 'A-b_9' })).status).toBe(200);
    expect(await balances('cu_create')).toEqual({ available: 8400, withdrawable: 8400 });
    expect((await h.verify()).ok).toBe(true);
  });

  it('confirm answers succeeded at once, with the effects of a channel success', async () => {
    await h.createUser('cu_confirm');
    await h.fund('cu_confirm', 10_000);
    const w = (await create({ user: 'cu_confirm', amount: 3000, user_fee: 100 })).json;
    expect(await balances('cu_confirm')).toEqual({ available: 7000, withdrawable: 7000 });

    const confirmed = await put(w.id, 'pending');
    expect(confirmed.status, confirmed.body).toBe(200);
    expect(confirmed.json).toMatchObject({ id: w.id, status: 'succeeded', time_succeeded: expect.any(Number), failure_msg: null, fee: 0 });
    expect((await h.request('GET', h.appPath(`/withdrawals/${w.id}`))).json).toMatchObject({ status: 'succeeded', time_succeeded: confirmed.json.time_succeeded });
    expect(await balances('cu_confirm')).toEqual({ available: 7000, withdrawable: 7000 });

    // The hold left for payout clearing (amount − user_fee) and fee income (user_fee), as the worker's success does.
    const postings = await h.rt.store.db.selectFrom('postings').innerJoin('journal_entries', 'journal_entries.id', 'postings.entry_id')
      .select(['postings.account', 'postings.amount']).where('journal_entries.source', '=', w.id).where('journal_entries.type', '=', 'withdrawal_succeeded').execute();
    const byAccount = Object.fromEntries(postings.map((p) => [p.account.split(':').pop(), Number(p.amount)]));
    expect(byAccount).toEqual({ withdrawal_hold: -3000, payout_clearing: 2900, fee_income: 100 });

    // Exactly one event, in the outbox and through GET /v1/events.
    const events = await eventsOf(w.id);
    expect(events.map((e) => e.type)).toEqual(['balance.withdrawal.succeeded']);
    const listed = await h.request('GET', '/v1/events?type=balance.withdrawal.succeeded&per_page=100', { key: h.testKey });
    expect(listed.status, listed.body).toBe(200);
    expect((listed.json.data as { data: { object: { id: string; status: string } } }[]).filter((e) => e.data.object.id === w.id).map((e) => e.data.object.status)).toEqual(['succeeded']);

    // A second confirm (or a cancel) is refused; nothing moves.
    const again = await put(w.id, 'pending');
    expect(again.status).toBe(400);
    expect(again.json.error.message).toContain('不能被更新状态');
    expect((await put(w.id, 'canceled')).status).toBe(400);
    expect(await eventsOf(w.id)).toHaveLength(1);

    // The payout worker has nothing to do with it.
    await new PayoutWorker(h.rt).runOnce();
    expect((await h.request('GET', h.appPath(`/withdrawals/${w.id}`))).json).toMatchObject({ status: 'succeeded', source: null });
    expect(await balances('cu_confirm')).toEqual({ available: 7000, withdrawable: 7000 });
    expect((await h.verify()).ok).toBe(true);
  });

  it('concurrent confirms, cancels and a batch of one custom withdrawal: exactly one wins, paid out once, one event', async () => {
    // In live mode (no credentials needed for custom), so the test mode's totals checked below stay as they are.
    const live = h.liveKey;
    expect((await h.request('POST', h.appPath('/users'), { key: live, body: { id: 'cu_race' } })).status).toBe(200);
    await h.fund('cu_race', 100_000, live);
    for (let round = 0; round < 6; round++) {
      const id = (await create({ user: 'cu_race', amount: 1_000 }, live)).json.id as string;
      const answers = await Promise.all([
        put(id, 'pending', live),
        put(id, 'pending', live),
        round % 2 ? put(id, 'canceled', live) : h.request('POST', h.appPath('/batch_withdrawals'), { key: live, body: { withdrawals: [id] } }),
      ]);
      expect(answers.filter((a) => a.status === 200), answers.map((a) => a.body).join(' ')).toHaveLength(1);
      expect(answers.filter((a) => a.status === 400)).toHaveLength(2);
      const row = await h.rt.store.db.selectFrom('withdrawals').select('status').where('id', '=', id).executeTakeFirstOrThrow();
      // A cancel that won gives the hold back and sends no event; a confirm (single or batch) pays once.
      expect((await eventsOf(id)).length).toBe(row.status === 'succeeded' ? 1 : 0);
      const outs = await h.rt.store.db.selectFrom('journal_entries').select('id').where('source', '=', id).where('type', '=', 'withdrawal_succeeded').execute();
      expect(outs).toHaveLength(row.status === 'succeeded' ? 1 : 0);
    }
    expect((await h.verify()).drift).toEqual([]);
  });

  it('cancel before confirm returns the hold', async () => {
    await h.createUser('cu_cancel');
    await h.fund('cu_cancel', 2_000);
    const w = (await create({ user: 'cu_cancel', amount: 1500 })).json;
    expect(await balances('cu_cancel')).toEqual({ available: 500, withdrawable: 500 });
    const canceled = await put(w.id, 'canceled');
    expect(canceled.json).toMatchObject({ status: 'canceled', time_canceled: expect.any(Number), time_succeeded: null });
    expect(await balances('cu_cancel')).toEqual({ available: 2000, withdrawable: 2000 });
    expect((await put(w.id, 'pending')).status).toBe(400);
    expect(await eventsOf(w.id)).toEqual([]);
    expect((await h.verify()).ok).toBe(true);
  });

  it('a batch confirm makes its custom items succeeded in its transaction', async () => {
    await h.createUser('cu_batch');
    await h.fund('cu_batch', 20_000);
    const custom = (await create({ user: 'cu_batch', amount: 1000 })).json;
    const alipay = (await h.request('POST', h.appPath('/withdrawals'), {
      body: { user: 'cu_batch', amount: 2000, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', 'payee@example.com') },
    })).json;
    const mixed = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [custom.id, alipay.id] } });
    expect(mixed.status, mixed.body).toBe(200);
    expect(mixed.json).toMatchObject({ status: 'pending', count: 2, count_succeeded: 1, amount_succeeded: 1000, time_finished: null });
    const items = Object.fromEntries((mixed.json.withdrawals.data as { id: string; status: string }[]).map((w) => [w.id, w.status]));
    expect(items).toEqual({ [custom.id]: 'succeeded', [alipay.id]: 'pending' });
    expect((await eventsOf(custom.id)).map((e) => e.type)).toEqual(['balance.withdrawal.succeeded']);

    // The alipay item pays through the sandbox; then the batch is finished.
    const worker = new PayoutWorker(h.rt);
    for (let i = 0; i < 20 && (await h.request('GET', h.appPath(`/withdrawals/${alipay.id}`))).json.status === 'pending'; i++) await worker.runOnce();
    const done = (await h.request('GET', h.appPath(`/batch_withdrawals/${mixed.json.id}`))).json;
    expect(done).toMatchObject({ status: 'succeeded', count_succeeded: 2, amount_succeeded: 3000, time_finished: expect.any(Number) });

    // A batch of custom items only is finished by its own request.
    const a = (await create({ user: 'cu_batch', amount: 300 })).json;
    const b = (await create({ user: 'cu_batch', amount: 400, user_fee: 1 })).json;
    const only = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [a.id, b.id] } });
    expect(only.status, only.body).toBe(200);
    expect(only.json).toMatchObject({ status: 'succeeded', count: 2, count_succeeded: 2, amount_succeeded: 700, time_finished: expect.any(Number) });
    expect((await h.request('GET', h.appPath(`/batch_withdrawals/${only.json.id}`))).json).toMatchObject({ status: 'succeeded', time_finished: only.json.time_finished });
    // The same request again answers the same batch.
    const replay = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [b.id, a.id] } });
    expect(replay.json).toMatchObject({ id: only.json.id, status: 'succeeded' });
    expect(await eventsOf(a.id)).toHaveLength(1);
    expect(await balances('cu_batch')).toEqual({ available: 16_300, withdrawable: 16_300 });
    expect((await h.verify()).ok).toBe(true);
  });

  it('confirms in live mode without any channel credentials', async () => {
    await h.createUser('cu_live', {}, h.liveKey);
    await h.fund('cu_live', 5_000, h.liveKey);
    const w = await create({ user: 'cu_live', amount: 1200 }, h.liveKey);
    expect(w.status, w.body).toBe(200);
    expect(w.json).toMatchObject({ livemode: true, status: 'created' });
    // An alipay withdrawal of the same app is refused at confirm: no credentials.
    const alipay = await h.request('POST', h.appPath('/withdrawals'), {
      key: h.liveKey, body: { user: 'cu_live', amount: 1000, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', 'payee@example.com') },
    });
    expect((await put(alipay.json.id, 'pending', h.liveKey)).status).toBe(402);
    const confirmed = await put(w.json.id, 'pending', h.liveKey);
    expect(confirmed.status, confirmed.body).toBe(200);
    expect(confirmed.json).toMatchObject({ status: 'succeeded', livemode: true, time_succeeded: expect.any(Number) });
    const batchOne = (await create({ user: 'cu_live', amount: 100 }, h.liveKey)).json;
    const batch = await h.request('POST', h.appPath('/batch_withdrawals'), { key: h.liveKey, body: { withdrawals: [batchOne.id] } });
    expect(batch.status, batch.body).toBe(200);
    expect(batch.json).toMatchObject({ status: 'succeeded', livemode: true });
    expect(await balances('cu_live', h.liveKey)).toEqual({ available: 2700, withdrawable: 2700 });
    const events = await eventsOf(w.json.id);
    expect(events.map((e) => e.type)).toEqual(['balance.withdrawal.succeeded']);
    expect((await h.verify()).ok).toBe(true);
  });

  it('the official Node SDK creates and confirms one', async () => {
    const pingpp = await officialSdk(h);
    await pingpp.users.create(h.appId, { id: 'cu_sdk', name: null });
    await h.fund('cu_sdk', 1_000);
    const w = await pingpp.withdrawals.create(h.appId, { user: 'cu_sdk', amount: 600, channel: 'custom', order_no: 'sdk_custom-1', description: '线下打款' });
    expect(w).toMatchObject({ status: 'created', channel: 'custom', extra: {} });
    const confirmed = await pingpp.withdrawals.confirm(h.appId, w.id);
    expect(confirmed).toMatchObject({ id: w.id, status: 'succeeded', time_succeeded: expect.any(Number) });
    await expect(pingpp.withdrawals.confirm(h.appId, w.id)).rejects.toMatchObject({ rawType: 'invalid_request_error', message: expect.stringContaining('不能被更新状态') });
  });

  it('the console confirms one to succeeded, with its audit line in the same transaction', async () => {
    await createOperator(h.rt, { email: 'custom-ops@example.com', password: 'correct horse battery', account: 'default' });
    const login = await h.request('POST', '/admin/session', { key: null, body: { email: 'custom-ops@example.com', password: 'correct horse battery' } });
    expect(login.status, login.body).toBe(200);
    const headers = { cookie: String(login.headers['set-cookie']).split(';')[0]!, 'x-csrf-token': login.json.csrf_token as string };
    await h.createUser('cu_console');
    await h.fund('cu_console', 1_000);
    const w = (await create({ user: 'cu_console', amount: 250 })).json;
    const confirmed = await h.request('POST', `/admin/apps/${h.appId}/withdrawals/${w.id}/confirm`, { key: null, headers, body: { mode: 'test' } });
    expect(confirmed.status, confirmed.body).toBe(200);
    expect(confirmed.json).toMatchObject({ id: w.id, status: 'succeeded', time_succeeded: expect.any(Number) });
    const audit = (await h.request('GET', '/admin/audit', { key: null, headers })).json.data as { action: string; target: string }[];
    expect(audit.filter((l) => l.target === w.id).map((l) => l.action)).toEqual(['withdrawal.confirm']);
    expect((await eventsOf(w.id)).map((e) => e.type)).toEqual(['balance.withdrawal.succeeded']);
  });

  describe('total_withdrawals_amount', () => {
    it('agrees with the withdrawals per status', async () => {
      const all = [];
      for (let page: string | undefined; ;) {
        const res = (await h.request('GET', h.appPath(`/withdrawals?channel=custom&per_page=100${page ? `&starting_after=${page}` : ''}`))).json;
        all.push(...(res.data as { id: string; status: string; amount: number }[]));
        if (!res.has_more) break;
        page = all[all.length - 1]!.id;
      }
      for (const status of ['created', 'pending', 'succeeded', 'canceled']) {
        const expected = all.filter((w) => w.status === status).reduce((s, w) => s + w.amount, 0);
        const res = (await h.request('GET', h.appPath(`/withdrawals?channel=custom&status=${status}&per_page=1`))).json;
        expect(res.total_withdrawals_amount, status).toBe(expected);
      }
      const byStatus = (await h.request('GET', h.appPath('/withdrawals?channel=custom&status=succeeded'))).json.total_withdrawals_amount;
      expect(byStatus).toBe(3000 + 1000 + 300 + 400 + 600 + 250);
      expect((await h.request('GET', h.appPath('/withdrawals?channel=custom&status=pending'))).json.total_withdrawals_amount).toBe(0);
      expect((await h.verify()).ok).toBe(true);
    });
  });
});
