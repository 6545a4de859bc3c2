import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompiledQuery } from 'kysely';
import type { Db } from '../src/store/db.ts';
import { createWithdrawalPg, type PgWithdrawalCreate } from '../src/store/pg/withdrawal_create.ts';
import { DAY_S, PG_TOTALS_SHARDS, totalsShard } from '../src/store/withdrawal_totals.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra } from './helpers/withdrawals.ts';
import { requestHash } from '../src/services/common.ts';

/**
 * A withdrawal create is one unit: on PostgreSQL one statement (store/pg/withdrawal_create.ts),
 * on SQLite one transaction. Refused (short of funds, disabled or unknown user, an order_no taken
 * with other parameters) it leaves every table, every balance and the kept totals exactly as they
 * were; accepted, the answer is what the rows say; raced on one balance, it never overdraws.
 */
describeEngines('withdrawal create: all or nothing', (engine) => {
  let h: Harness;
  const create = (body: Record<string, unknown>) =>
    h.request('POST', h.appPath('/withdrawals'), { body: { channel: 'alipay', extra: seedExtra('alipay'), ...body } });

  /** Everything a create writes: row counts, balances, and the kept totals summed per bucket. */
  async function state() {
    const db = h.rt.store.db;
    const totals = await db
      .selectFrom('withdrawal_totals')
      .select(['status', 'channel', 'day_s', (eb) => eb.fn.sum<number>('count').as('count'), (eb) => eb.fn.sum<number>('amount').as('amount')])
      .groupBy(['status', 'channel', 'day_s'])
      .orderBy('status').orderBy('channel').orderBy('day_s')
      .execute();
    const users = await db.selectFrom('users').select(['id', 'available_balance', 'withdrawable_balance']).orderBy('id').execute();
    return {
      snapshot: await h.snapshot(),
      totals: totals.map((t) => ({ ...t, day_s: Number(t.day_s), count: Number(t.count), amount: Number(t.amount) })),
      users: users.map((u) => ({ ...u, available_balance: Number(u.available_balance), withdrawable_balance: Number(u.withdrawable_balance) })),
    };
  }

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { poolSize: 20 } });
    await h.createUser('rich');
    await h.fund('rich', 10_000);
    await h.createUser('poor');
    await h.fund('poor', 500);
    await h.createUser('off');
    await h.fund('off', 5_000);
    expect((await h.request('PUT', h.appPath('/users/off'), { body: { disabled: true } })).status).toBe(200);
    expect((await create({ user: 'rich', amount: 100, order_no: 'taken1' })).status).toBe(200);
  });
  afterAll(async () => h?.close());

  it.each([
    { name: 'one fen more than the balance', body: { user: 'poor', amount: 501, order_no: 'short1' }, code: 'insufficient_balance', param: 'amount' },
    { name: 'a disabled user', body: { user: 'off', amount: 100, order_no: 'off1' }, code: 'user_disabled', param: 'user' },
    { name: 'a disabled user short of funds', body: { user: 'off', amount: 9_999, order_no: 'off2' }, code: 'user_disabled', param: 'user' },
    { name: 'an unknown user', body: { user: 'ghost', amount: 100, order_no: 'ghost1' }, code: 'user_not_found', param: 'user' },
    { name: 'an order_no taken with other parameters', body: { user: 'rich', amount: 200, order_no: 'taken1' }, code: 'duplicate_order_no', param: 'order_no' },
    { name: 'an order_no taken, by a user short of funds', body: { user: 'poor', amount: 100_000, order_no: 'taken1' }, code: 'duplicate_order_no', param: 'order_no' },
    { name: 'an order_no taken, by an unknown user', body: { user: 'ghost', amount: 100, order_no: 'taken1' }, code: 'duplicate_order_no', param: 'order_no' },
  ])('refused: $name, nothing written', async ({ body, code, param }) => {
    const before = await state();
    const res = await create(body);
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code, param });
    expect(await state()).toEqual(before);
  });

  it('the same order_no with the same parameters answers the first withdrawal and writes nothing', async () => {
    const first = await create({ user: 'rich', amount: 300, order_no: 'again1', description: 'd', metadata: { k: 'v' } });
    expect(first.status).toBe(200);
    const before = await state();
    const retry = await create({ user: 'rich', amount: 300, order_no: 'again1', description: 'd', metadata: { k: 'v' } });
    expect(retry.status).toBe(200);
    expect(retry.json).toEqual(first.json);
    expect(await state()).toEqual(before);
  });

  it('a user_fee of 0 and no user_fee are the same request (as for transfers), and a row hashed as sent by an earlier version still replays', async () => {
    const first = await create({ user: 'rich', amount: 300, order_no: 'fee0a' });
    const before = await state();
    const withZero = await create({ user: 'rich', amount: 300, order_no: 'fee0a', user_fee: 0 });
    expect(withZero.status, withZero.body).toBe(200);
    expect(withZero.json).toEqual(first.json);
    expect((await create({ user: 'rich', amount: 300, order_no: 'fee0a', user_fee: 1 })).json.error).toMatchObject({ code: 'duplicate_order_no' });
    expect(await state()).toEqual(before);
    // Earlier versions stored the hash of the body as sent, without user_fee here: a retry of it replays.
    const sent = { user: 'rich', amount: 300, order_no: 'fee0b', channel: 'alipay', extra: seedExtra('alipay') };
    const old = await create(sent);
    await h.rt.store.db.updateTable('withdrawals').set({ request_hash: requestHash(sent) }).where('id', '=', old.json.id).execute();
    expect((await create(sent)).json).toEqual(old.json);
  });

  it('accepted: the answer is the stored withdrawal, and the journal, line, balance and totals move together', async () => {
    await h.createUser('exact');
    await h.fund('exact', 1_234);
    const before = await state();
    const res = await create({ user: 'exact', amount: 1_234, user_fee: 34, order_no: 'exact1', description: '提现', metadata: { a: 1 } });
    expect(res.status).toBe(200);
    const w = res.json;
    expect(w).toMatchObject({ object: 'withdrawal', user: 'exact', amount: 1_234, user_fee: 34, fee: 0, status: 'created', channel: 'alipay', description: '提现', metadata: { a: 1 } });
    expect((await h.request('GET', h.appPath(`/withdrawals/${w.id}`))).json).toEqual(w);

    const db = h.rt.store.db;
    const line = await db.selectFrom('balance_transactions').selectAll().where('id', '=', w.balance_transaction).executeTakeFirstOrThrow();
    expect(line).toMatchObject({ user: 'exact', type: 'withdrawal', source: w.id, description: '提现', created: w.created });
    expect(Number(line.amount)).toBe(-1_234);
    expect(Number(line.available_balance)).toBe(0);
    const entry = await db.selectFrom('journal_entries').selectAll().where('id', '=', line.entry_id).executeTakeFirstOrThrow();
    expect(entry).toMatchObject({ type: 'withdrawal', source: w.id });
    const postings = await db.selectFrom('postings').select(['account', 'amount']).where('entry_id', '=', entry.id).orderBy('seq').execute();
    expect(postings.map((p) => [p.account.replace(/^user:[^:]+:/, 'user:*:'), Number(p.amount)])).toEqual([
      ['user:*:withdrawable', -1_234],
      [`app:${h.appId}:test:withdrawal_hold`, 1_234],
    ]);

    const after = await state();
    expect(after.users.find((u) => u.id === 'exact')).toEqual({ id: 'exact', available_balance: 0, withdrawable_balance: 0 });
    for (const k of ['withdrawals', 'journal_entries', 'balance_transactions']) expect(after.snapshot[k]).toBe(before.snapshot[k]! + 1);
    expect(after.snapshot.postings).toBe(before.snapshot.postings! + 2);
    const created = (s: typeof before, allTime: boolean) => s.totals.find((t) => t.status === 'created' && t.channel === 'alipay' && (t.day_s === -1) === allTime);
    for (const allTime of [true, false]) {
      expect(created(after, allTime)!.count).toBe((created(before, allTime)?.count ?? 0) + 1);
      expect(created(after, allTime)!.amount).toBe((created(before, allTime)?.amount ?? 0) + 1_234);
    }
    expect((await create({ user: 'exact', amount: 1, order_no: 'exact2' })).json.error.code).toBe('insufficient_balance');
    expect((await h.verify()).drift).toEqual([]);
  });

  it('parallel creates of many sizes on one balance, with identical retries among them: never overdrawn, every total right', async () => {
    await h.createUser('hot');
    const funded = 50_000;
    await h.fund('hot', funded);
    // 120 creates of 100..2,380 fen (sum ≈ 148k: about a third fit), each order sent twice at once.
    const bodies = Array.from({ length: 120 }, (_, i) => ({ user: 'hot', amount: 100 + ((i * 37) % 120) * 19, order_no: `hot${i}` }));
    const results = await Promise.all([...bodies, ...bodies].map((b) => create(b)));
    const byOrder = new Map<string, { status: number; json: { id?: string; error?: { code: string } } }[]>();
    results.forEach((r, i) => byOrder.set(bodies[i % bodies.length]!.order_no, [...(byOrder.get(bodies[i % bodies.length]!.order_no) ?? []), r]));
    let spent = 0;
    const refused: number[] = [];
    for (const [orderNo, [a, b]] of byOrder) {
      for (const r of [a!, b!]) {
        if (r.status !== 200) expect(r.json.error?.code, orderNo).toBe('insufficient_balance');
      }
      // Twins: the same withdrawal, or (both refused) none; a refused twin of an accepted one answers it.
      const ok = [a!, b!].filter((r) => r.status === 200);
      if (ok.length === 2) expect(ok[0]!.json.id).toBe(ok[1]!.json.id);
      const amount = bodies.find((x) => x.order_no === orderNo)!.amount;
      if (ok.length > 0) spent += amount;
      else refused.push(amount);
    }
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(funded);
    const user = (await h.request('GET', h.appPath('/users/hot'))).json;
    expect(user).toMatchObject({ withdrawable_balance: funded - spent, available_balance: funded - spent });
    // The balance only fell during the race, so each refusal asked for more than is left even now.
    expect(refused.length).toBeGreaterThan(0);
    for (const amount of refused) expect(amount).toBeGreaterThan(funded - spent);
    const list = await h.request('GET', h.appPath('/withdrawals?user=hot&per_page=100'));
    expect(list.json.total_withdrawals_amount).toBe(spent);
    const rows = await h.rt.store.db.selectFrom('withdrawals').select('order_no').where('user', '=', 'hot').execute();
    expect(new Set(rows.map((r) => r.order_no)).size).toBe(rows.length);
    expect((await h.verify()).drift).toEqual([]);
  });

  it('every move of a withdrawal lands in its user\'s shard: each kept row is the sum of its own withdrawals', async () => {
    const users = Array.from({ length: 24 }, (_, i) => `spread${i}`);
    for (const u of users) {
      await h.createUser(u);
      await h.fund(u, 10_000);
    }
    const made = await Promise.all(users.flatMap((u, i) => [1, 2, 3].map((k) => create({ user: u, amount: 100 * k + i, order_no: `sp${i}x${k}` }))));
    const ids = made.map((r) => r.json.id as string);
    await Promise.all(ids.filter((_, i) => i % 3 === 0).map((id) => h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })));
    await Promise.all(ids.filter((_, i) => i % 3 === 1).map((id) => h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'canceled' } })));

    const shards = engine === 'postgres' ? PG_TOTALS_SHARDS : 1;
    const rows = await h.rt.store.db.selectFrom('withdrawals').select(['user', 'status', 'channel', 'created', 'amount']).where('app', '=', h.appId).execute();
    const want = new Map<string, { count: number; amount: number }>();
    for (const w of rows) {
      for (const day of [-1, Number(w.created) - (Number(w.created) % DAY_S)]) {
        const k = `${w.status}/${w.channel}/${day}/${totalsShard(w.user, shards)}`;
        const t = want.get(k) ?? { count: 0, amount: 0 };
        want.set(k, { count: t.count + 1, amount: t.amount + Number(w.amount) });
      }
    }
    const kept = await h.rt.store.db.selectFrom('withdrawal_totals').select(['status', 'channel', 'day_s', 'shard', 'count', 'amount']).where('app', '=', h.appId).execute();
    const got = new Map(
      kept.filter((t) => Number(t.count) !== 0 || Number(t.amount) !== 0).map((t) => [`${t.status}/${t.channel}/${Number(t.day_s)}/${t.shard}`, { count: Number(t.count), amount: Number(t.amount) }]),
    );
    expect(got).toEqual(want);
    const used = new Set(kept.map((t) => t.shard));
    if (engine === 'postgres') expect(used.size).toBeGreaterThan(4);
    else expect([...used]).toEqual([0]);
  });
});

