import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../src/config.ts';
import { openRuntime } from '../src/runtime.ts';
import { createUser } from '../src/services/users.ts';
import { createBalanceSettlement } from '../src/services/balance_settlements.ts';
import { createBalanceBonus } from '../src/services/balance_bonuses.ts';
import { describeEngines, freshStorage, type Engine } from './helpers/harness.ts';

/**
 * The `tixian` command as a user runs it: `node packages/server/bin/tixian.mjs …` in a child
 * process, against SQLite in a temp directory and (when TIXIAN_TEST_DATABASE_URL is set)
 * PostgreSQL via --database-url. Every wait on a child is bounded.
 */

const BIN = fileURLToPath(new URL('../bin/tixian.mjs', import.meta.url));
const COMMAND_TIMEOUT_MS = 30_000;
const WAIT_MS = 20_000;

type Storage = Awaited<ReturnType<typeof freshStorage>>;

/** The child's environment: ours without TIXIAN_* settings (flags decide) or test-runner loader options. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TIXIAN_') && k !== 'NODE_OPTIONS') env[k] = v;
  return env;
}

const storageFlags = (s: Storage) => ['--data-dir', s.dataDir, ...(s.databaseUrl ? ['--database-url', s.databaseUrl] : [])];

/** A running `tixian …` child with its output collected; `waitFor` resolves on output, not on time. */
class Tixian {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private listeners = new Set<() => void>();

  constructor(args: string[], cwd: string) {
    this.child = spawn(process.execPath, [BIN, ...args], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      for (const l of this.listeners) l();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      for (const l of this.listeners) l();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const l of this.listeners) l();
    }));
  }

  /** Resolves with the first match of `re` in stdout; rejects if the child exits first or time runs out. */
  waitFor(re: RegExp, ms = WAIT_MS): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, m?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (err) reject(err);
        else resolve(m!);
      };
      const check = () => {
        const m = this.stdout.match(re);
        if (m) done(null, m);
        else if (this.child.exitCode !== null || this.child.signalCode !== null) done(new Error(`exited before printing ${re}:\n${this.stdout}\n${this.stderr}`));
      };
      const timer = setTimeout(() => done(new Error(`no ${re} within ${ms} ms:\n${this.stdout}\n${this.stderr}`)), ms);
      this.listeners.add(check);
      check();
    });
  }

  /** Waits for the exit, killing the child if it takes longer than `ms`. */
  async exit(ms = COMMAND_TIMEOUT_MS) {
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve('timeout');
      }, ms);
    });
    const result = await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    if (result === 'timeout') throw new Error(`tixian did not exit within ${ms} ms:\n${this.stdout}\n${this.stderr}`);
    return result;
  }
}

async function run(args: string[], cwd: string) {
  const t = new Tixian(args, cwd);
  const { code } = await t.exit();
  return { code, stdout: t.stdout, stderr: t.stderr };
}

interface AppJson {
  id: string;
  account: string;
  secret_key_test: string;
  secret_key_live: string;
}

async function appsCreate(s: Storage, name: string, account?: string): Promise<AppJson> {
  const res = await run(['apps', 'create', '--name', name, ...(account ? ['--account', account] : []), '--json', ...storageFlags(s)], s.dataDir);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as AppJson;
}

/** One SQL statement straight on the storage, bypassing tixian (to read, or to tamper). */
async function rawSql(engine: Engine, s: Storage, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  if (engine === 'sqlite') {
    const db = new BetterSqlite3(path.join(s.dataDir, 'tixian.db'));
    try {
      const stmt = db.prepare(text.replace(/\$\d+/g, '?'));
      return stmt.reader ? (stmt.all(...params) as Record<string, unknown>[]) : (stmt.run(...params), []);
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: s.databaseUrl });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

/** Sends raw HTTP/1.1 on one socket and hands back what the server writes, event by event. */
class SlowClient {
  readonly socket: net.Socket;
  received = '';
  private listeners = new Set<() => void>();
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => {
      this.received += d;
      for (const l of this.listeners) l();
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => {
      resolve();
      for (const l of this.listeners) l();
    }));
    this.socket.on('error', () => {});
  }

  waitFor(test: (received: string) => boolean, what: string, ms = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (test(this.received)) finish(null);
        else if (this.socket.destroyed) finish(new Error(`socket closed before ${what}: ${JSON.stringify(this.received)}`));
      };
      const finish = (err: Error | null) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => finish(new Error(`no ${what} within ${ms} ms: ${JSON.stringify(this.received)}`)), ms);
      this.listeners.add(check);
      check();
    });
  }
}

/** The complete response after an interim `100 Continue`, or null while it is still arriving. */
function finalResponse(received: string): { status: number; body: string } | null {
  const start = received.indexOf('HTTP/1.1 ', 1);
  if (start < 0) return null;
  const headEnd = received.indexOf('\r\n\r\n', start);
  if (headEnd < 0) return null;
  const head = received.slice(start, headEnd);
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
  const body = received.slice(headEnd + 4);
  if (!Number.isInteger(length) || Buffer.byteLength(body) < length) return null;
  return { status: Number(head.slice(9, 12)), body };
}

