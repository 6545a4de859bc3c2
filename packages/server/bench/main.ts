import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runScenario, type Row } from './lib/run.ts';
import { canPin, pinPostgres, pinSelf, type Engine } from './lib/server.ts';
import { describeFsync } from './lib/machine.ts';
import { scenarios } from './scenarios/index.ts';
import { composite, meanCeilings, measureCeilings, type Ceilings } from './lib/ceilings.ts';
import type { BenchOptions } from './scenario.ts';

/**
 * `npm run bench [-- --only NAME[,NAME] --duration S --warmup S --connections N --engines sqlite,postgres --events N --repeat N --cpu-prof DIR --server-node-options='…' --json]`
 *
 * For each scenario and engine: a fresh database, one app (`tixian apps create`), `tixian serve`
 * in a child process pinned to core 0, the scenario's setup over HTTP, a warm-up, then a measured
 * run of autocannon from this process pinned to core 1 (loopback only). Afterwards the server is
 * stopped, `tixian ledger verify` must find no drift, and the database is dropped. Custom
 * scenarios (create + confirm with the payout worker, webhook delivery) drive themselves with the
 * same pieces (lib/run.ts).
 * PostgreSQL runs when TIXIAN_BENCH_DATABASE_URL (or TIXIAN_TEST_DATABASE_URL) is set; the
 * PostgreSQL server itself is not pinned and shares the machine, unless --pin-postgres moves a
 * local one onto core 1 with the load generator for the run (its masks are put back afterwards).
 *
 * `--against DIR` measures another build beside this one: DIR is a tixian checkout (or its
 * packages/server) with dist/ built, e.g. `git worktree add /tmp/base HEAD~1 && (cd /tmp/base && npm ci)`.
 * Each scenario, engine and round then runs with both builds back to back, the order swapped every
 * round, and the report ends with this build against the other per scenario. A change worth a few
 * percent cannot be told from two runs minutes apart on a shared machine (up to 22% apart here, same
 * code); runs side by side, over several rounds (`--repeat`), can.
 */

