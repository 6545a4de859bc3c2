import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { CompiledQuery, sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { defaults } from '../../src/config.ts';
import { openRuntime, type Runtime } from '../../src/runtime.ts';
import { buildApp } from '../../src/http/app.ts';
import { createApp } from '../../src/services/accounts.ts';
import { SETTLE_MARGIN_MS, verifyLedgerIncremental } from '../../src/ledger/verify_incremental.ts';
import { fillGrowth } from '../../test/helpers/growth_fill.ts';
import { freshStorage, type Engine } from '../lib/server.ts';
import type { CustomScenario, Metric, Outcome, RunContext } from '../scenario.ts';

/**
 * Growth: does every list answer in the time of its page, whatever the size of the table? For each
 * size (TIXIAN_BENCH_GROWTH_SIZES, default 10000,1000000; 10000000 on request) a database of its
 * own is filled in bulk (test/helpers/growth_fill.ts: withdrawals, balance transactions and events
 * of that many rows each, users a hundredth, the other lists a tenth, over 365 days), then, in this
 * process through Fastify's inject (no sockets: the figure is the server's own work per answer),
 * each list and filter is asked SAMPLES times for its first page and for a cursor page deep in the
 * table, in turns across the sizes; the median is compared with the same at the smallest size. Also: withdrawal create p99 (a
 * user with money, one request at a time), the time of a full `ledger verify` and of an
 * incremental one after the creates (`--incremental`).
 * Every withdrawal total is compared with a SUM recomputed from the rows (a mismatch fails the run).
 * Opt-in: `npm run bench -- --only growth` (the fill takes minutes at 1M rows).
 */

const SAMPLES = 15;
const CREATES = 300;
const DAY_S = 86_400;
const SPAN_S = 365 * DAY_S;

interface ListCase {
  name: string;
  /** path under /v1 (app lists: under /apps/<app>) */
  path: string;
  query: string;
  table: 'withdrawals' | 'balance_transactions' | 'users' | 'events' | 'batch_withdrawals' | 'balance_bonuses' | 'balance_settlements' | 'balance_transfers';
  /** equality filters on the table, for finding a deep cursor that matches them */
  match?: Record<string, string>;
  sinceS?: number;
  /** withdrawals: check total_withdrawals_amount against the recomputed sum */
  total?: boolean;
}

function cases(endS: number): ListCase[] {
  const month = endS - 30 * DAY_S;
  const range = `created[gte]=${month}&created[lt]=${endS}`;
  const w = (name: string, query: string, match: Record<string, string>, sinceS?: number): ListCase => ({
    name: `withdrawals ${name}`, path: '/withdrawals', query, table: 'withdrawals', match, total: true, ...(sinceS ? { sinceS } : {}),
  });
  return [
    w('all', '', {}),
    w('status', 'status=failed', { status: 'failed' }),
    w('channel', 'channel=alipay', { channel: 'alipay' }),
    w('user', 'user=gu7', { user: 'gu7' }),
    w('status+channel', 'status=succeeded&channel=wx', { status: 'succeeded', channel: 'wx' }),
    w('status+user', 'status=succeeded&user=gu7', { status: 'succeeded', user: 'gu7' }),
    w('status+30 days', `status=succeeded&${range}`, { status: 'succeeded' }, month),
    w('30 days', range, {}, month),
    { name: 'balance_transactions all', path: '/balance_transactions', query: '', table: 'balance_transactions' },
    { name: 'balance_transactions user', path: '/balance_transactions', query: 'user=gu7', table: 'balance_transactions', match: { user: 'gu7' } },
    { name: 'balance_transactions type', path: '/balance_transactions', query: 'type=transfer', table: 'balance_transactions', match: { type: 'transfer' } },
    { name: 'users all', path: '/users', query: '', table: 'users' },
    { name: 'users type', path: '/users', query: 'type=customer', table: 'users', match: { type: 'customer' } },
    { name: 'events all', path: '/events', query: '', table: 'events' },
    { name: 'events delivery_success=false', path: '/events', query: 'delivery_success=false', table: 'events' },
    { name: 'batch_withdrawals all', path: '/batch_withdrawals', query: '', table: 'batch_withdrawals' },
    { name: 'balance_bonuses user', path: '/balance_bonuses', query: 'user=gu7', table: 'balance_bonuses', match: { user: 'gu7' } },
    { name: 'balance_transfers recipient', path: '/balance_transfers', query: 'recipient=gu8', table: 'balance_transfers', match: { recipient: 'gu8' } },
  ];
}

interface SizeResult {
  rows: number;
  fillS: number;
  /** case name → [first page ms, deep cursor page ms] */
  lists: Map<string, [number, number]>;
  createP99Ms: number;
  verifyMs: number;
  incrementalMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One size: its own storage, filled, with a runtime and the API in this process. */
interface Sized {
  rows: number;
  fillS: number;
  rt: Runtime;
  merchant: { id: string; account: string };
  get(url: string): Promise<{ ms: number; json: { data: { id: string }[]; total_withdrawals_amount?: number } }>;
  post(path: string, body: unknown): Promise<{ ms: number; status: number; body: string }>;
  close(): Promise<void>;
}

async function openSize(engine: Engine, pgUrl: string | undefined, rows: number, endS: number): Promise<Sized> {
  const storage = await freshStorage(engine, pgUrl);
  let rt: Runtime | undefined;
  let app: FastifyInstance | undefined;
  try {
    rt = await openRuntime(
      { ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, logLevel: 'silent' },
      { log: pino({ level: 'silent' }) },
    );
    const merchant = await createApp(rt, { name: 'growth' });
    const fillStart = performance.now();
    await fillGrowth(rt.store.db, { app: merchant.id, accountId: merchant.account, rows, endS, spanS: SPAN_S });
    await rt.store.db.executeQuery(CompiledQuery.raw('analyze'));
    const fillS = (performance.now() - fillStart) / 1000;
    const api = await buildApp(rt);
    app = api;
    const headers = { authorization: `Bearer ${merchant.secret_key_test}`, 'content-type': 'application/json' };
    const opened = rt;
    return {
      rows, fillS, rt: opened, merchant,
      async get(url) {
        const t0 = performance.now();
        const res = await api.inject({ method: 'GET', url, headers });
        const ms = performance.now() - t0;
        if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
        return { ms, json: res.json() };
      },
      async post(path, body) {
        const t0 = performance.now();
        const res = await api.inject({ method: 'POST', url: `/v1/apps/${merchant.id}${path}`, headers, payload: JSON.stringify(body) });
        return { ms: performance.now() - t0, status: res.statusCode, body: res.body };
      },
      async close() {
        await api.close();
        await opened.close();
        await storage.drop();
      },
    };
  } catch (err) {
    await app?.close();
    await rt?.close();
    await storage.drop();
    throw err;
  }
}

/**
 * Every size is filled first; then each figure is sampled in turns across the sizes (10k, 1M,
 * 10k, 1M …), so a burst of other work on this shared machine lands on both sides of a ratio.
 */
async function measure(sized: Sized[], endS: number, problems: string[]): Promise<SizeResult[]> {
  const lists = sized.map(() => new Map<string, [number, number]>());
  for (const c of cases(endS)) {
    const prepared = await Promise.all(
      sized.map(async (z) => {
        const base = c.path === '/events' ? '/v1/events' : `/v1/apps/${z.merchant.id}${c.path}`;
        return { url: (extra: string) => `${base}?${[c.query, extra].filter(Boolean).join('&')}`, cursor: await deepCursor(z.rt, z.merchant, c) };
      }),
    );
    const first = sized.map((): number[] => []);
    const deep = sized.map((): number[] => []);
    for (let i = 0; i < SAMPLES; i++) {
      for (const [k, z] of sized.entries()) {
        const { url, cursor } = prepared[k]!;
        first[k]!.push((await z.get(url('per_page=20'))).ms);
        if (cursor) deep[k]!.push((await z.get(url(`limit=20&starting_after=${cursor}`))).ms);
      }
    }
    for (const [k, z] of sized.entries()) {
      lists[k]!.set(c.name, [median(first[k]!), deep[k]!.length ? median(deep[k]!) : NaN]);
      if (c.total) {
        const listed = (await z.get(prepared[k]!.url('per_page=1'))).json.total_withdrawals_amount;
        const want = await recomputedTotal(z.rt, z.merchant.id, c);
        if (listed !== want) problems.push(`${z.rows} rows, ${c.name}: total_withdrawals_amount ${listed}, recomputed ${want}`);
      }
    }
  }

  // A full verify each, which also sets the checkpoint the incremental one starts from.
  const verifyMs: number[] = [];
  for (const z of sized) {
    const v0 = performance.now();
    const full = await verifyLedgerIncremental(z.rt.store, Date.now());
    verifyMs.push(performance.now() - v0);
    if (!full.ok) problems.push(`${z.rows} rows: ledger verify found drift: ${full.drift.slice(0, 3).map((d) => d.kind).join(', ')}`);
  }

  // Create p99: one user with money per size, one request at a time, in turns.
  for (const z of sized) {
    await z.post('/users', { id: 'creator' });
    await z.post('/balance_settlements', { user: 'creator', amount: 100_000_000, order_no: 'fundcreator' });
  }
  const creates = sized.map((): number[] => []);
  for (let i = 0; i < CREATES; i++) {
    for (const [k, z] of sized.entries()) {
      const res = await z.post('/withdrawals', { user: 'creator', amount: 100, channel: 'alipay', order_no: String(9_000_000 + i), extra: { account: 'a@example.com', name: '张三' } });
      if (res.status !== 200) throw new Error(`create: ${res.status} ${res.body}`);
      creates[k]!.push(res.ms);
    }
  }

  // The incremental verify of what the creates added, as a run after the settle margin would see it.
  const out: SizeResult[] = [];
  for (const [k, z] of sized.entries()) {
    {
      const i0 = performance.now();
      const incremental = await verifyLedgerIncremental(z.rt.store, Date.now() + SETTLE_MARGIN_MS + 60_000);
      const incrementalMs = performance.now() - i0;
      if (!incremental.ok || incremental.mode !== 'incremental' || incremental.entries < CREATES) {
        problems.push(`${z.rows} rows: incremental verify ${incremental.mode}, ok ${incremental.ok}, ${incremental.entries} entries`);
      }
      const sorted = [...creates[k]!].sort((a, b) => a - b);
      out.push({ rows: z.rows, fillS: z.fillS, lists: lists[k]!, createP99Ms: sorted[Math.floor(CREATES * 0.99) - 1]!, verifyMs: verifyMs[k]!, incrementalMs });
    }
  }
  return out;
}

/** An id about 30 rows from the oldest end of the list: the cursor page is as deep as the table. */
async function deepCursor(rt: Runtime, merchant: { id: string; account: string }, c: ListCase): Promise<string | undefined> {
  const tie = c.table === 'users' ? 'pk' : 'id';
  let q = rt.store.db.selectFrom(c.table).select('id');
  q = c.table === 'events' ? q.where('account_id', '=', merchant.account) : q.where('app', '=', merchant.id);
  q = q.where('livemode', '=', 0);
  for (const [k, v] of Object.entries(c.match ?? {})) q = q.where(sql.ref(k), '=', v);
  if (c.sinceS) q = q.where('created', '>=', c.sinceS);
  const row = await q.orderBy('created', 'asc').orderBy(tie, 'asc').limit(1).offset(30).executeTakeFirst();
  return row?.id;
}

async function recomputedTotal(rt: Runtime, app: string, c: ListCase): Promise<number> {
  let q = rt.store.db.selectFrom('withdrawals').select(sql<number>`coalesce(sum(amount), 0)`.as('t')).where('app', '=', app).where('livemode', '=', 0);
  for (const [k, v] of Object.entries(c.match ?? {})) q = q.where(sql.ref(k), '=', v);
  if (c.sinceS) q = q.where('created', '>=', c.sinceS);
  return Number((await q.executeTakeFirstOrThrow()).t);
}

function sizes(): number[] {
  const raw = process.env.TIXIAN_BENCH_GROWTH_SIZES ?? '10000,1000000';
  const out = raw.split(',').map((s) => Number(s.trim()));
  if (out.length < 2 || out.some((n) => !Number.isInteger(n) || n < 1_000 || n > 10_000_000)) {
    throw new Error('TIXIAN_BENCH_GROWTH_SIZES: two or more sizes, each 1000..10000000, smallest first');
  }
  return out;
}

const f = (n: number) => (Number.isNaN(n) ? '—' : n < 10 ? n.toFixed(2) : n.toFixed(1));

export const growth: CustomScenario = {
  name: 'growth',
  description: 'each list, filter and total at 10k vs 1M rows (bulk fill), create p99, verify time',
  optIn: true,
  inProcess: true,
  async run(ctx: RunContext): Promise<Outcome> {
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const pgUrl = process.env.TIXIAN_BENCH_DATABASE_URL ?? process.env.TIXIAN_TEST_DATABASE_URL;
    const endS = Math.floor(Date.now() / 1000);
    const sized: Sized[] = [];
    const problems: string[] = [];
    let results: SizeResult[];
    try {
      for (const rows of sizes()) {
        console.error(`  growth/${ctx.engine}: filling ${rows} rows …`);
        sized.push(await openSize(ctx.engine, pgUrl, rows, endS));
        console.error(`  growth/${ctx.engine}: ${rows} rows filled in ${sized.at(-1)!.fillS.toFixed(0)} s`);
      }
      results = await measure(sized, endS, problems);
    } finally {
      for (const z of sized) await z.close();
    }
    const small = results[0]!;
    const metrics: Metric[] = [];
    const lines = [`growth on ${ctx.engine}: median ms (first page / deep cursor page), and the ratio to ${small.rows} rows`];
    const head = ['list', ...results.map((r) => `${r.rows} rows`), ...results.slice(1).map((r) => `× at ${r.rows}`)];
    const body: string[][] = [];
    let worst = 0;
    for (const name of small.lists.keys()) {
      const [sf, sd] = small.lists.get(name)!;
      const ratios = results.slice(1).map((r) => {
        const [lf, ld] = r.lists.get(name)!;
        const rf = lf / sf;
        const rd = ld / sd;
        worst = Math.max(worst, rf, Number.isNaN(rd) ? 0 : rd);
        return `${rf.toFixed(2)} / ${Number.isNaN(rd) ? '—' : rd.toFixed(2)}`;
      });
      body.push([name, ...results.map((r) => `${f(r.lists.get(name)![0])} / ${f(r.lists.get(name)![1])}`), ...ratios]);
    }
    body.push(['withdrawal create p99', ...results.map((r) => f(r.createP99Ms)), ...results.slice(1).map((r) => (r.createP99Ms / small.createP99Ms).toFixed(2))]);
    body.push(['ledger verify (full)', ...results.map((r) => f(r.verifyMs)), ...results.slice(1).map((r) => (r.verifyMs / small.verifyMs).toFixed(2))]);
    body.push([`ledger verify --incremental (${CREATES + 1} new entries)`, ...results.map((r) => f(r.incrementalMs)), ...results.slice(1).map((r) => (r.incrementalMs / small.incrementalMs).toFixed(2))]);
    body.push(['fill (s)', ...results.map((r) => r.fillS.toFixed(0)), ...results.slice(1).map(() => '')]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
    lines.push(line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line));
    console.error(lines.join('\n'));
    const big = results.at(-1)!;
    metrics.push({ name: 'worst list ratio', value: worst, unit: `× (${big.rows} vs ${small.rows} rows)` });
    metrics.push({ name: 'create p99 ratio', value: big.createP99Ms / small.createP99Ms, unit: '×' });
    metrics.push({ name: 'full verify', value: big.verifyMs, unit: `ms at ${big.rows} rows` });
    metrics.push({ name: 'incremental verify', value: big.incrementalMs, unit: `ms at ${big.rows} rows` });
    const cpu = process.cpuUsage(cpu0);
    return {
      load: null,
      windowS: (performance.now() - started) / 1000,
      server: null,
      benchCpuS: (cpu.user + cpu.system) / 1e6,
      metrics,
      problems,
    };
  },
};
