import { performance } from 'node:perf_hooks';
import { loadConfig } from '../../src/config.ts';
import { openRuntime, type Runtime } from '../../src/runtime.ts';
import { runLoad, type LoadRequest, type LoadResult } from './load.ts';
import { cpuOfPostgresSince, freshStorage, postgresCpu, startServer, tixianCli, type Engine, type RunningServer, type Storage } from './server.ts';
import { isCustom, type AnyScenario, type BenchOptions, type Metric, type Outcome, type RunContext, type Scenario, type Target } from '../scenario.ts';

/** One scenario on one engine: what the report prints. */
export interface Row {
  scenario: string;
  engine: Engine;
  connections: number | null;
  baseline: string | undefined;
  outcome: Outcome;
  ledgerOk: boolean;
  /** 1…--repeat */
  round: number;
  /** Run with the other build (`--against DIR`) rather than this checkout's. */
  against: boolean;
}

/**
 * Fresh storage and one app, then the scenario (the request/response runner below, or its own
 * `run`), then `tixian ledger verify`; servers and runtimes the scenario left open are closed and
 * the storage is dropped, whatever happened.
 */
export async function runScenario(scenario: AnyScenario, engine: Engine, pgUrl: string | undefined, o: BenchOptions): Promise<Row> {
  const storage = await freshStorage(engine, pgUrl, { sqliteAnalyze: o.sqliteAnalyze, ...(o.bin ? { bin: o.bin } : {}) });
  const servers: RunningServer[] = [];
  const runtimes: Runtime[] = [];
  try {
    const app = JSON.parse(tixianCli(['apps', 'create', '--name', `bench ${scenario.name}`, '--json'], storage)) as { id: string; secret_key_test: string };
    const ctx: RunContext = {
      appId: app.id,
      secretKey: app.secret_key_test,
      dir: storage.dataDir,
      engine,
      storage,
      options: o,
      tixian: async (args) => tixianCli(args, storage),
      async startServer(s = {}) {
        const server = await startServer(storage, {
          pin: o.pin && !s.unpinned,
          nodeArgs: o.serverNodeArgs,
          ...(s.workers ? { workers: true } : {}),
          ...(s.args ? { extraArgs: s.args } : {}),
          ...(s.env ? { env: s.env } : {}),
        });
        servers.push(server);
        return server;
      },
      target: (server) => makeTarget(server.baseUrl, app.id, app.secret_key_test),
      load: (server, requests, durationS, warmup) =>
        runLoad({ url: server.baseUrl, connections: o.connections, durationS, requests, ...(warmup ? { warmupS: warmup.seconds, onMeasureStart: warmup.onMeasureStart } : {}) }),
      async openRuntime() {
        const rt = await openBenchRuntime(storage);
        runtimes.push(rt);
        return rt;
      },
    };
    let outcome: Outcome;
    try {
      outcome = isCustom(scenario) ? await scenario.run(ctx) : await runRequests(scenario, ctx);
    } finally {
      for (const server of servers) {
        const stopped = await server.stop();
        if (stopped.code !== 0) console.error(`tixian serve exited with ${stopped.code ?? stopped.signal}\n${server.output()}`);
      }
      for (const rt of runtimes.splice(0)) await rt.close();
    }
    const report = JSON.parse(tixianCli(['ledger', 'verify', '--json'], storage)) as { ok: boolean };
    return {
      scenario: scenario.name,
      engine,
      connections: outcome.load ? o.connections : null,
      baseline: scenario.baseline,
      outcome,
      ledgerOk: report.ok,
      round: 1,
      against: o.bin !== undefined,
    };
  } finally {
    for (const rt of runtimes) await rt.close().catch(() => undefined);
    await storage.drop();
  }
}

/** The request/response scenarios: setup over HTTP, a warm-up, then the measured autocannon run. */
async function runRequests(scenario: Scenario, ctx: RunContext): Promise<Outcome> {
  await scenario.beforeServe?.(ctx);
  const server = await ctx.startServer({
    ...(scenario.workers ? { workers: true } : {}),
    ...(scenario.serveArgs ? { args: scenario.serveArgs } : {}),
    ...(scenario.serveEnv ? { env: scenario.serveEnv } : {}),
    ...(scenario.unpinned ? { unpinned: true } : {}),
  });
  const target = ctx.target(server);
  const state = await scenario.setup(target);
  await ctx.storage.analyze();
  const requests = scenario.requests(target, state);
  // The usage window and the first metrics scrape start with the measured part, after the warm-up.
  // A scrape before the warm-up too: the first request of another shape (other headers, another
  // route) after the request path was optimised had V8 deoptimise it, ~0.5 s of slower answers.
  await scrape(server.baseUrl);
  const measured: { window?: ReturnType<typeof startWindow>; before?: Promise<string> } = {};
  const load = await ctx.load(server, requests, ctx.options.durationS, {
    seconds: ctx.options.warmupS,
    onMeasureStart: () => {
      measured.window = startWindow(server, { postgres: isLocalPostgres(ctx.storage) });
      measured.before = scrape(server.baseUrl);
    },
  });
  if (!measured.window || !measured.before) throw new Error(`the load ended within its ${ctx.options.warmupS} s warm-up, before its measured part`);
  const used = measured.window.end();
  const after = await scrape(server.baseUrl);
  const stopped = await server.stop();
  const metrics = [...commitMetrics(await measured.before, after, used.windowS), ...postgresMetrics(used, load.total, 'request')];
  return { load, ...used, server: usageOver(used.server, stopped.usage), metrics, problems: loadProblems(load) };
}

