import { afterEach, beforeEach, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { Store } from '../src/store/db.ts';
import { insertRows, prepared, preparedByCount } from '../src/store/prepared.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';

/**
 * store/prepared.ts: hot statements are compiled once per shape and engine, and only their values
 * change per call. These check that the values really are bound per call (not the first call's
 * values kept), that a slot without a value fails loudly, and that the SQL text is stable.
 */
describeEngines('statements compiled once per shape', (engine) => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let store: Store;
  beforeEach(async () => {
    storage = await freshStorage(engine);
    store = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir });
    await sql`create table probe (id integer primary key, who text not null, amount bigint not null, note text)`.execute(store.db);
  });
  afterEach(async () => {
    await store?.close();
    await storage?.drop();
  });

  const byWho = prepared<{ who: string; min: number }, { id: number; amount: number }>((db, p) =>
    (db as never as Kysely<{ probe: { id: number; who: string; amount: number; note: string | null } }>)
      .selectFrom('probe')
      .select(['id', 'amount'])
      .where('who', '=', p.who)
      .where('amount', '>=', p.min)
      .orderBy('id'),
  );

  it('binds each call\'s values into the same SQL text', async () => {
    await insertRows(store.db, 'probe', [
      { id: 1, who: 'a', amount: 5, note: null },
      { id: 2, who: 'b', amount: 7, note: 'x' },
      { id: 3, who: 'a', amount: 9, note: null },
    ]);
    const text = byWho.sql(store.db);
    expect((await byWho.execute(store.db, { who: 'a', min: 0 })).rows.map((r) => Number(r.id))).toEqual([1, 3]);
    expect((await byWho.execute(store.db, { who: 'a', min: 6 })).rows.map((r) => Number(r.id))).toEqual([3]);
    expect((await byWho.execute(store.db, { who: 'b', min: 0 })).rows.map((r) => Number(r.id))).toEqual([2]);
    expect(byWho.sql(store.db)).toBe(text);
    expect(text).not.toMatch(/'a'|'b'/); // values travel as parameters, never inlined
  });

  it('works inside a transaction, on the transaction\'s connection', async () => {
    await store.transaction(async (trx) => {
      await insertRows(trx, 'probe', [{ id: 10, who: 'c', amount: 1, note: null }]);
      expect((await byWho.execute(trx, { who: 'c', min: 0 })).rows).toHaveLength(1);
    });
    expect((await byWho.execute(store.db, { who: 'c', min: 0 })).rows).toHaveLength(1);
  });

  it('refuses a call that leaves a slot without a value instead of binding NULL', async () => {
    await expect(byWho.execute(store.db, { who: 'a' } as never)).rejects.toThrow(/no value for min/);
  });

  it('insertRows takes rows of another shape through the query builder', async () => {
    // The second row has no `note`: not the same column list, so no shared prepared shape.
    await insertRows(store.db, 'probe', [
      { id: 20, who: 'd', amount: 1, note: 'n' },
      { id: 21, who: 'd', amount: 2 },
    ]);
    const rows = (await sql<{ id: number; note: string | null }>`select id, note from probe where who = 'd' order by id`.execute(store.db)).rows;
    expect(rows.map((r) => [Number(r.id), r.note])).toEqual([
      [20, 'n'],
      [21, null],
    ]);
  });

  it('preparedByCount keeps one shape per row count, within its bound', async () => {
    const insertMany = preparedByCount<Record<string, unknown>>(3, (db, p, n) =>
      db.insertInto('probe' as never).values(Array.from({ length: n }, (_, i) => ({ id: p[`${i}.id`], who: 'e', amount: p[`${i}.amount`] })) as never),
    );
    await insertMany(2).execute(store.db, { '0.id': 30, '0.amount': 1, '1.id': 31, '1.amount': 2 });
    await insertMany(1).execute(store.db, { '0.id': 32, '0.amount': 3 });
    expect(insertMany(2)).toBe(insertMany(2));
    expect(() => insertMany(4)).toThrow(/outside 1\.\.3/);
    const total = (await sql<{ s: number }>`select sum(amount) as s from probe where who = 'e'`.execute(store.db)).rows[0]!;
    expect(Number(total.s)).toBe(6);
  });
});
