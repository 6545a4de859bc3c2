import type { LoadRequest } from './lib/load.ts';

/**
 * One benchmark scenario: what to prepare, and the requests the load generator repeats.
 * A scenario is one file in bench/scenarios/, listed in bench/scenarios/index.ts.
 */
export interface Scenario<State = unknown> {
  /** Short name, used by `--only`. */
  name: string;
  /** One line for the results table. */
  description: string;
  /** Extra `tixian serve` flags (e.g. to run the workers for a webhook scenario). */
  serveArgs?: string[];
  /** Environment for `tixian serve` (TIXIAN_* settings that have no flag). */
  serveEnv?: Record<string, string>;
  /** Before the server starts: CLI work on the fresh storage (e.g. `apps update …`). */
  beforeServe?(ctx: PrepareContext): Promise<void>;
  /** With the server up: make what the requests need (users, money …) over HTTP. */
  setup(t: Target): Promise<State>;
  /** The requests each connection cycles through; called once, shared by warm-up and measurement. */
  requests(t: Target, state: State): LoadRequest[];
}

export interface PrepareContext {
  appId: string;
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

/** Creates `count` users named `<prefix>0 … <prefix>N` (setup helper; bounded concurrency). */
export async function createUsers(t: Target, prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  const BATCH = 10;
  for (let i = 0; i < ids.length; i += BATCH) {
    await Promise.all(ids.slice(i, i + BATCH).map((id) => t.call('POST', `/v1/apps/${t.appId}/users`, { id })));
  }
  return ids;
}