/** The server's /metrics text, or '' when it does not answer (metrics off). */
async function scrape(baseUrl: string): Promise<string> {
  try {
    return await (await fetch(`${baseUrl}/metrics`)).text();
  } catch {
    return '';
  }
}

/** Histogram sum and count of one metric in Prometheus text (NaN when absent). */
export function histogram(text: string, name: string): { sum: number; count: number } {
  const value = (suffix: string) => Number(new RegExp(`^${name}_${suffix}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { sum: value('sum'), count: value('count') };
}

/** SQLite group commits during the measured window: COMMITs per second and transactions per COMMIT. */
function commitMetrics(before: string, after: string, windowS: number): Metric[] {
  const name = 'tixian_sqlite_group_commit_transactions';
  const a = histogram(before, name);
  const b = histogram(after, name);
  const commits = b.count - a.count;
  if (!(commits > 0)) return [];
  return [
    { name: 'SQLite commits', value: commits / windowS, unit: '/s' },
    { name: 'transactions per commit', value: (b.sum - a.sum) / commits, unit: '' },
  ];
}

/** Non-2xx answers and connection errors make a load run's figures untrustworthy. */
export function loadProblems(load: LoadResult): string[] {
  const problems: string[] = [];
  if (load.non2xx > 0) problems.push(`${load.non2xx} non-2xx answers ${JSON.stringify(load.statusCodes)}`);
  if (load.errors > 0) problems.push(`${load.errors} connection errors or timeouts`);
  return problems;
}

/** What a measured window gives (startWindow). */
export interface Window {
  windowS: number;
  benchCpuS: number;
  server: { cpuS: number } | null;
  /** CPU seconds of the local PostgreSQL's processes in the window; null when not asked or not readable. */
  postgresCpuS: number | null;
}

/**
 * A measured window: wall time, this process's CPU and the server's CPU from its start to its end,
 * and with `postgres` the local PostgreSQL's. `end()` gives the CPU seconds in the window (the
 * server's peak memory is filled in by usageOver).
 */
export function startWindow(server: RunningServer | null, o: { postgres?: boolean } = {}): { end(): Window } {
  const t0 = performance.now();
  const bench0 = process.cpuUsage();
  const server0 = server?.usage() ?? null;
  const postgres0 = o.postgres ? postgresCpu() : null;
  return {
    end() {
      const windowS = (performance.now() - t0) / 1000;
      const bench = process.cpuUsage(bench0);
      const server1 = server?.usage() ?? null;
      return {
        windowS,
        benchCpuS: (bench.user + bench.system) / 1e6,
        server: server0 && server1 ? { cpuS: server1.cpuS - server0.cpuS } : null,
        postgresCpuS: o.postgres ? cpuOfPostgresSince(postgres0) : null,
      };
    },
  };
}

/**
 * Whether the scenario's PostgreSQL runs on this machine (a loopback host or a socket): only then
 * are the `postgres` processes here its own, and its CPU in the window worth printing.
 */
export function isLocalPostgres(storage: Storage): boolean {
  if (storage.engine !== 'postgres' || !storage.databaseUrl) return false;
  const host = new URL(storage.databaseUrl).hostname.replace(/^\[|\]$/g, '');
  return host === '' || host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * PostgreSQL's share of the machine in the window: its CPU as a share of one core, and per unit of
 * work (`count` requests, deliveries…). Every `postgres` process on the machine is counted, so
 * other databases' work would be too (the bench's machine has none running).
 */
export function postgresMetrics(w: Pick<Window, 'postgresCpuS' | 'windowS'>, count: number, per: string): Metric[] {
  if (w.postgresCpuS === null || !(w.windowS > 0) || !(count > 0)) return [];
  return [
    { name: 'PostgreSQL CPU', value: (100 * w.postgresCpuS) / w.windowS, unit: '% of a core' },
    { name: `PostgreSQL CPU per ${per}`, value: (w.postgresCpuS * 1e6) / count, unit: 'µs' },
  ];
}

/** The window's server CPU with the peak and final memory read just before the server stopped. */
export function usageOver(cpu: { cpuS: number } | null, last: { peakRssBytes: number; rssBytes: number } | null): Outcome['server'] {
  if (!cpu || !last) return null;
  return { cpuS: cpu.cpuS, peakRssBytes: last.peakRssBytes, rssBytes: last.rssBytes };
}

/** A runtime on the scenario's storage in this process: reads for progress, writes to queue work. */
async function openBenchRuntime(storage: Storage): Promise<Runtime> {
  // An empty environment: the bench's own TIXIAN_* variables must not redirect it.
  const config = { ...loadConfig({ dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, logLevel: 'warn' }, {}), poolSize: 2 };
  return openRuntime(config, { migrate: false });
}

export function makeTarget(baseUrl: string, appId: string, secretKey: string): Target {
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

/** Bounded polling: calls `check` every `everyMs` until it returns true or `timeoutMs` passed. */
export async function waitFor(check: () => Promise<boolean>, o: { everyMs: number; timeoutMs: number }): Promise<boolean> {
  const deadline = performance.now() + o.timeoutMs;
  while (true) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, o.everyMs));
  }
}

export type { LoadRequest, LoadResult };
