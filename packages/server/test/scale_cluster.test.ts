import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { Command } from 'commander';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaults, loadConfig, settings } from '../src/config.ts';
import { cliFlags, settingOption } from '../src/cli/shared.ts';
import { clusterSize, usableCores } from '../src/cli/cluster.ts';
import { openRuntime } from '../src/runtime.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { startServer, TIXIAN_BIN, type ServerProcess } from './helpers/process.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/** `serve --workers N` and `--role api|worker|all`: several processes, one port, one database. */

function serveFlags(argv: string[]) {
  const cmd = new Command('serve').exitOverride();
  for (const s of settings) if (s.flag) cmd.addOption(settingOption(s));
  cmd.parse(argv, { from: 'user' });
  return cliFlags(cmd);
}

describe('--workers and --role settings', () => {
  it('`--workers N` counts processes and `--no-workers` still turns the background workers off', () => {
    expect(loadConfig(serveFlags(['--workers', '3']), {})).toMatchObject({ clusterWorkers: 3, workers: true });
    expect(loadConfig(serveFlags(['--no-workers']), {})).toMatchObject({ clusterWorkers: 0, workers: false });
    expect(loadConfig(serveFlags(['--role', 'worker']), {})).toMatchObject({ role: 'worker' });
    // Both together, in either order: API-only processes, four of them (neither flag is lost).
    expect(loadConfig(serveFlags(['--no-workers', '--workers', '4']), {})).toMatchObject({ clusterWorkers: 4, workers: false });
    expect(loadConfig(serveFlags(['--workers', '4', '--no-workers']), {})).toMatchObject({ clusterWorkers: 4, workers: false });
    expect(loadConfig({}, { TIXIAN_CLUSTER_WORKERS: '2', TIXIAN_ROLE: 'API' })).toMatchObject({ clusterWorkers: 2, role: 'api' });
    expect(() => loadConfig(serveFlags(['--workers', '-1']), {})).toThrow(/--workers must be an integer from 0 to 256/);
    expect(() => loadConfig({}, { TIXIAN_ROLE: 'payout' })).toThrow(/TIXIAN_ROLE must be one of api, worker, all/);
  });

  it('picks one process per core on PostgreSQL, one on SQLite, and what it is told otherwise', () => {
    expect(clusterSize({ ...defaults, databaseUrl: 'postgres://u@h/db' }, null)).toBe(os.availableParallelism());
    // A container's CPU quota caps it: 1.5 CPUs → 2 processes, whatever the node has.
    expect(clusterSize({ ...defaults, databaseUrl: 'postgres://u@h/db' }, '150000 100000\n')).toBe(Math.min(2, os.availableParallelism()));
    expect(usableCores(64, '200000 100000')).toBe(2);
    expect(usableCores(64, 'max 100000')).toBe(64);
    expect(usableCores(4, '50000 100000')).toBe(1);
    expect(clusterSize({ ...defaults })).toBe(1);
    expect(clusterSize({ ...defaults, databaseUrl: 'sqlite:/tmp/x.db' })).toBe(1);
    expect(clusterSize({ ...defaults, clusterWorkers: 4 })).toBe(4);
  });
});

describe('a cluster that cannot start', () => {
  it('exits 2 with the reason when its processes cannot listen (the port taken), instead of hanging', async () => {
    const taken = await startServer(['--workers', '1'], { TIXIAN_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'tixian-taken-')) });
    try {
      const port = new URL(taken.url).port;
      const child = spawn(process.execPath, [TIXIAN_BIN, 'serve', '--port', port, '--workers', '2', '--data-dir', mkdtempSync(path.join(os.tmpdir(), 'tixian-cl-'))], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(2);
      expect(err).toMatch(/cannot listen on 127\.0\.0\.1:\d+: the address is already in use/);
    } finally {
      await taken.kill('SIGTERM');
    }
  });
});

/** The pids of a process's children (Linux `ps`). */
function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

