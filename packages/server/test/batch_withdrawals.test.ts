import { afterAll, beforeAll, expect, it } from 'vitest';
import { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { officialSdk, type PingppClient } from './helpers/pingpp.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';


describeEngines('batch withdrawals', (engine) => {
  let h: Harness;
  let worker: PayoutWorker;
  let pingpp: PingppClient;
  let seq = 0;

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { sandboxDelayMs: 0 } });
    worker = new PayoutWorker(h.rt, { batchSize: 64 });
    pingpp = await officialSdk(h);
    await h.createUser('bw_user');
    await h.fund('bw_user', 10_000_000);
  });
  afterAll(async () => h?.close());

  async function createMany(n: number, ending: '' | '0002' | '0003' = '') {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const w = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user: 'bw_user', amount: 100 + i, user_fee: 1, channel: 'wx_pub', order_no: `bw${seq++}`, extra: seedExtra('wx_pub', sandboxPayee('wx_pub', ending)) },
      });
      ids.push(w.json.id);
    }
    return ids;
  }

  async function drain() {
    for (let round = 0; round < 50; round++) if ((await worker.runOnce()) === 0) return;
    throw new Error('payout worker did not drain in 50 rounds');
  }

  it('confirms 200 at once with the official SDK and reaches succeeded', async () => {
    const ids = await createMany(200);
    const batch = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: ids, metadata: { desk: 'review-1' } });
    expect(batch).toMatchObject({
      object: 'batch_withdrawal', status: 'pending', count: 200, count_succeeded: 0, time_finished: null,
      amount: ids.reduce((s, _, i) => s + 100 + i, 0), user_fee: 200, metadata: { desk: 'review-1' },
      withdrawals: { object: 'list', url: null, has_more: false },
    });
    expect(batch.withdrawals.data).toHaveLength(200);
    expect(batch.withdrawals.data.every((w: { status: string }) => w.status === 'pending')).toBe(true);
    await drain();
    const done = await pingpp.batchWithdrawals.retrieve(h.appId, batch.id);
    expect(done).toMatchObject({ status: 'succeeded', count_succeeded: 200, amount_succeeded: batch.amount, count_failed: 0, time_finished: expect.any(Number) });
  });

  it('a mixed batch ends partially_succeeded, with counters by outcome', async () => {
    const good = await createMany(3);
    const bad = await createMany(2, '0002');
    const batch = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: [...good, ...bad], status: 'pending' });
    await drain();
    const done = await pingpp.batchWithdrawals.retrieve(h.appId, batch.id);
    expect(done).toMatchObject({ status: 'partially_succeeded', count: 5, count_succeeded: 3, count_failed: 2, amount_failed: 100 + 101 });
  });

  it('an all-failed batch ends failed; a batch with a merchant-side failure stays pending until that item is final', async () => {
    const bad = await createMany(2, '0002');
    const failed = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: bad });
    const short = await createMany(1, '0003');
    const waiting = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: short });
    await drain();
    expect((await pingpp.batchWithdrawals.retrieve(h.appId, failed.id)).status).toBe('failed');
    expect((await pingpp.batchWithdrawals.retrieve(h.appId, waiting.id))).toMatchObject({ status: 'pending', time_finished: null });
    await pingpp.withdrawals.cancel(h.appId, short[0]);
    expect((await pingpp.batchWithdrawals.retrieve(h.appId, waiting.id))).toMatchObject({ status: 'canceled', count_canceled: 1, time_finished: expect.any(Number) });
  });

  it('a withdrawal belongs to one batch for life: one back at created is not re-batched', async () => {
    const short = await createMany(1, '0003');
    const good = await createMany(1);
    const first = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: [...short, ...good] });
    await drain();
    expect((await pingpp.withdrawals.retrieve(h.appId, short[0])).status).toBe('created');
    const before = await h.snapshot();
    const again = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: short } });
    expect(again.status).toBe(400);
    expect(again.json.error.param).toBe('withdrawals[0]');
    expect(await h.snapshot()).toEqual(before);
    // Confirmed on its own, it finishes the batch it belongs to.
    await pingpp.withdrawals.confirm(h.appId, short[0]);
    await drain();
    expect(await pingpp.batchWithdrawals.retrieve(h.appId, first.id)).toMatchObject({ status: 'succeeded', count: 2, count_succeeded: 2 });
  });

  it('cancels a batch: every hold goes back to the user', async () => {
    const before = (await h.request('GET', h.appPath('/users/bw_user'))).json.withdrawable_balance;
    const ids = await createMany(4);
    const batch = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: ids, status: 'canceled' });
    expect(batch).toMatchObject({ status: 'canceled', count: 4, count_canceled: 4, time_finished: expect.any(Number) });
    expect((await h.request('GET', h.appPath('/users/bw_user'))).json.withdrawable_balance).toBe(before);
    const list = await pingpp.batchWithdrawals.list(h.appId, { per_page: 2, status: 'canceled' });
    expect(list.data[0].id).toBe(batch.id);
  });

  it('a batch listed as pending that finishes still marks the place for the next page', async () => {
    // The oldest batch's payout fails on the merchant's side, so it stays pending.
    const waiting = await createMany(1, '0003');
    const batches: string[] = []; // newest first, as lists are
    for (const items of [waiting, await createMany(1), await createMany(1)]) batches.unshift((await pingpp.batchWithdrawals.create(h.appId, { withdrawals: items })).id);
    const page1 = await h.request('GET', h.appPath('/batch_withdrawals?status=pending&limit=1'));
    expect(page1.json.data.map((b: { id: string }) => b.id)).toEqual([batches[0]]);
    await drain();
    const finished = await h.request('GET', h.appPath(`/batch_withdrawals/${batches[0]}`));
    expect(finished.json.status).toBe('succeeded');
    // The next page after the finished batch: every batch still pending, all of them older.
    const stillPending = await h.request('GET', h.appPath('/batch_withdrawals?status=pending&limit=20'));
    const page2 = await h.request('GET', h.appPath(`/batch_withdrawals?status=pending&limit=20&starting_after=${batches[0]}`));
    expect(page2.status, page2.body).toBe(200);
    expect(page2.json.data.map((b: { id: string }) => b.id)).toEqual(stillPending.json.data.map((b: { id: string }) => b.id));
    expect(page2.json.data.map((b: { id: string }) => b.id)).toContain(batches[2]);
    expect(page2.json.data.map((b: { id: string }) => b.id)).not.toContain(batches[1]);
    await pingpp.withdrawals.cancel(h.appId, waiting[0]!);
  });

  it('a batch\'s money sums saturate at 2^31−1, which the Java and C# SDKs read as an int', async () => {
    const MAX_INT32 = 2_147_483_647;
    const ids: string[] = [];
    for (const user of ['bw_big_a', 'bw_big_b']) {
      await h.createUser(user);
      await h.fund(user, 1_500_000_000);
      const w = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user, amount: 1_500_000_000, channel: 'wx_pub', order_no: `bw${seq++}`, extra: seedExtra('wx_pub', sandboxPayee('wx_pub', '')) },
      });
      expect(w.status, w.body).toBe(200);
      ids.push(w.json.id);
    }
    const batch = await pingpp.batchWithdrawals.create(h.appId, { withdrawals: ids, status: 'canceled' });
    expect(batch).toMatchObject({ status: 'canceled', count: 2, amount: MAX_INT32, amount_canceled: MAX_INT32, amount_succeeded: 0 });
    const listed = await h.request('GET', h.appPath('/batch_withdrawals?status=canceled&limit=1'));
    expect(listed.json.data[0]).toMatchObject({ id: batch.id, amount: MAX_INT32, amount_canceled: MAX_INT32 });
  });

  it('rejects the whole batch for one bad item, naming it, and changes nothing', async () => {
    const ids = await createMany(3);
    const confirmed = await createMany(1);
    await h.request('PUT', h.appPath(`/withdrawals/${confirmed[0]}`), { body: { status: 'pending' } });
    const cases: [string, unknown, string][] = [
      ['empty batch', { withdrawals: [] }, 'withdrawals'],
      ['201 items', { withdrawals: Array.from({ length: 201 }, (_, i) => `x${i}`) }, 'withdrawals'],
      ['unknown id', { withdrawals: [ids[0], 'nope'] }, 'withdrawals[1]'],
      ['duplicated id', { withdrawals: [ids[0], ids[1], ids[0]] }, 'withdrawals[2]'],
      ['already confirmed', { withdrawals: [ids[0], confirmed[0]] }, 'withdrawals[1]'],
      ['bad status', { withdrawals: ids, status: 'succeeded' }, 'status'],
      ['not an array', { withdrawals: ids[0] }, 'withdrawals'],
      ['unknown parameter', { withdrawals: ids, force: true }, 'force'],
    ];
    const before = await h.snapshot();
    for (const [name, body, param] of cases) {
      const res = await h.request('POST', h.appPath('/batch_withdrawals'), { body });
      expect(res.status, name).toBe(400);
      expect(res.json.error, name).toMatchObject({ type: 'invalid_request_error', param });
    }
    expect(await h.snapshot()).toEqual(before);
    const other = await h.request('GET', h.appPath('/batch_withdrawals/190000'));
    expect(other.status).toBe(404);
  });

  it('the same batch request sent again answers the batch it made; another request naming its withdrawals is refused', async () => {
    const ids = await createMany(3);
    const post = (body: unknown) => h.request('POST', h.appPath('/batch_withdrawals'), { body });
    const first = await post({ withdrawals: ids, metadata: { desk: 'retry' } });
    expect(first.status, first.body).toBe(200);
    const before = await h.snapshot();
    // pingpp-java sends a POST again when its answer was lost. The order of the ids and an explicit
    // default status do not make it another request.
    const again = await post({ withdrawals: [...ids].reverse(), status: 'pending', metadata: { desk: 'retry' } });
    expect(again.status, again.body).toBe(200);
    expect(again.json).toEqual(first.json);
    for (const [name, body] of [
      ['other metadata', { withdrawals: ids, metadata: { desk: 'other' } }],
      ['a cancel', { withdrawals: ids, status: 'canceled', metadata: { desk: 'retry' } }],
      ['fewer items', { withdrawals: ids.slice(0, 2), metadata: { desk: 'retry' } }],
    ] as const) {
      const res = await post(body);
      expect(res.status, name).toBe(400);
      expect(res.json.error, name).toMatchObject({ type: 'invalid_request_error', param: 'withdrawals[0]' });
    }
    expect(await h.snapshot()).toEqual(before);
  });

  it('two identical batch requests at once make one batch, and both are answered with it', async () => {
    for (let round = 0; round < 5; round++) {
      const ids = await createMany(4);
      const batches = await h.rt.store.db.selectFrom('batch_withdrawals').select('id').execute();
      const [a, b] = await Promise.all([0, 1].map(() => h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: ids } })));
      expect([a!.status, b!.status], `${a!.body} ${b!.body}`).toEqual([200, 200]);
      expect(b!.json.id).toBe(a!.json.id);
      expect(await h.rt.store.db.selectFrom('batch_withdrawals').select('id').execute()).toHaveLength(batches.length + 1);
    }
    await drain();
    expect((await h.verify()).drift).toEqual([]);
  });

  it('a batch confirm racing a cancel of one of its items: exactly one of them wins, all or nothing', async () => {
    for (let round = 0; round < 10; round++) {
      const ids = await createMany(5);
      const target = ids[round % ids.length]!;
      const [batch, cancel] = await Promise.all([
        h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: ids } }),
        h.request('PUT', h.appPath(`/withdrawals/${target}`), { body: { status: 'canceled' } }),
      ]);
      expect([batch.status, cancel.status].sort()).toEqual([200, 400]);
      const statuses = await h.rt.store.db.selectFrom('withdrawals').select(['id', 'status']).where('id', 'in', ids).execute();
      if (batch.status === 200) {
        expect(statuses.every((w) => w.status === 'pending')).toBe(true);
      } else {
        // The whole batch was refused, naming the item the cancel took; the others are untouched.
        expect(batch.json.error.param).toBe(`withdrawals[${ids.indexOf(target)}]`);
        for (const w of statuses) expect(w.status).toBe(w.id === target ? 'canceled' : 'created');
      }
    }
    await drain();
    expect((await h.verify()).drift).toEqual([]);
  });

  it('the ledger verifies clean', async () => {
    await drain();
    expect((await h.verify()).drift).toEqual([]);
  });
});