const USAGE = `usage: npm run bench -- [--only NAME[,NAME…]] [--duration S] [--warmup S] [--connections N] [--engines sqlite,postgres] [--events N] [--repeat N]
       [--cpu-prof DIR] [--server-node-options='--flag …'] [--json] [--ceilings] [--pin-postgres] [--sqlite-analyze] [--against DIR]
scenarios: ${scenarios.map((s) => s.name).join(', ')}`;

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        only: { type: 'string', multiple: true },
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '5' },
        connections: { type: 'string', default: '50' },
        engines: { type: 'string' },
        events: { type: 'string', default: '100000' },
        'cpu-prof': { type: 'string' },
        'server-node-options': { type: 'string' },
        repeat: { type: 'string', default: '1' },
        json: { type: 'boolean', default: false },
        ceilings: { type: 'boolean', default: false },
        'pin-postgres': { type: 'boolean', default: false },
        'sqlite-analyze': { type: 'boolean', default: false },
        against: { type: 'string' },
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
  const events = boundedInt(args.events, 'events', 1, 1_000_000);
  const repeat = boundedInt(args.repeat, 'repeat', 1, 20);
  if (durationS === null || warmupS === null || connections === null || events === null || repeat === null) return 2;

  const only = (args.only ?? []).flatMap((o) => o.split(',')).filter(Boolean);
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown scenario ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const chosen = only.length ? scenarios.filter((s) => only.includes(s.name)) : scenarios.filter((s) => !('optIn' in s && s.optIn));

  let againstBin: string | null = null;
  if (args.against !== undefined) {
    againstBin = builtTixian(args.against);
    if (!againstBin) {
      console.error(`--against: ${args.against} holds no built tixian (bin/tixian.mjs with dist/cli/main.js, or packages/server/…); build it first\n${USAGE}`);
      return 2;
    }
    const inProcess = chosen.filter((s) => 'inProcess' in s && s.inProcess);
    if (inProcess.length) {
      console.error(`--against cannot measure ${inProcess.map((s) => s.name).join(', ')}: it runs the API in the bench's process, not in a server of either build\n${USAGE}`);
      return 2;
    }
  }

  const pgUrl = process.env.TIXIAN_BENCH_DATABASE_URL ?? process.env.TIXIAN_TEST_DATABASE_URL;
  const engines: Engine[] = args.engines
    ? (args.engines.split(',') as Engine[])
    : pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];
  if (engines.some((e) => e !== 'sqlite' && e !== 'postgres')) {
    console.error(`--engines takes sqlite and/or postgres\n${USAGE}`);
    return 2;
  }

  const cpuProf = args['cpu-prof'];
  const serverNodeArgs = [
    ...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProf)] : []),
    ...(args['server-node-options']?.split(/\s+/).filter(Boolean) ?? []),
  ];
  const cores = os.cpus();
  const pin = canPin(cores.length);
  if (pin) pinSelf(1);
  // Put back at the end of the run (and, should it stop early, when the process exits).
  const unpinPostgres = pin && args['pin-postgres'] && engines.includes('postgres') ? pinPostgres(1) : null;
  const machine =
    `${new Date().toISOString()} · Node ${process.version} · ${os.platform()} ${os.arch()} · ${cores.length} × ${cores[0]?.model.trim() ?? 'unknown CPU'}` +
    ` · ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB · load average at start ${loadAverage()} · ${describeFsync()}\n` +
    (pin ? 'server pinned to core 0, load generator (autocannon, in-process) and webhook receiver to core 1' : 'NOT pinned (needs Linux, taskset and 2 cores): figures are less comparable') +
    ` · ${connections} connections · warm-up ${warmupS} s · measured ${durationS} s` +
    (repeat > 1 ? ` · ${repeat} rounds, interleaved` : '') +
    (againstBin ? ` · against the build at ${againstBin}, side by side, order swapped each round` : '') +
    (serverNodeArgs.length ? ` · server node ${serverNodeArgs.join(' ')}` : '') +
    (args['sqlite-analyze'] && engines.includes('sqlite') ? ' · SQLite analyzed after each setup' : '') +
    (engines.includes('postgres')
      ? unpinPostgres
        ? ' · PostgreSQL (same machine) pinned to core 1 with the load generator'
        : ' · PostgreSQL unpinned, same machine'
      : ' · PostgreSQL skipped (set TIXIAN_BENCH_DATABASE_URL)');
  console.error(machine);

  const options: BenchOptions = { pin, connections, durationS, warmupS, events, serverNodeArgs, sqliteAnalyze: args['sqlite-analyze'] };
  const ceilingOptions = { pin, connections, durationS, warmupS, pgUrl: engines.includes('postgres') ? pgUrl : undefined };
  let ceilingsBefore: Ceilings | null = null;
  if (args.ceilings) {
    console.error(`… ceilings, before the scenarios (load average ${loadAverage()})`);
    ceilingsBefore = await measureCeilings(ceilingOptions);
  }
  // With --repeat, rounds interleave (A B A B …), so a pair's runs see the same machine; with
  // --against, each run has the other build's beside it, first in odd rounds and second in even ones.
  const rows: Row[] = [];
  for (let round = 1; round <= repeat; round++) {
    for (const scenario of chosen) {
      for (const engine of engines) {
        const builds = againstBin === null ? [null] : round % 2 === 1 ? [againstBin, null] : [null, againstBin];
        for (const bin of builds) {
          console.error(`… ${scenario.name} on ${engine}${repeat > 1 ? `, round ${round}` : ''}${bin ? ', the other build' : ''} (load average ${loadAverage()})`);
          rows.push({ ...(await runScenario(scenario, engine, pgUrl, bin ? { ...options, bin } : options)), round });
        }
      }
    }
  }

  // The machine's ceilings, measured in this run on the same core (issue #12), before and after the
  // scenarios (their mean, since a shared machine's load drifts during a run): each figure as a ratio.
  let ceilings: Ceilings | null = null;
  if (ceilingsBefore) {
    console.error(`… ceilings, after the scenarios (load average ${loadAverage()})`);
    ceilings = meanCeilings(ceilingsBefore, await measureCeilings(ceilingOptions));
  }

  // Other work on the machine skews every figure: say how busy it was.
  const after = `load average at end ${loadAverage()} · ${describeFsync()}`;
  if (args.json) console.log(JSON.stringify({ machine, after, rows, comparisons: comparisons(rows), builds: buildComparisons(rows), ceilings }, null, 2));
  else {
    console.log(machine);
    console.log(table(rows, repeat > 1));
    const more = details(rows);
    if (more) console.log(`\n${more}`);
    const versus = [...comparisons(rows), ...buildComparisons(rows)].map((c) => c.text);
    if (versus.length) console.log(`\n${versus.join('\n')}`);
    if (ceilings) console.log(`\n${ceilingTable(rows, ceilings)}`);
    console.log(`\n${after}`);
  }
  const bad = rows.filter((r) => r.outcome.problems.length > 0 || !r.ledgerOk);
  for (const r of bad) console.error(`${r.scenario}/${r.engine}: ${[...r.outcome.problems, ...(r.ledgerOk ? [] : ['ledger DRIFT'])].join('; ')}`);
  unpinPostgres?.();
  return bad.length ? 1 : 0;
}