describeEngines('withdrawal creates racing confirms, cancels, batch confirms and the payout worker', (engine) => {
  it('every answer is a 200, and the ledger and the kept totals stay exact', async () => {
    const h = await Harness.start(engine, { config: { poolSize: 20, sandboxDelayMs: 0 } });
    try {
      const users = Array.from({ length: 20 }, (_, i) => `m${i}`);
      for (const u of users) {
        await h.createUser(u);
        await h.fund(u, 1_000_000);
      }
      const worker = new PayoutWorker(h.rt);
      let stop = false;
      const paying = (async () => {
        while (!stop) {
          await worker.runOnce();
          // On SQLite a run with nothing due settles without I/O: yield so the requests get the loop.
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const answers: number[] = [];
      let n = 0;
      await Promise.all(
        Array.from({ length: 20 }, async (_, c) => {
          for (let i = 0; i < 20; i++) {
            const k = n++;
            const channel = k % 2 ? 'alipay' : 'wx';
            const r = await h.request('POST', h.appPath('/withdrawals'), {
              body: { user: users[(c + i) % users.length], amount: 10 + (k % 50), channel, order_no: `race${k}`, extra: seedExtra(channel) },
            });
            answers.push(r.status);
            if (r.status !== 200) continue;
            const path = h.appPath(`/withdrawals/${r.json.id}`);
            if (k % 3 === 0) answers.push((await h.request('PUT', path, { body: { status: 'pending' } })).status);
            else if (k % 3 === 1) answers.push((await h.request('PUT', path, { body: { status: 'canceled' } })).status);
            else if (k % 5 === 2) answers.push((await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [r.json.id], status: 'pending' } })).status);
          }
        }),
      );
      stop = true;
      await paying;
      expect(answers.length).toBeGreaterThan(400);
      expect(answers.filter((s) => s !== 200)).toEqual([]);
      expect((await h.verify()).drift).toEqual([]);
    } finally {
      await h.close();
    }
  }, 120_000);
});