describeEngines('tixian CLI', (engine) => {
  describe('apps, keys, migrate, ledger verify', () => {
    let s: Storage;
    let first: AppJson;
    beforeAll(async () => {
      s = await freshStorage(engine);
      first = await appsCreate(s, 'First app');
    });
    afterAll(async () => s?.drop());

    it('apps create --json prints the app id and the account keys', () => {
      expect(first.id).toMatch(/^app_[0-9A-Za-z]{16}$/);
      expect(first.secret_key_test).toMatch(/^sk_test_[0-9A-Za-z]{24}$/);
      expect(first.secret_key_live).toMatch(/^sk_live_[0-9A-Za-z]{24}$/);
    });

    it('shows keys once: a second app of the same account prints none; another account gets other keys', async () => {
      const second = await appsCreate(s, 'Second app');
      expect(second.id).not.toBe(first.id);
      expect(second.account).toBe(first.account);
      expect(second).not.toHaveProperty('secret_key_test');
      expect(second).not.toHaveProperty('secret_key_live');
      const text = await run(['apps', 'create', '--name', 'Third app', ...storageFlags(s)], s.dataDir);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).not.toMatch(/sk_(test|live)_/);

      const acme1 = await appsCreate(s, 'Acme shop', 'acme');
      const acme2 = await appsCreate(s, 'Acme games', 'acme');
      expect(acme1.account).not.toBe(first.account);
      expect(acme1.secret_key_test).not.toBe(first.secret_key_test);
      expect(acme1.secret_key_live).not.toBe(first.secret_key_live);
      expect(acme2.account).toBe(acme1.account);
      expect(acme2).not.toHaveProperty('secret_key_test');
    });

    it('apps keys roll prints a new key once; apps keys list never prints a key', async () => {
      const acme = await appsCreate(s, 'Roll shop', 'roll-acme');
      const rolled = await run(['apps', 'keys', 'roll', acme.id, '--mode', 'test', '--expire-old-in', '24h', '--json', ...storageFlags(s)], s.dataDir);
      expect(rolled.code, rolled.stderr).toBe(0);
      const key = (JSON.parse(rolled.stdout) as { secret_key: string }).secret_key;
      expect(key).toMatch(/^sk_test_[0-9A-Za-z]{24}$/);
      const list = await run(['apps', 'keys', 'list', acme.id, ...storageFlags(s)], s.dataDir);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toContain(`sk_test_…${key.slice(-4)}`);
      expect(list.stdout).toMatch(/expiring/);
      for (const k of [key, acme.secret_key_test, acme.secret_key_live]) expect(list.stdout.includes(k.slice(8, -4))).toBe(false);
      const refused = await run(['apps', 'keys', 'roll', acme.id, '--mode', 'test', '--expire-old-in', '30d', ...storageFlags(s)], s.dataDir);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/at most 7d/);
    });

    it('refuses a bad account name with a usage error', async () => {
      const res = await run(['apps', 'create', '--name', 'x', '--account', 'no spaces please', ...storageFlags(s)], s.dataDir);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/account name/);
    });

    it('keeps no usable key in the database', async () => {
      const secrets = [first.secret_key_test, first.secret_key_live];
      // The random part alone must not appear either (e.g. stored without its prefix).
      const needles = [...secrets, ...secrets.map((k) => k.slice('sk_test_'.length))];
      if (engine === 'sqlite') {
        const files = readdirSync(s.dataDir).filter((f) => f.startsWith('tixian.db'));
        expect(files).toContain('tixian.db');
        for (const f of files) {
          const bytes = readFileSync(path.join(s.dataDir, f)).toString('latin1');
          for (const n of needles) expect(bytes.includes(n), `${n} found in ${f}`).toBe(false);
        }
      } else {
        for (const table of ['accounts', 'apps', 'settings']) {
          const text = JSON.stringify(await rawSql(engine, s, `SELECT * FROM ${table}`));
          for (const n of needles) expect(text.includes(n), `${n} found in ${table}`).toBe(false);
        }
      }
    });

    it('ledger verify exits 0 on a clean journal and 1 once a balance is tampered with', async () => {
      // Money moves through the services (the CLI has no command for it), then the process is left.
      const rt = await openRuntime({ ...defaults, dataDir: s.dataDir, databaseUrl: s.databaseUrl, workers: false, logLevel: 'silent' }, { log: pino({ level: 'silent' }) });
      try {
        const scope = { accountId: first.account, app: first.id, livemode: false, requestId: null };
        await createUser(rt, scope, { id: 'cli_user' });
        await createBalanceSettlement(rt, scope, { user: 'cli_user', amount: 700, order_no: 'cli_settle_1' });
        await createBalanceBonus(rt, scope, { user: 'cli_user', amount: 300, order_no: 'cli_bonus_1' });
      } finally {
        await rt.close();
      }

      const clean = await run(['ledger', 'verify', ...storageFlags(s)], s.dataDir);
      expect(clean.code, clean.stdout + clean.stderr).toBe(0);
      expect(clean.stdout).toMatch(/2 entries, 4 postings, \d+ users: no drift/);

      await rawSql(engine, s, 'UPDATE users SET available_balance = available_balance + 1 WHERE id = $1', ['cli_user']);
      const tampered = await run(['ledger', 'verify', '--json', ...storageFlags(s)], s.dataDir);
      expect(tampered.code, tampered.stdout + tampered.stderr).toBe(1);
      const report = JSON.parse(tampered.stdout) as { ok: boolean; drift: { kind: string; subject: string; detail: string }[] };
      expect(report.ok).toBe(false);
      expect(report.drift).toContainEqual(expect.objectContaining({ kind: 'user_balance', subject: expect.stringContaining('cli_user'), detail: expect.stringMatching(/available_balance 1001 but journal says 1000/) }));
    });
  });

  it('migrate applies the migrations on an empty database, then says it is up to date', async () => {
    const s = await freshStorage(engine);
    try {
      const fresh = await run(['migrate', ...storageFlags(s)], s.dataDir);
      expect(fresh.code, fresh.stderr).toBe(0);
      expect(fresh.stdout).toMatch(/^applied: \S+/);
      const again = await run(['migrate', ...storageFlags(s)], s.dataDir);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout.trim()).toBe('database is up to date');
    } finally {
      await s.drop();
    }
  });

  describe('serve', () => {
    it('on a fresh data directory prints its address and how to create an app, serves /healthz, exits 0 on SIGTERM', async () => {
      const s = await freshStorage(engine);
      try {
        const server = new Tixian(['serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...storageFlags(s)], s.dataDir);
        try {
          const [, address] = await server.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
          await server.waitFor(/No apps yet[^\n]*\n\s*npx tixian apps create --name "My app"/);
          const health = await fetch(`${address}/healthz`);
          expect(health.status).toBe(200);
          expect(await health.json()).toEqual({ status: 'ok' });
          server.child.kill('SIGTERM');
          expect(await server.exit()).toEqual({ code: 0, signal: null });
        } finally {
          server.child.kill('SIGKILL');
        }
      } finally {
        await s.drop();
      }
    });

    it('on SIGTERM finishes the request in flight, then exits 0', async () => {
      const s = await freshStorage(engine);
      try {
        const app = await appsCreate(s, 'Shop');
        const server = new Tixian(['serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...storageFlags(s)], s.dataDir);
        try {
          const [, port] = await server.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
          // Start-up is over once it answers (a SIGTERM during start-up is the next test's subject).
          expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
          const body = JSON.stringify({ id: 'slow_user', name: 'arrived during shutdown' });
          const client = new SlowClient(Number(port));
          // A keep-alive client (no `Connection: close`), like every pooled HTTP client.
          // `Expect: 100-continue`: the server answers "100 Continue" once it has the request in hand.
          client.socket.write(
            `POST /v1/apps/${app.id}/users HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${app.secret_key_test}\r\n` +
              `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`,
          );
          await client.waitFor((r) => r.startsWith('HTTP/1.1 100 Continue'), '100 Continue');
          client.socket.write(body.slice(0, 10));

          server.child.kill('SIGTERM');
          await server.waitFor(/"msg":"shutting down"/);
          expect(server.child.exitCode).toBeNull();

          client.socket.write(body.slice(10));
          await client.waitFor((r) => finalResponse(r) !== null, 'the response');
          const final = finalResponse(client.received)!;
          expect(final.status, final.body).toBe(200);
          expect(JSON.parse(final.body)).toMatchObject({ object: 'user', id: 'slow_user', app: app.id });

          expect(await server.exit()).toEqual({ code: 0, signal: null });
          await client.closed;
          expect(server.stdout).not.toMatch(/No apps yet/);
          const rows = await rawSql(engine, s, 'SELECT name FROM users WHERE id = $1', ['slow_user']);
          expect(rows).toEqual([{ name: 'arrived during shutdown' }]);
        } finally {
          server.child.kill('SIGKILL');
        }
      } finally {
        await s.drop();
      }
    });

    it('treats a SIGTERM right after it printed its address as a graceful shutdown', async () => {
      const s = await freshStorage(engine);
      try {
        await appsCreate(s, 'Shop');
        const server = new Tixian(['serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...storageFlags(s)], s.dataDir);
        try {
          await server.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
          server.child.kill('SIGTERM');
          // Killed by the signal (signal SIGTERM) would mean in-flight requests are dropped.
          expect(await server.exit()).toEqual({ code: 0, signal: null });
          expect(server.stdout).toMatch(/"msg":"shutting down"/);
        } finally {
          server.child.kill('SIGKILL');
        }
      } finally {
        await s.drop();
      }
    });
  });
});
