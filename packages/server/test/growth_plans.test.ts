import { afterAll, beforeAll, expect, it } from 'vitest';
import { CompiledQuery, type KyselyPlugin, type QueryId, type RootOperationNode } from 'kysely';
import type { Db } from '../src/store/db.ts';
import { MAX_PAGE_OFFSET } from '../src/store/paging.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { fillGrowth } from './helpers/growth_fill.ts';

/**
 * Every list and filter the API offers must be answered by an index that yields the page in
 * order: the engine's own plan for each page query a request issues shows no sort and no full
 * scan (SQLite: no `USE TEMP B-TREE`, no `SCAN`; PostgreSQL, on a few thousand rows after
 * ANALYZE, both the plan for the given values and the generic plan a named statement may switch
 * to: an Index Scan, no Sort, no Seq Scan), and a cursor page's bound is part of the index range.
 * A new filter without its index fails here.
 *
 * Two filters are knowingly answered through a narrower index instead of one of their own:
 * withdrawals and balance transactions filtered by `user` plus another field use the user index
 * and skip that one user's non-matching rows (a user's history, not the table), and events with
 * `delivery_success` use events_list and check each event's deliveries (undelivered events are a
 * steady fraction, so a page costs the same at any depth). Balance transfers filtered by `user`
 * (sent OR received) merge two index ranges of one user and sort them; not checked here.
 */

const DAY_S = 86_400;

