import { spawn } from 'node:child_process';
import { once, type EventEmitter } from 'node:events';
import pino from 'pino';
import { request } from 'undici';
import { expect } from 'vitest';
import { defaults } from '../../src/config.ts';
import { openRuntime, type Runtime } from '../../src/runtime.ts';
import { createApp, type CreatedApp } from '../../src/services/accounts.ts';
import { freshStorage, type Engine } from './harness.ts';
import { startServer, TIXIAN_BIN, type ServerProcess } from './process.ts';

/**
 * What the crash tests share: a `tixian serve` process on a file's own storage is killed while
 * payouts are in flight and started again, and between the runs this process opens the same
 * storage to prepare it and to look at what the crash left.
 */

export type Storage = Awaited<ReturnType<typeof freshStorage>>;

/** The flags that point a `tixian` process at the storage: PostgreSQL by URL, SQLite by directory. */
export function storageArgs(storage: Storage): string[] {
  return storage.databaseUrl ? ['--database-url', storage.databaseUrl] : ['--data-dir', storage.dataDir];
}

/** Opens the storage in this process (no workers, no logs) for `use`, and closes it again. */
export async function withStorage<T>(storage: Storage, use: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
  try {
    return await use(rt);
  } finally {
    await rt.close();
  }
}

export type ApiMethod = 'GET' | 'POST' | 'PUT';
/** A JSON answer of the API, loosely typed as the tests read it. */
export type ApiAnswer = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface CrashRigOptions {
  /** The name of the one app made before the first run. */
  appName: string;
  /** Which of the app's keys the API calls use: the mode the withdrawals are made in. */
  mode: 'live' | 'test';
  /** Environment of every server run (TIXIAN_DATA_DIR is added: the master key lives there for both engines). */
  env: Record<string, string>;
  /** Prepares the app before the first run, e.g. sets its channel credentials. */
  prepare?: (rt: Runtime, app: CreatedApp) => Promise<unknown>;
}

/**
 * Fresh storage with one app, and `tixian serve` on it as a real process that a test starts,
 * kills and starts again; every run's output is kept, for checks on the logs.
 */
export class CrashRig {
  /** What each stopped run printed, in order. */
  readonly outputs: string[] = [];
  private server: ServerProcess | undefined;

  private constructor(
    readonly storage: Storage,
    readonly merchant: CreatedApp,
    private readonly options: CrashRigOptions,
  ) {}

  static async create(engine: Engine, options: CrashRigOptions): Promise<CrashRig> {
    const storage = await freshStorage(engine);
    try {
      const merchant = await withStorage(storage, async (rt) => {
        const app = await createApp(rt, { name: options.appName });
        await options.prepare?.(rt, app);
        return app;
      });
      return new CrashRig(storage, merchant, options);
    } catch (err) {
      await storage.drop();
      throw err;
    }
  }

  /** Starts the server; resolves once it listens. */
  async start(): Promise<void> {
    this.server = await startServer(storageArgs(this.storage), { ...this.options.env, TIXIAN_DATA_DIR: this.storage.dataDir });
  }

  /** Ends the running server with `signal` and keeps its output; its exit code (null when the signal ended it). */
  async stop(signal: NodeJS.Signals): Promise<number | null> {
    const server = this.server!;
    this.server = undefined;
    const code = await server.kill(signal);
    this.outputs.push(server.output());
    return code;
  }

  /**
   * Calls `/v1/apps/<app><path>` on the running server over HTTP as a merchant would; any answer
   * but 200 throws with its body. (A bound function: it may be passed on, e.g. to pollUntilFinal.)
   */
  call = async (method: ApiMethod, path: string, body?: unknown): Promise<ApiAnswer> => {
    const key = this.options.mode === 'live' ? this.merchant.secret_key_live : this.merchant.secret_key_test;
    const res = await request(`${this.server!.url}/v1/apps/${this.merchant.id}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.body.json()) as ApiAnswer;
    if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode} ${JSON.stringify(json)}`);
    return json;
  };

  /** Kills a server still running (SIGKILL) and drops the storage. */
  async close(): Promise<void> {
    await this.server?.kill();
    await this.storage.drop();
  }
}

/** Resolves once `emitter` has emitted `event` `times` times from now. */
export async function emitted(emitter: EventEmitter, event: string, times: number): Promise<void> {
  for (let seen = 0; seen < times; seen++) await once(emitter, event);
}

/** Withdrawals the dead server had handed to the channel (pending, waiting for a query): a crash that caught none proves nothing. */
export function payoutsInFlight(storage: Storage): Promise<number> {
  return withStorage(storage, async (rt) => {
    const rows = await rt.store.db.selectFrom('withdrawals').select('id').where('status', '=', 'pending').where('payout_phase', '=', 'query').execute();
    return rows.length;
  });
}

/**
 * Lists the user's withdrawals through the API every `pollMs`, the way a merchant would poll, until
 * all are final (succeeded or failed) or `timeoutMs` has passed: the checks after it say which.
 */
export async function pollUntilFinal(
  call: (method: 'GET', path: string) => Promise<ApiAnswer>,
  user: string,
  { timeoutMs, pollMs }: { timeoutMs: number; pollMs: number },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const list = await call('GET', `/withdrawals?per_page=100&user=${user}`);
    if (list.data.every((w: { status: string }) => w.status === 'succeeded' || w.status === 'failed')) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Every withdrawal's status, by id. */
export async function statusById(rt: Runtime): Promise<Map<string, string>> {
  const rows = await rt.store.db.selectFrom('withdrawals').select(['id', 'status']).execute();
  return new Map(rows.map((r) => [r.id, r.status]));
}

/** The withdrawal of each final event (succeeded or failed), sorted: one entry per event. */
export async function finalEventWithdrawals(rt: Runtime): Promise<string[]> {
  const events = await rt.store.db.selectFrom('events').select(['type', 'body']).where('type', 'in', ['balance.withdrawal.succeeded', 'balance.withdrawal.failed']).execute();
  return events.map((e) => (JSON.parse(e.body) as { data: { object: { id: string } } }).data.object.id).sort();
}

/** Runs `tixian ledger verify` on the storage as a process of its own: its exit code and all it printed. */
export async function ledgerVerify(storage: Storage): Promise<{ code: number | null; out: string }> {
  const verify = spawn(process.execPath, [TIXIAN_BIN, 'ledger', 'verify', ...storageArgs(storage)], {
    env: { ...process.env, TIXIAN_DATA_DIR: storage.dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  verify.stdout.on('data', (c: Buffer) => (out += c.toString()));
  verify.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(verify, 'exit')) as [number | null];
  return { code, out };
}

/** No line of the PEM key's body, nor its first 40 characters, shows in `text` (the logs). */
export function expectNoKeyIn(text: string, pem: string): void {
  const lines = pem.split('\n').slice(1, -2);
  for (const line of lines) expect(text.includes(line)).toBe(false);
  expect(text.includes(lines.join('').slice(0, 40))).toBe(false);
}