function boundedInt(value: string | undefined, name: string, min: number, max: number): number | null {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be an integer in ${min}..${max}\n${USAGE}`);
    return null;
  }
  return n;
}

function table(rows: Row[], rounds: boolean): string {
  const head = [rounds ? 'scenario (round)' : 'scenario', 'engine', 'conns', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'requests', 'non-2xx', 'errors', 'srv cpu', 'gen cpu', 'srv peak MB', 'ledger'];
  const dash = '—';
  const body = rows.map((r) => {
    const l = r.outcome.load;
    const server = r.outcome.server;
    return [
      `${r.scenario}${rounds ? ` (${r.round})` : ''}${r.against ? OTHER_BUILD : ''}`,
      r.engine,
      r.connections === null ? dash : String(r.connections),
      l ? int(l.requestsPerS) : dash,
      l ? fmt(l.p50Ms) : dash,
      l ? fmt(l.p90Ms) : dash,
      l ? fmt(l.p99Ms) : dash,
      l ? fmt(l.maxMs) : dash,
      l ? int(l.total) : dash,
      l ? String(l.non2xx) : dash,
      l ? String(l.errors) : dash,
      server ? pct(server.cpuS / r.outcome.windowS) : dash,
      pct(r.outcome.benchCpuS / r.outcome.windowS),
      server ? String(Math.round(server.peakRssBytes / 2 ** 20)) : dash,
      r.ledgerOk ? 'ok' : 'DRIFT',
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|', ...body.map(line)].join('\n');
}

/** The figures a row has besides the table (drain times, deliveries/s …), one line per row. */
function details(rows: Row[]): string {
  return rows
    .map((r) => {
      const parts = r.outcome.metrics.map((m) => `${m.name} ${num(m.value)}${m.unit ? ' ' + m.unit : ''}`);
      // Tails: when in the run the slowest answers came (a burst at the start is connection set-up, one
      // in the middle a stall).
      const slow = r.outcome.load?.slowest.filter((s) => s.latencyMs >= SLOW_MS) ?? [];
      if (slow.length) parts.push(`slowest ${slow.map((s) => `${int(s.latencyMs)} ms at ${(s.atMs / 1000).toFixed(1)} s`).join(', ')}`);
      return parts.length ? `${r.scenario}/${r.engine}${r.round > 1 ? ` (${r.round})` : ''}${r.against ? OTHER_BUILD : ''}: ${parts.join(' · ')}` : '';
    })
    .filter(Boolean)
    .join('\n');
}

/** Answers at least this slow are listed with the time they arrived. */
const SLOW_MS = 1_000;

interface Comparison {
  scenario: string;
  /** The scenario it is set against, or OTHER_BUILD's run of the same scenario (`--against`). */
  baseline: string;
  engine: Engine;
  /** Per round: difference in the server core's time per request (1/throughput), µs. */
  deltaUs: number[];
  /** Per round: difference in server CPU time per request, µs (empty without /proc). */
  cpuDeltaUs: number[];
  text: string;
}

/** How a run of the other build (`--against`) is marked in the report. */
const OTHER_BUILD = ' [other build]';

/**
 * Side by side, same engine and round: the difference in per-request cost between a scenario and
 * its baseline (same build), as 1/throughput on the server's one core and as server CPU time per
 * request. With several rounds: the median difference and the range, since one pair of 10 s runs
 * on a shared machine can differ by more than a small cost.
 */
function comparisons(rows: Row[]): Comparison[] {
  const pairs = new Map<string, [Row, Row][]>();
  for (const r of rows) {
    const b = rows.find((x) => x.scenario === r.baseline && x.engine === r.engine && x.round === r.round && x.against === r.against);
    if (!r.outcome.load || !b?.outcome.load) continue;
    const key = `${r.scenario}\u0000${b.scenario}\u0000${r.engine}\u0000${r.against}`;
    pairs.set(key, [...(pairs.get(key) ?? []), [r, b]]);
  }
  return [...pairs.values()].map((list) => {
    const [r0, b0] = list[0]!;
    return compare(list, b0.scenario, `${r0.scenario}${r0.against ? OTHER_BUILD : ''} vs ${b0.scenario} (${r0.engine}`);
  });
}

/**
 * `--against`: each scenario of this build against the same scenario, engine and round of the other
 * build, in the same terms. A scenario without a request load (webhook delivery) is compared by its
 * deliveries per second.
 */
function buildComparisons(rows: Row[]): Comparison[] {
  const pairs = new Map<string, [Row, Row][]>();
  for (const r of rows) {
    if (r.against) continue;
    const other = rows.find((x) => x.against && x.scenario === r.scenario && x.engine === r.engine && x.round === r.round);
    if (!other || rate(r) === null || rate(other) === null) continue;
    const key = `${r.scenario}\u0000${r.engine}`;
    pairs.set(key, [...(pairs.get(key) ?? []), [r, other]]);
  }
  return [...pairs.values()].map((list) => {
    const [r0] = list[0]!;
    return compare(list, `${r0.scenario}${OTHER_BUILD}`, `${r0.scenario}, this build vs the other (${r0.engine}`);
  });
}

/** A row's throughput: requests per second, or for a custom scenario its deliveries per second; null when it has neither. */
function rate(r: Row): number | null {
  if (r.outcome.load) return r.outcome.load.requestsPerS;
  const m = r.outcome.metrics.find((x) => x.name === 'deliveries/s');
  return m && Number.isFinite(m.value) && m.value > 0 ? m.value : null;
}

/** Pairs (this, against that) per round → the median differences, in µs of one request's (or delivery's) cost. */
function compare(list: [Row, Row][], baseline: string, head: string): Comparison {
  const wallUs = (x: Row) => 1e6 / rate(x)!;
  const units = (x: Row) => x.outcome.load?.total ?? rate(x)! * x.outcome.windowS;
  const cpuUs = (x: Row) => (x.outcome.server ? (x.outcome.server.cpuS * 1e6) / units(x) : null);
  const deltaUs = list.map(([r, b]) => wallUs(r) - wallUs(b));
  const cpuDeltaUs = list.flatMap(([r, b]) => {
    const [rc, bc] = [cpuUs(r), cpuUs(b)];
    return rc !== null && bc !== null ? [rc - bc] : [];
  });
  const perS = (which: 0 | 1) => median(list.map((p) => rate(p[which])!));
  const range = (xs: number[]) => (xs.length > 1 ? ` (${xs.length} rounds: ${xs.map(signed).join(', ')})` : '');
  const cpu = cpuDeltaUs.length
    ? `; server CPU per request ${median(list.map(([r]) => cpuUs(r) ?? NaN)).toFixed(0)} vs ${median(list.map(([, b]) => cpuUs(b) ?? NaN)).toFixed(0)} µs, ` +
      `${signed(median(cpuDeltaUs))} µs${range(cpuDeltaUs)}`
    : '';
  const [r0] = list[0]!;
  return {
    scenario: r0.scenario,
    baseline,
    engine: r0.engine,
    deltaUs,
    cpuDeltaUs,
    text:
      `${head}${list.length > 1 ? ', medians' : ''}): ${int(perS(0))} vs ${int(perS(1))}/s → ` +
      `${signed(median(deltaUs))} µs of the server core's time per request${range(deltaUs)}${cpu}`,
  };
}