async function until<T>(what: string, probe: () => Promise<T | null> | T | null, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeEngines('several processes on one database', (engine) => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let merchant: CreatedApp;
  const servers: ServerProcess[] = [];
  const args = () => (storage.databaseUrl ? ['--database-url', storage.databaseUrl] : []);
  let env: Record<string, string>;

  beforeAll(async () => {
    storage = await freshStorage(engine);
    const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
    merchant = await createApp(rt, { name: 'cluster' });
    await rt.close();
    env = { TIXIAN_DATA_DIR: storage.dataDir, TIXIAN_SANDBOX_DELAY_MS: '0', TIXIAN_PAYOUT_LEASE_MS: '2000' };
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.kill('SIGTERM')));
  });
  afterAll(async () => {
    await storage?.drop();
  });

  async function call(base: string, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) {
    const res = await request(`${base}/v1/apps/${merchant.id}${path}`, {
      method,
      headers: { authorization: `Bearer ${merchant.secret_key_test}`, 'content-type': 'application/json', connection: 'close' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  }

  it('`--workers 2` runs two processes on one port; one killed, the other answers and the primary forks a new one', async () => {
    const server = await startServer([...args(), '--workers', '2'], env);
    servers.push(server);
    expect(server.output()).toMatch(/tixian listening on http:\/\/\S+ \(.*; 2 processes\)/);
    const primary = server.child.pid!;
    const before = await until('two cluster processes', () => (childPids(primary).length === 2 ? childPids(primary) : null));
    process.kill(before[0]!, 'SIGKILL');
    // The survivor serves every request on the shared port meanwhile.
    for (let i = 0; i < 10; i++) {
      const res = await call(server.url, 'GET', '/users?limit=1');
      expect(res.status).toBe(200);
    }
    const after = await until('a replacement process', () => {
      const pids = childPids(primary);
      return pids.length === 2 && !pids.includes(before[0]!) ? pids : null;
    });
    expect(after).toContain(before[1]);
    // SIGTERM to the primary stops the whole cluster cleanly.
    expect(await server.kill('SIGTERM')).toBe(0);
    expect(after.filter((pid) => isAlive(pid))).toEqual([]);
  });

  it('`--role worker` serves only the probes; the payouts an `--role api` process confirms are paid by it', async () => {
    const worker = await startServer([...args(), '--role', 'worker'], env);
    servers.push(worker);
    expect(worker.output()).toMatch(/role worker/);
    const api = await startServer([...args(), '--role', 'api'], env);
    servers.push(api);

    const refused = await call(worker.url, 'GET', '/users');
    expect([refused.status, (refused.body.error as { type?: string } | undefined)?.type]).toEqual([404, 'invalid_request_error']);
    for (const probe of ['/healthz', '/readyz']) expect((await request(`${worker.url}${probe}`)).statusCode).toBe(200);

    expect((await call(api.url, 'POST', '/users', { id: 'role_user' })).status).toBe(200);
    expect((await call(api.url, 'POST', '/balance_settlements', { user: 'role_user', amount: 100_000, order_no: 'rolefund' })).status).toBe(200);
    const created = await call(api.url, 'POST', '/withdrawals', { user: 'role_user', amount: 1000, channel: 'jdpay', order_no: 'role1', extra: seedExtra('jdpay', sandboxPayee('jdpay', '')) });
    expect(created.status).toBe(200);
    const id = created.body.id as string;
    expect((await call(api.url, 'PUT', `/withdrawals/${id}`, { status: 'pending' })).status).toBe(200);
    const final = await until('the worker to pay the withdrawal', async () => {
      const w = await call(api.url, 'GET', `/withdrawals/${id}`);
      return w.body.status === 'pending' ? null : w.body.status;
    });
    expect(final).toBe('succeeded');
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describeEngines('the sandbox channel counts submits (what the chaos run checks)', (engine) => {
  it('a repeated submit of one key is counted, pays once and answers as the first did', async () => {
    const storage = await freshStorage(engine);
    const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, sandboxDelayMs: 0 }, { log: pino({ level: 'silent' }) });
    try {
      const driver = rt.drivers.driverFor('alipay', false)!;
      const order = { key: 'wd_once', withdrawalId: 'wd_once', app: 'app_scale', channel: 'alipay' as const, amount: 100, extra: seedExtra('alipay', sandboxPayee('alipay', '0002')), livemode: false, confirmedMs: Date.now() };
      const call = { timeoutMs: 1000, signal: new AbortController().signal, nowMs: Date.now() };
      const first = await driver.submit(order, call);
      expect(first).toMatchObject({ kind: 'failed', blame: 'user' });
      expect(await driver.submit(order, call)).toEqual(first);
      const rows = await rt.store.db.selectFrom('sandbox_payouts').select(['key', 'submits', 'amount']).execute();
      expect(rows.map((r) => ({ ...r, submits: Number(r.submits), amount: Number(r.amount) }))).toEqual([{ key: 'wd_once', submits: 2, amount: 100 }]);
    } finally {
      await rt.close();
      await storage.drop();
    }
  });
});