describe('the one-statement PostgreSQL create runs again after a deadlock or serialization failure', () => {
  const input: PgWithdrawalCreate = {
    app: 'app_x', livemode: false, requestId: 'iar_1', user: 'u1', amount: 500, userFee: 0, channel: 'alipay',
    extra: { account: 'a@b.cn', name: '张三' }, orderNo: 'o1', requestHash: 'h', description: null, metadata: '{}',
  };
  /** A database whose create statement fails with the given codes first, then matches the user. */
  function fakeDb(codes: string[]) {
    const seen: unknown[][] = [];
    const db = {
      async executeQuery(q: CompiledQuery) {
        seen.push([...q.parameters]);
        const code = codes.shift();
        if (code) throw Object.assign(new Error(`pg error ${code}`), { code });
        return { rows: [{ pk: 'upk1', available_balance: 1_000, withdrawable_balance: 500 }] };
      },
    };
    return { db: db as unknown as Db, seen };
  }

  it('40P01 and 40001 are retried, each attempt with new ids', async () => {
    const { db, seen } = fakeDb(['40P01', '40001']);
    const row = await createWithdrawalPg(db, () => Date.UTC(2026, 0, 1), input);
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((p) => p[6])).size).toBe(3); // the withdrawal id
    expect(row).toMatchObject({ id: seen[2]![6], user_pk: 'upk1', amount: 500, status: 'created', balance_transaction: seen[2]![5] });
  });

  it('other errors, and a conflict that keeps coming back, are not retried without end', async () => {
    const unique = fakeDb(['23505']);
    await expect(createWithdrawalPg(unique.db, () => Date.UTC(2026, 0, 1), input)).rejects.toMatchObject({ code: '23505' });
    expect(unique.seen).toHaveLength(1);
    const stuck = fakeDb(['40P01', '40P01', '40P01', '40P01', '40P01']);
    await expect(createWithdrawalPg(stuck.db, () => Date.UTC(2026, 0, 1), input)).rejects.toMatchObject({ code: '40P01' });
    expect(stuck.seen).toHaveLength(4);
  });
});
