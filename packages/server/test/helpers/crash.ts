import { spawn } from 'node:child_process';
import { once, type EventEmitter } from 'node:events';
import pino from 'pino';
import { request } from 'undici';
import { expect } from 'vitest';
import { defaults } from '../../src/config.ts';
import { openRuntime, type Runtime } from '../../src/runtime.ts';
import type { freshStorage } from './harness.ts';
import { TIXIAN_BIN } from './process.ts';

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

/** One app's API on a server process, and the key it is called with. */
export interface AppApi {
  url: string;
  app: string;
  key: string | null;
}

/** Calls `/v1/apps/<app><path>` over HTTP as a merchant would; any answer but 200 throws with its body. */
export async function callApp(to: AppApi, method: ApiMethod, path: string, body?: unknown): Promise<ApiAnswer> {
  const res = await request(`${to.url}/v1/apps/${to.app}${path}`, {
    method,
    headers: { authorization: `Bearer ${to.key}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.body.json()) as ApiAnswer;
  if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode} ${JSON.stringify(json)}`);
  return json;
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
