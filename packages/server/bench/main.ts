import os from 'node:os';
import { parseArgs } from 'node:util';
import { runLoad, type LoadResult } from './lib/load.ts';
import { canPin, freshStorage, pinSelf, startServer, tixianCli, type Engine } from './lib/server.ts';
import { scenarios } from './scenarios/index.ts';
import type { Scenario, Target } from './scenario.ts';

/**
 * `npm run bench [-- --only NAME[,NAME] --duration S --warmup S --connections N --engines sqlite,postgres --json]`
 *
 * For each scenario and engine: a fresh database, one app (`tixian apps create`), `tixian serve`
 * in a child process pinned to core 0, the scenario's setup over HTTP, a warm-up, then a measured
 * run of autocannon from this process pinned to core 1 (loopback only). Afterwards the server is
 * stopped, `tixian ledger verify` must find no drift, and the database is dropped.
 * PostgreSQL runs when TIXIAN_BENCH_DATABASE_URL (or TIXIAN_TEST_DATABASE_URL) is set; the
 * PostgreSQL server itself is not pinned and shares the machine.
 */

interface Row {
  scenario: string;
  engine: Engine;
  connections: number;
  result: LoadResult;
  ledgerOk: boolean;
}

const USAGE = `usage: npm run bench -- [--only NAME[,NAME…]] [--duration S] [--warmup S] [--connections N] [--engines sqlite,postgres] [--json]
scenarios: ${scenarios.map((s) => s.name).join(', ')}`;

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        only: { type: 'string', multiple: true },
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '3' },
        connections: { type: 'string', default: '50' },
        engines: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const durationS = boundedInt(args.duration, 'duration', 1, 600);
  const warmupS = boundedInt(args.warmup, 'warmup', 0, 60);
  const connections = boundedInt(args.connections, 'connections', 1, 1000);
  if (durationS === null || warmupS === null || connections === null) return 2;

  const only = (args.only ?? []).flatMap((o) => o.split(',')).filter(Boolean);
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown scenario ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const chosen = only.length ? scenarios.filter((s) => only.includes(s.name)) : scenarios;

  const pgUrl = process.env.TIXIAN_BENCH_DATABASE_URL ?? process.env.TIXIAN_TEST_DATABASE_URL;
  const engines: Engine[] = args.engines
    ? (args.engines.split(',') as Engine[])
    : pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];
  if (engines.some((e) => e !== 'sqlite' && e !== 'postgres')) {
    console.error(`--engines takes sqlite and/or postgres\n${USAGE}`);
    return 2;
  }

  const cores = os.cpus();
  const pin = canPin(cores.length);
  if (pin) pinSelf(1);
  const machine =
    `${new Date().toISOString()} · Node ${process.version} · ${os.platform()} ${os.arch()} · ${cores.length} × ${cores[0]?.model.trim() ?? 'unknown CPU'}` +
    ` · ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB · load average at start ${loadAverage()}\n` +
    (pin ? 'server pinned to core 0, load generator (autocannon, in-process) to core 1' : 'NOT pinned (needs Linux, taskset and 2 cores): figures are less comparable') +
    ` · ${connections} connections · warm-up ${warmupS} s · measured ${durationS} s` +
    (engines.includes('postgres') ? ' · PostgreSQL unpinned, same machine' : ' · PostgreSQL skipped (set TIXIAN_BENCH_DATABASE_URL)');
  console.error(machine);

  const rows: Row[] = [];
  for (const scenario of chosen) {
    for (const engine of engines) {
      console.error(`… ${scenario.name} on ${engine}`);
      rows.push(await runOne(scenario, engine, pgUrl, { pin, connections, durationS, warmupS }));
    }
  }

  // Other work on the machine skews every figure: say how busy it was.
  const after = `load average at end ${loadAverage()}`;
  if (args.json) console.log(JSON.stringify({ machine, after, rows }, null, 2));
  else {
    console.log(machine);
    console.log(table(rows));
    console.log(after);
  }
  const bad = rows.filter((r) => r.result.non2xx > 0 || r.result.errors > 0 || !r.ledgerOk);
  for (const r of bad) console.error(`${r.scenario}/${r.engine}: ${r.result.non2xx} non-2xx ${JSON.stringify(r.result.statusCodes)}, ${r.result.errors} errors, ledger ${r.ledgerOk ? 'ok' : 'DRIFT'}`);
  return bad.length ? 1 : 0;
}

async function runOne(
  scenario: Scenario,
  engine: Engine,
  pgUrl: string | undefined,
  o: { pin: boolean; connections: number; durationS: number; warmupS: number },
): Promise<Row> {
  const storage = await freshStorage(engine, pgUrl);
  try {
    const app = JSON.parse(tixianCli(['apps', 'create', '--name', `bench ${scenario.name}`, '--json'], storage)) as { id: string; secret_key_test: string };
    await scenario.beforeServe?.({ appId: app.id, tixian: async (args) => tixianCli(args, storage) });
    const server = await startServer(storage, {
      pin: o.pin,
      ...(scenario.serveArgs ? { extraArgs: scenario.serveArgs } : {}),
      ...(scenario.serveEnv ? { env: scenario.serveEnv } : {}),
    });
    let result: LoadResult;
    try {
      const target = makeTarget(server.baseUrl, app.id, app.secret_key_test);
      const state = await scenario.setup(target);
      const requests = scenario.requests(target, state);
      if (o.warmupS > 0) await runLoad({ url: server.baseUrl, connections: o.connections, durationS: o.warmupS, requests });
      result = await runLoad({ url: server.baseUrl, connections: o.connections, durationS: o.durationS, requests });
    } finally {
      const stopped = await server.stop();
      if (stopped.code !== 0) console.error(`tixian serve exited with ${stopped.code ?? stopped.signal}`);
    }
    const report = JSON.parse(tixianCli(['ledger', 'verify', '--json'], storage)) as { ok: boolean };
    return { scenario: scenario.name, engine, connections: o.connections, result, ledgerOk: report.ok };
  } finally {
    await storage.drop();
  }
}

function makeTarget(baseUrl: string, appId: string, secretKey: string): Target {
  const headers = { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json' };
  return {
    baseUrl,
    appId,
    secretKey,
    headers,
    async call(method, path, body) {
      const res = await fetch(baseUrl + path, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(10_000),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    },
  };
}

function boundedInt(value: string | undefined, name: string, min: number, max: number): number | null {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be an integer in ${min}..${max}\n${USAGE}`);
    return null;
  }
  return n;
}

function table(rows: Row[]): string {
  const head = ['scenario', 'engine', 'conns', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'requests', 'non-2xx', 'errors', 'ledger'];
  const body = rows.map((r) => [
    r.scenario,
    r.engine,
    String(r.connections),
    Math.round(r.result.requestsPerS).toLocaleString('en-US'),
    fmt(r.result.p50Ms),
    fmt(r.result.p90Ms),
    fmt(r.result.p99Ms),
    fmt(r.result.maxMs),
    r.result.total.toLocaleString('en-US'),
    String(r.result.non2xx),
    String(r.result.errors),
    r.ledgerOk ? 'ok' : 'DRIFT',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|', ...body.map(line)].join('\n');
}

const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
