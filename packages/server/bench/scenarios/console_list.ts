import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { loadProblems, startWindow, usageOver } from '../lib/run.ts';
import type { Runtime } from '../../src/runtime.ts';
import { createOperator } from '../../src/admin/operators.ts';
import type { CustomScenario, Metric } from '../scenario.ts';

/**
 * The console's withdrawals list at scale: 1,000,000 withdrawals of one app in the database, then
 * filtered first pages (and a next page by cursor) as the Withdrawals page asks for them, timed
 * one at a time (what an operator waits for) and under load. Target: a filtered first page in
 * under 100 ms. Sketch: each page is one range of an (app, livemode, status|user|channel,
 * created, id) index read newest first, 21 rows (a page and one to know there is more) — a few
 * B-tree descents and ~20 row reads, well under a millisecond of database work at any table size;
 * the rest is HTTP and JSON. A combined filter (status and channel) reads the status range and
 * skips the other channels' rows: with 7 channels, about 7 × 21 index entries.
 *
 * The rows are final (succeeded 70 %, canceled 20 %, failed 10 %) so the ledger stays verifiable
 * (an open withdrawal is owed a hold); the review queue (status created) reads the same index as
 * status failed does here.
 */
const ROWS = Number(process.env.TIXIAN_BENCH_CONSOLE_ROWS ?? 1_000_000);
const CHUNK = 100_000;
const SPAN_S = 30 * 86_400;
const TIMED_REPEATS = 50;
const PASSWORD = 'bench console password';

async function bulkInsert(rt: Runtime, appId: string, nowS: number): Promise<void> {
  const start = nowS - SPAN_S;
  const channel = (i: string) => sql.raw(`CASE ${i} % 7 WHEN 0 THEN 'alipay' WHEN 1 THEN 'wx' WHEN 2 THEN 'wx_pub' WHEN 3 THEN 'wx_lite' WHEN 4 THEN 'unionpay' WHEN 5 THEN 'allinpay' ELSE 'jdpay' END`);
  const status = (i: string) => sql.raw(`CASE WHEN ${i} % 10 = 0 THEN 'failed' WHEN ${i} % 10 < 3 THEN 'canceled' ELSE 'succeeded' END`);
  for (let from = 0; from < ROWS; from += CHUNK) {
    const to = Math.min(ROWS, from + CHUNK) - 1;
    const columns = sql.raw(`(id, app, livemode, order_no, request_hash, description, metadata, created, "user", user_pk, amount, user_fee, fee, channel, extra, status,
      failure_msg, source, balance_transaction, settle_account, batch_withdrawal, time_canceled, time_succeeded, request_id, payout_due_ms, payout_lease_ms, payout_phase, payout_tries, payout_round)`);
    if (rt.store.engine === 'sqlite') {
      await sql`INSERT INTO withdrawals ${columns}
        WITH RECURSIVE s(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM s WHERE i < ${to})
        SELECT printf('9%018d', i), ${appId}, 0, 'bulk' || i, '', NULL, '{}', ${start} + i * ${SPAN_S} / ${ROWS}, 'u' || (i % 10000), 'pk', 100 + i % 5000, 0, 0,
          ${channel('i')}, '{}', ${status('i')}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1 FROM s`.execute(rt.store.db);
    } else {
      await sql`INSERT INTO withdrawals ${columns}
        SELECT '9' || lpad(i::text, 18, '0'), ${appId}, 0, 'bulk' || i, '', NULL, '{}', ${start} + i::bigint * ${SPAN_S} / ${ROWS}, 'u' || (i % 10000), 'pk', 100 + i % 5000, 0, 0,
          ${channel('i')}, '{}', ${status('i')}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1
        FROM generate_series(${from}::int, ${to}::int) AS s(i)`.execute(rt.store.db);
    }
  }
  await sql`ANALYZE`.execute(rt.store.db);
}

export const consoleWithdrawalsList: CustomScenario = {
  name: 'console_withdrawals_list',
  description: `console: filtered first page of /admin/…/withdrawals with ${ROWS.toLocaleString('en-US')} withdrawals in the table`,
  async run(ctx) {
    const rt = await ctx.openRuntime();
    const seedStart = performance.now();
    await bulkInsert(rt, ctx.appId, Math.floor(Date.now() / 1000));
    const seedS = (performance.now() - seedStart) / 1000;
    await createOperator(rt, { email: 'bench@example.com', password: PASSWORD, platform: true });
    const server = await ctx.startServer();
    const t = ctx.target(server);
    const login = await fetch(`${t.baseUrl}/admin/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'bench@example.com', password: PASSWORD }) });
    if (login.status !== 200) throw new Error(`console login: ${login.status} ${await login.text()}`);
    const cookie = String(login.headers.get('set-cookie')).split(';')[0]!;
    const base = `/admin/apps/${t.appId}/withdrawals?mode=test&limit=20`;
    const get = async (path: string) => {
      const t0 = performance.now();
      const res = await fetch(t.baseUrl + path, { headers: { cookie } });
      const body = (await res.json()) as { data: { id: string }[] };
      if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
      return { ms: performance.now() - t0, body };
    };
    const second = (await get(`${base}&status=failed`)).body.data.at(-1)!.id;
    const queries: [string, string][] = [
      ['status=failed', `${base}&status=failed`],
      ['status=failed & channel=wx', `${base}&status=failed&channel=wx`],
      ['user=u4242', `${base}&user=u4242`],
      ['order_no', `${base}&order_no=bulk777777`],
      ['status=canceled & a past week', `${base}&status=canceled&created[gte]=${Math.floor(Date.now() / 1000) - 21 * 86_400}&created[lte]=${Math.floor(Date.now() / 1000) - 14 * 86_400}`],
      ['status=failed, next page (cursor)', `${base}&status=failed&starting_after=${second}`],
    ];
    const metrics: Metric[] = [{ name: 'seeding the rows', value: seedS, unit: 's' }];
    const problems: string[] = [];
    for (const [name, path] of queries) {
      const times: number[] = [];
      for (let i = 0; i < TIMED_REPEATS; i++) times.push((await get(path)).ms);
      times.sort((a, b) => a - b);
      const p50 = times[Math.floor(times.length / 2)]!;
      metrics.push({ name: `${name}: p50`, value: p50, unit: 'ms' }, { name: `${name}: max`, value: times.at(-1)!, unit: 'ms' });
      if (p50 > 100) problems.push(`${name}: first page p50 ${p50.toFixed(1)} ms, over the 100 ms target`);
    }
    const window = startWindow(server);
    const load = await ctx.load(server, [{ method: 'GET', path: `${base}&status=failed&channel=wx`, headers: { cookie } }], ctx.options.durationS);
    const used = window.end();
    const stopped = await server.stop();
    problems.push(...loadProblems(load));
    return { load, ...used, server: usageOver(used.server, stopped.usage), metrics, problems };
  },
};
