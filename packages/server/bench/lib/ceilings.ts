import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runLoad } from './load.ts';

/**
 * The machine's ceilings, measured in the same run as the figures they judge (issue #12,
 * shared/design/PERFORMANCE.md), each on core 0 like the server:
 * - http: Fastify with body and response schema answering a canned withdrawal (ceilings/http-server.mjs),
 *   loaded by autocannon from this process exactly like a scenario;
 * - storage: the create transaction done directly in SQLite (ceilings/sqlite-bench.mjs NORMAL), or on
 *   PostgreSQL as one statement from Node (ceilings/pg-tx-bench.mjs, on a scratch database);
 * - sign: RSA-2048 signatures per second (ceilings/rsa-sign-bench.mjs).
 * A tixian figure is then printed as a ratio of 1 / (1/http + 1/storage [+ 1/sign when signed]).
 */
export interface Ceilings {
  httpPerS: number;
  sqlitePerS: number;
  postgresPerS: number | null;
  signPerS: number;
}

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../ceilings');
/** Every ceiling run is bounded: a hung script must not hang the bench. */
const SCRIPT_TIMEOUT_MS = 120_000;

function onCore0(pin: boolean, args: string[]): [string, string[]] {
  return pin ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args];
}

function runScript(pin: boolean, args: string[]): Promise<Record<string, unknown>> {
  const [cmd, argv] = onCore0(pin, args);
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: SCRIPT_TIMEOUT_MS, cwd: DIR }, (err, stdout) => {
      if (err) return reject(err);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, unknown>);
      } catch {
        reject(new Error(`ceiling script ${args[0]} printed no JSON: ${last}`));
      }
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function httpCeiling(pin: boolean, connections: number, durationS: number, warmupS: number): Promise<number> {
  const port = await freePort();
  const [cmd, argv] = onCore0(pin, [path.join(DIR, 'http-server.mjs'), 'fastify-schema', String(port)]);
  const child = spawn(cmd, argv, { cwd: DIR, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the http ceiling server did not start')), 20_000);
      child.stdout.on('data', (c: Buffer) => {
        if (c.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`the http ceiling server exited with ${code}`)));
    });
    const body = JSON.stringify({ user: 'u1', amount: 1, channel: 'alipay', order_no: 'o1', extra: { account: 'x@y.cn', name: '张三' }, description: 'bench' });
    const requests = [{ method: 'POST' as const, path: '/v1/apps/app_1/withdrawals', headers: { 'content-type': 'application/json' }, body }];
    const url = `http://127.0.0.1:${port}`;
    // Warmed up on the same connections, as the scenarios are (load.ts).
    return (await runLoad({ url, connections, durationS, requests, warmupS })).requestsPerS;
  } finally {
    child.kill('SIGTERM');
  }
}

async function postgresCeiling(pin: boolean, pgUrl: string): Promise<number> {
  const name = `tixian_ceiling_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(pgUrl);
    url.pathname = `/${name}`;
    return Number((await runScript(pin, [path.join(DIR, 'pg-tx-bench.mjs'), url.toString(), '5'])).tx_per_s);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

export async function measureCeilings(o: { pin: boolean; connections: number; durationS: number; warmupS: number; pgUrl: string | undefined }): Promise<Ceilings> {
  const httpPerS = await httpCeiling(o.pin, o.connections, o.durationS, o.warmupS);
  const dir = mkdtempSync(path.join(tmpdir(), 'tixian-ceiling-'));
  let sqlitePerS: number;
  try {
    sqlitePerS = Number((await runScript(o.pin, [path.join(DIR, 'sqlite-bench.mjs'), 'NORMAL', '5', path.join(dir, 'ceiling.db')])).tx_per_s);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const postgresPerS = o.pgUrl ? await postgresCeiling(o.pin, o.pgUrl) : null;
  const signPerS = Number((await runScript(o.pin, [path.join(DIR, 'rsa-sign-bench.mjs'), '3'])).signs_per_s);
  return { httpPerS, sqlitePerS, postgresPerS, signPerS };
}

/** 1 / (1/http + 1/storage [+ 1/sign]): what one core could do if tixian added nothing of its own. */
export function composite(c: Ceilings, engine: 'sqlite' | 'postgres', signed: boolean): number | null {
  const storage = engine === 'sqlite' ? c.sqlitePerS : c.postgresPerS;
  if (!storage) return null;
  return 1 / (1 / c.httpPerS + 1 / storage + (signed ? 1 / c.signPerS : 0));
}

export function meanCeilings(a: Ceilings, b: Ceilings): Ceilings {
  const mean = (x: number, y: number) => (x + y) / 2;
  return {
    httpPerS: mean(a.httpPerS, b.httpPerS),
    sqlitePerS: mean(a.sqlitePerS, b.sqlitePerS),
    postgresPerS: a.postgresPerS !== null && b.postgresPerS !== null ? mean(a.postgresPerS, b.postgresPerS) : null,
    signPerS: mean(a.signPerS, b.signPerS),
  };
}
