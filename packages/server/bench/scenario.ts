import type { LoadRequest, LoadResult } from './lib/load.ts';
import type { Engine, RunningServer, Storage } from './lib/server.ts';
import type { Runtime } from '../src/runtime.ts';

/**
 * One benchmark scenario: what to prepare, and the requests the load generator repeats.
 * A scenario is one file in bench/scenarios/, listed in bench/scenarios/index.ts.
 */
export interface Scenario<State = unknown> {
  /** Short name, used by `--only`. */
  name: string;
  /** One line for the results table. */
  description: string;
  /** Extra `tixian serve` flags (e.g. `--sandbox-delay-ms 0`). */
  serveArgs?: string[];
  /** Environment for `tixian serve` (TIXIAN_* settings that have no flag). */
  serveEnv?: Record<string, string>;
  /** Run the payout worker and the webhook dispatcher in the server (default: `--no-workers`). */
  workers?: boolean;
  /**
   * Leave the server free on every core instead of pinning it to core 0 (its signing pool then has
   * threads); it shares core 1 with the load generator.
   */
  unpinned?: boolean;
  /**
   * The scenario this one is compared with, side by side: the summary prints the difference in
   * per-request cost on the server's core (1/throughput), e.g. signed minus unsigned creates.
   */
  baseline?: string;
  /** Before the server starts: CLI work on the fresh storage (e.g. `apps update …`). */
  beforeServe?(ctx: PrepareContext): Promise<void>;
  /** With the server up: make what the requests need (users, money …) over HTTP. */
  setup(t: Target): Promise<State>;
  /** The requests each connection cycles through; called once, shared by warm-up and measurement. */
  requests(t: Target, state: State): LoadRequest[];
}

/**
 * A scenario that does not fit request/response load (a backlog to drain, a pipeline to follow):
 * it runs itself with the harness's pieces. The harness still makes the storage and the app,
 * verifies the ledger afterwards, drops the storage, and stops any server or runtime left open.
 */
export interface CustomScenario {
  name: string;
  description: string;
  /** As on Scenario: the summary compares the two rows' throughput. */
  baseline?: string;
  /** Runs only when named with --only (it takes minutes). */
  optIn?: boolean;
  /** Runs the API in the bench's own process (this checkout's code), not a `tixian serve` of a build: `--against` cannot measure it. */
  inProcess?: boolean;
  run(ctx: RunContext): Promise<Outcome>;
}

export type AnyScenario = Scenario | CustomScenario;

export const isCustom = (s: AnyScenario): s is CustomScenario => 'run' in s;

export interface PrepareContext {
  appId: string;
  /** A scratch directory, removed with the storage (e.g. for a key file). */
  dir: string;
  /** Runs `tixian <args…>` against this scenario's storage; resolves with stdout, rejects on a non-zero exit. */
  tixian(args: string[]): Promise<string>;
}

/** The server under load and the app whose key the requests carry. */
export interface Target {
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  appId: string;
  secretKey: string;
  /** Headers every API request needs (Authorization, Content-Type). */
  headers: Record<string, string>;
  /** One API call for setup; throws unless it answers 2xx. */
  call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<Record<string, unknown>>;
}

export interface BenchOptions {
  /** Server on core 0, this process (load generator, receivers) on core 1. */
  pin: boolean;
  connections: number;
  durationS: number;
  warmupS: number;
  /** Events queued by webhook_delivery (`--events`). */
  events: number;
  /** Flags for the server's node (`--cpu-prof DIR` → `--cpu-prof --cpu-prof-dir DIR`). */
  serverNodeArgs: string[];
  /** `--sqlite-analyze`: SQLite too gets `ANALYZE` after a scenario's setup (lib/server.ts Storage.analyze). */
  sqliteAnalyze?: boolean;
  /** The `tixian` command of the build under test when it is not this checkout's (`--against DIR`). */
  bin?: string;
}

/** What a custom scenario gets: the storage, the app and the harness's tools. */
export interface RunContext extends PrepareContext {
  engine: Engine;
  storage: Storage;
  secretKey: string;
  options: BenchOptions;
  /**
   * `tixian serve` on core 0 (pinned when possible; `unpinned`: free on every core, as a server
   * with spare cores runs); stopped by the harness if the scenario does not.
   */
  startServer(o?: { workers?: boolean; args?: string[]; env?: Record<string, string>; unpinned?: boolean }): Promise<RunningServer>;
  target(server: RunningServer): Target;
  /** One bounded autocannon run against the server, from this process. */
  /** `durationS` measured, after `warmup.seconds` on the same connections (see LoadOptions.warmupS). */
  load(server: RunningServer, requests: LoadRequest[], durationS: number, warmup?: { seconds: number; onMeasureStart: () => void }): Promise<LoadResult>;
  /** A runtime on the same storage, in this process (no migrations; closed by the harness). */
  openRuntime(): Promise<Runtime>;
}

/** A figure for the report besides the load table: `name: value unit`. */
export interface Metric {
  name: string;
  value: number;
  unit: string;
}

/** What one scenario run on one engine produced. */
export interface Outcome {
  /** The request/response figures, when the scenario drove requests with autocannon. */
  load: LoadResult | null;
  /** The measured window the usage figures cover (seconds). */
  windowS: number;
  /** The server process over the measured window: CPU seconds used and its peak RSS (VmHWM). */
  server: { cpuS: number; peakRssBytes: number; rssBytes: number } | null;
  /** This process (load generator, receivers) over the measured window: CPU seconds. */
  benchCpuS: number;
  metrics: Metric[];
  /** Anything that makes the figures untrustworthy (lost work, errors); the run exits non-zero. */
  problems: string[];
}

/** Creates `count` users named `<prefix>0 … <prefix>N` (setup helper; bounded concurrency). */
export async function createUsers(t: Target, prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  const BATCH = 10;
  for (let i = 0; i < ids.length; i += BATCH) {
    await Promise.all(ids.slice(i, i + BATCH).map((id) => t.call('POST', `/v1/apps/${t.appId}/users`, { id })));
  }
  return ids;
}