describeEngines('growth: every list by index', (engine) => {
  let h: Harness;
  let original: Db;
  const recorded: { node: RootOperationNode; queryId: QueryId }[] = [];
  const endS = Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    h = await Harness.start(engine);
    original = h.rt.store.db;
    // Rows enough that PostgreSQL's planner prefers the indexes it should (a tiny table is read whole).
    await fillGrowth(original, { app: h.appId, accountId: h.merchant.account, rows: 10_000, users: 1_000, endS, spanS: 60 * DAY_S, undeliveredEvery: 10 });
    // Statistics, as a database that has been running a while has them (the planners' choices depend on them).
    await original.executeQuery(CompiledQuery.raw('analyze'));
    const recorder: KyselyPlugin = {
      transformQuery: (args) => {
        recorded.push({ node: args.node, queryId: args.queryId });
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    // The services read rt.store.db on each call: route them through the recorder.
    (h.rt.store as { db: Db }).db = original.withPlugin(recorder);
  }, 120_000);
  afterAll(async () => h?.close());

  /** The plan of every ordered, limited SELECT (a page) the request issued. */
  async function pagePlans(url: string, table: string): Promise<{ sql: string; plan: string[] }[]> {
    recorded.length = 0;
    const res = await h.request('GET', url);
    expect(res.status, `${url}: ${res.body}`).toBe(200);
    const out: { sql: string; plan: string[] }[] = [];
    for (const { node, queryId } of recorded) {
      if (node.kind !== 'SelectQueryNode' || !node.orderBy || !node.limit) continue;
      const c = original.getExecutor().compileQuery(node, queryId);
      // The list's own page, not the per-page look-ups bounded by it (the settle accounts of 20 users).
      if (!c.sql.startsWith(`select * from "${table}"`)) continue;
      const explain = engine === 'sqlite' ? 'explain query plan ' : 'explain ';
      const r = await original.executeQuery<Record<string, string>>(CompiledQuery.raw(explain + c.sql, [...c.parameters]));
      out.push({ sql: c.sql, plan: r.rows.map((row) => (engine === 'sqlite' ? row.detail! : row['QUERY PLAN']!)) });
      if (engine === 'postgres') {
        // The server's statements are named (prepared once per connection): after five runs
        // PostgreSQL may switch to one generic plan for every parameter value. It must be indexed too.
        const literal = (v: unknown) => (typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
        const generic = await original.connection().execute(async (conn) => {
          await conn.executeQuery(CompiledQuery.raw('set plan_cache_mode = force_generic_plan'));
          await conn.executeQuery(CompiledQuery.raw(`prepare growth_plan as ${c.sql}`));
          try {
            return await conn.executeQuery<Record<string, string>>(CompiledQuery.raw(`explain execute growth_plan(${c.parameters.map(literal).join(', ')})`));
          } finally {
            await conn.executeQuery(CompiledQuery.raw('deallocate growth_plan'));
            await conn.executeQuery(CompiledQuery.raw('reset plan_cache_mode'));
          }
        });
        out.push({ sql: `${c.sql} [generic plan]`, plan: generic.rows.map((row) => row['QUERY PLAN']!) });
      }
    }
    return out;
  }

  function expectIndexed(url: string, plans: { sql: string; plan: string[] }[]): void {
    expect(plans.length, `${url}: no page query recorded`).toBeGreaterThan(0);
    for (const { sql, plan } of plans) {
      const why = `${url}\n${sql}\n${plan.join('\n')}`;
      if (engine === 'sqlite') {
        expect(plan.some((l) => l.includes('USE TEMP B-TREE')), why).toBe(false);
        expect(plan.some((l) => /^SCAN /.test(l.trim())), why).toBe(false);
      } else {
        expect(plan.some((l) => /\bSeq Scan\b/.test(l)), why).toBe(false);
        expect(plan.some((l) => /(^|->\s*)(Incremental )?Sort\b/.test(l.trim())), why).toBe(false);
        expect(plan.some((l) => /Index (Only )?Scan/.test(l)), why).toBe(true);
      }
      // A cursor page starts at the cursor: the (created, id) bound is part of the index range,
      // not a filter applied while walking from the newest row.
      if (/starting_after|ending_before/.test(url)) {
        const bound = engine === 'sqlite' ? /^SEARCH .*\(created,(id|pk)\)[<>]\(\?,\?\)/ : /Index Cond: .*ROW\(created, (id|pk)\) [<>] ROW/;
        expect(plan.some((l) => bound.test(l.trim())), why).toBe(true);
      }
    }
  }

  /** First page, a page by number, a created range, and cursor pages both ways from deep inside. */
  async function checkList(path: string, filters: string[]): Promise<void> {
    const table = path.split('/').pop()!;
    const range = `created[gte]=${endS - 20 * DAY_S}&created[lt]=${endS - 10 * DAY_S}`;
    for (const f of filters) {
      const q = (extra: string) => `${path}?${[f, extra].filter(Boolean).join('&')}`;
      // A cursor a few pages in (batch withdrawals allow at most 20 a page).
      let cursor: string | undefined;
      for (let hop = 0; hop < 3; hop++) {
        const page = await h.request('GET', q(`limit=20${cursor ? `&starting_after=${cursor}` : ''}`));
        expect(page.status, page.body).toBe(200);
        const data = page.json.data as { id: string }[];
        if (data.length === 0) break;
        cursor = data[data.length - 1]!.id;
      }
      const urls = [q(''), q('page=3&per_page=20'), q(range), q(`${range}&limit=5`)];
      if (cursor) urls.push(q(`limit=10&starting_after=${cursor}`), q(`limit=10&ending_before=${cursor}`));
      for (const url of urls) expectIndexed(url, await pagePlans(url, table));
    }
  }

  const combos = (fields: Record<string, string>) => {
    const keys = Object.keys(fields);
    const out: string[] = [];
    for (let mask = 0; mask < 1 << keys.length; mask++) {
      out.push(keys.filter((_, i) => mask & (1 << i)).map((k) => `${k}=${fields[k]}`).join('&'));
    }
    return out;
  };

  it('withdrawals: every combination of status, user and channel', async () => {
    await checkList(h.appPath('/withdrawals'), combos({ status: 'succeeded', user: 'gu7', channel: 'alipay' }));
    await checkList(h.appPath('/withdrawals'), ['status=failed', 'status=canceled&channel=wx']);
  });

  it('balance transactions, users, batch withdrawals, bonuses, settlements, transfers', async () => {
    await checkList(h.appPath('/balance_transactions'), combos({ user: 'gu7', type: 'withdrawal' }));
    await checkList(h.appPath('/users'), ['', 'type=customer']);
    await checkList(h.appPath('/batch_withdrawals'), ['', 'status=partially_succeeded']);
    await checkList(h.appPath('/balance_bonuses'), ['', 'user=gu7']);
    await checkList(h.appPath('/balance_settlements'), ['', 'user=gu7']);
    await checkList(h.appPath('/balance_transfers'), ['', 'recipient=gu8']);
  });

  it('events: by type and by delivery_success', async () => {
    await checkList('/v1/events', combos({ type: 'order.succeeded', delivery_success: 'false' }));
    await checkList('/v1/events', ['delivery_success=true']);
  });

  it('page=N is bounded: past the maximum offset a 400 points to starting_after and nothing is read', async () => {
    const perPage = 100;
    const lastPage = MAX_PAGE_OFFSET / perPage + 1;
    const ok = await h.request('GET', h.appPath(`/withdrawals?per_page=${perPage}&page=${lastPage}`));
    expect(ok.status).toBe(200);
    recorded.length = 0;
    const deep = await h.request('GET', h.appPath(`/withdrawals?per_page=${perPage}&page=${lastPage + 1}`));
    expect(deep.status).toBe(400);
    expect(deep.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_parameter', param: 'page' });
    expect(deep.json.error.message).toContain('starting_after');
    expect(recorded.some(({ node }) => node.kind === 'SelectQueryNode' && node.limit)).toBe(false);
  });

  it('the payout queue and batch look-ups use their partial indexes (null for most withdrawals, not indexed)', async () => {
    const explain = async (text: string, params: unknown[]) => {
      const r = await original.executeQuery<Record<string, string>>(CompiledQuery.raw((engine === 'sqlite' ? 'explain query plan ' : 'explain ') + text, params));
      return r.rows.map((row) => (engine === 'sqlite' ? row.detail! : row['QUERY PLAN']!)).join('\n');
    };
    const p = engine === 'sqlite' ? ['?', '?'] : ['$1', '$2'];
    // The payout worker's claim (channels/worker.ts) and a batch's items (services/batch_withdrawals.ts).
    const due = await explain(
      `select id from withdrawals where status = 'pending' and payout_due_ms <= ${p[0]} and (payout_lease_ms is null or payout_lease_ms < ${p[1]}) order by payout_due_ms limit 10`,
      [Date.now(), Date.now()],
    );
    expect(due).toContain('withdrawals_payout_due');
    const batch = await explain(`select status, count(*) from withdrawals where batch_withdrawal = ${p[0]} group by status`, ['1801709211630000001']);
    expect(batch).toContain('withdrawals_batch');
    // Partial: a withdrawal outside any batch and not yet confirmed has no entry in either.
    const partial = await original.executeQuery<{ n: number }>(
      CompiledQuery.raw(
        engine === 'sqlite'
          ? "select count(*) as n from sqlite_master where name in ('withdrawals_batch', 'withdrawals_payout_due') and sql like '%where%not null%'"
          : "select count(*)::int as n from pg_indexes where indexname in ('withdrawals_batch', 'withdrawals_payout_due') and indexdef ilike '%where%not null%'",
      ),
    );
    expect(Number(partial.rows[0]!.n)).toBe(2);
  });

  it('a list total reads the kept totals by day: the all-time buckets and a created range', async () => {
    for (const url of [h.appPath('/withdrawals'), h.appPath(`/withdrawals?created[gte]=${endS - 5 * DAY_S}`), h.appPath('/withdrawals?status=succeeded')]) {
      recorded.length = 0;
      const res = await h.request('GET', url);
      expect(res.status, res.body).toBe(200);
      const totals = recorded.map(({ node, queryId }) => original.getExecutor().compileQuery(node, queryId)).filter((c) => c.sql.includes('from "withdrawal_totals"'));
      expect(totals.length, url).toBe(1);
      const c = totals[0]!;
      const r = await original.executeQuery<Record<string, string>>(CompiledQuery.raw((engine === 'sqlite' ? 'explain query plan ' : 'explain ') + c.sql, [...c.parameters]));
      const plan = r.rows.map((row) => (engine === 'sqlite' ? row.detail! : row['QUERY PLAN']!)).join('\n');
      // Not the primary key, whose status and channel come before the day: it walked every bucket of the app.
      expect(plan, `${url}\n${c.sql}\n${plan}`).toContain('withdrawal_totals_day');
    }
  });
});
