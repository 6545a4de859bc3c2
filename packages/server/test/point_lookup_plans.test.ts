import { afterAll, beforeAll, expect, it } from 'vitest';
import { CompiledQuery } from 'kysely';
import { ACTIVE_USER_DEBIT } from '../src/ledger/ledger.ts';
import { RETRIEVE_SQL } from '../src/services/users.ts';
import { CREATE_SQL } from '../src/store/pg/withdrawal_create.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { fillGrowth } from './helpers/growth_fill.ts';

/**
 * The hottest statements find their user by `(app, livemode, id)`: a withdrawal create's balance
 * UPDATE (SQLite: ledger.ts ACTIVE_USER_DEBIT; PostgreSQL: the create's one statement) and the
 * user retrieve. Each must reach that one row through the unique `(app, livemode, id)` index, not
 * walk the app's users through an index that shares only `(app, livemode)` with a filter on id.
 *
 * On PostgreSQL that depends on the planner's statistics: on a database that had none, its plans
 * for both statements read every user of the app (`Rows Removed by Filter: 999`), ~1 ms of
 * database CPU per request in the bench, 2026-11-27. This checks the state a serving database is
 * in (statistics gathered, as autovacuum does), on both the plan for given values and the generic
 * plan a named statement switches to (store/db.ts names every statement). A new index that
 * shares the unique one's first columns, or a rewrite of these statements, must keep it so.
 */
describeEngines('point look-ups by user id take the unique index', (engine) => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start(engine);
    const endS = Math.floor(Date.now() / 1000);
    await fillGrowth(h.rt.store.db, { app: h.appId, accountId: h.merchant.account, rows: 1_000, users: 1_000, endS, spanS: 86_400 });
    await h.rt.store.db.executeQuery(CompiledQuery.raw('analyze'));
  }, 120_000);
  afterAll(async () => h?.close());

  const literal = (v: unknown) => (v === null ? 'null' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);

  /** The plan for these values, and on PostgreSQL also the generic plan. */
  async function plans(text: string, values: unknown[]): Promise<{ which: string; plan: string[] }[]> {
    const db = h.rt.store.db;
    if (engine === 'sqlite') {
      const r = await db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${text}`, values));
      return [{ which: 'plan', plan: r.rows.map((row) => row.detail) }];
    }
    return db.connection().execute(async (conn) => {
      const out: { which: string; plan: string[] }[] = [];
      const explain = async (which: string) => {
        const r = await conn.executeQuery<Record<string, string>>(CompiledQuery.raw(`explain execute point_lookup(${values.map(literal).join(', ')})`));
        out.push({ which, plan: r.rows.map((row) => row['QUERY PLAN']!) });
      };
      await conn.executeQuery(CompiledQuery.raw(`prepare point_lookup as ${text}`));
      try {
        await explain('custom plan');
        await conn.executeQuery(CompiledQuery.raw('set plan_cache_mode = force_generic_plan'));
        await explain('generic plan');
      } finally {
        await conn.executeQuery(CompiledQuery.raw('reset plan_cache_mode'));
        await conn.executeQuery(CompiledQuery.raw('deallocate point_lookup'));
      }
      return out;
    });
  }

  /** The users row is found by an index range on all of app, livemode and id. */
  function expectUniqueLookup(what: string, found: { which: string; plan: string[] }[]): void {
    for (const { which, plan } of found) {
      const why = `${what}, ${which}:\n${plan.join('\n')}`;
      if (engine === 'sqlite') {
        expect(plan.some((l) => /^SEARCH (users|u) USING INDEX \S+ \(app=\? AND livemode=\? AND id=\?\)/.test(l.trim())), why).toBe(true);
      } else {
        const users = plan.findIndex((l) => /Index Scan using \S+ on users\b/.test(l));
        expect(users, why).toBeGreaterThanOrEqual(0);
        // The lines that belong to that scan: its Index Cond, and a Filter if it has one.
        const own = plan.slice(users + 1).filter((l, i, rest) => rest.slice(0, i + 1).every((x) => !/->/.test(x)));
        expect(own.some((l) => /Index Cond: .*\bapp = .*\blivemode = .*\bid = /.test(l)), why).toBe(true);
        expect(own.some((l) => /Filter: .*\bid = /.test(l)), why).toBe(false);
      }
    }
  }

  it('the user retrieve', async () => {
    expectUniqueLookup('retrieve', await plans(RETRIEVE_SQL[engine], [h.appId, 0, 'gu500']));
  });

  it("the withdrawal create's balance UPDATE", async () => {
    if (engine === 'sqlite') {
      expectUniqueLookup('debit', await plans(ACTIVE_USER_DEBIT.sql(h.rt.store.db), [100, 100, h.appId, 0, 'gu500', 0, 100]));
      return;
    }
    const nowS = Math.floor(Date.now() / 1000);
    // The create's 19 parameters (store/pg/withdrawal_create.ts), in order.
    const values = [
      h.appId, 0, 'gu500', 100, 'je1', 'btx1', 'wd1', nowS, `app:${h.appId}:test:withdrawal_hold`, null, 'plan1', 'hash', '{}', 0,
      'alipay', '{}', 'req1', nowS - (nowS % 86_400), 0,
    ];
    expectUniqueLookup('create', await plans(CREATE_SQL, values));
  });
});