/** The `tixian` command of a built checkout at dir (its root or its packages/server), or null. */
function builtTixian(dir: string): string | null {
  for (const server of [path.resolve(dir, 'packages/server'), path.resolve(dir)]) {
    const bin = path.join(server, 'bin/tixian.mjs');
    if (existsSync(bin) && existsSync(path.join(server, 'dist/cli/main.js'))) return bin;
  }
  return null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const pct = (f: number) => `${Math.round(f * 100)}%`;
const signed = (n: number) => (n >= 0 ? '+' : '−') + Math.abs(Math.round(n)).toLocaleString('en-US');
const num = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : Math.abs(n) >= 100 ? int(n) : n.toFixed(Math.abs(n) < 10 ? 2 : 1));

const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

/** Reads (user_retrieve*) touch no write transaction: their composite has no storage term. */
const READ_SCENARIOS = /^user_retrieve/;

/**
 * Each request/response figure against the composite ceiling 1 / (1/http + 1/storage [+ 1/sign]),
 * storage being the create transaction on the row's engine and sign counted when the scenario
 * signs its responses (the default; TIXIAN_SIGN_RESPONSES=0 turns it off). Scenarios whose
 * server is not pinned (`unpinned`) are left out.
 */
function ceilingTable(rows: Row[], c: Ceilings): string {
  const lines = [
    `ceilings on core 0, this run (mean of before and after the scenarios): http (Fastify + schema, canned reply) ${int(c.httpPerS)}/s · SQLite create transaction (NORMAL) ${int(c.sqlitePerS)}/s` +
      (c.postgresPerS ? ` · PostgreSQL one-statement create ${int(c.postgresPerS)}/s` : '') +
      ` · RSA-2048 sign ${int(c.signPerS)}/s`,
    '| scenario | engine | req/s | p99 ms | ceiling/s | ratio |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const l = r.outcome.load;
    if (!l) continue;
    const scenario = scenarios.find((s) => s.name === r.scenario);
    // The ceilings are one core's; a server on both cores is not measured against them.
    if (scenario && 'unpinned' in scenario && scenario.unpinned) continue;
    const signed = !(scenario && 'serveEnv' in scenario && scenario.serveEnv?.TIXIAN_SIGN_RESPONSES === '0');
    const ceiling = READ_SCENARIOS.test(r.scenario)
      ? 1 / (1 / c.httpPerS + (signed ? 1 / c.signPerS : 0))
      : composite(c, r.engine, signed);
    if (!ceiling) continue;
    lines.push(`| ${r.scenario}${r.round > 1 ? ` (${r.round})` : ''}${r.against ? OTHER_BUILD : ''} | ${r.engine} | ${int(l.requestsPerS)} | ${fmt(l.p99Ms)} | ${int(ceiling)} | ${(l.requestsPerS / ceiling).toFixed(2)} |`);
  }
  return lines.join('\n');
}
