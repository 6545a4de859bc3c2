import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import Fastify from 'fastify';
import inject from 'light-my-request';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../src/config.ts';
import { registerErrorHandling } from '../src/http/plugins/errors.ts';
import { openRuntime } from '../src/runtime.ts';
import { PLATFORM_SIGNATURE_HEADER } from '../src/security/platform-key.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { Store } from '../src/store/db.ts';
import { GROUP_COMMIT_MAX_BATCH, GROUP_COMMIT_MAX_QUEUE } from '../src/store/group-commit.ts';
import { describeEngines, freshStorage, Harness } from './helpers/harness.ts';
import { startServer, type ServerProcess } from './helpers/process.ts';

/** Review of several processes on one database, and of their lifecycle. */

/** Several processes on one SQLite file: review of locking and lifecycle. */
describe('several processes on one SQLite file', () => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let merchant: CreatedApp;
  const servers: ServerProcess[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    storage = await freshStorage('sqlite');
    const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, workers: false }, { log: pino({ level: 'silent' }) });
    merchant = await createApp(rt, { name: 'review' });
    await rt.close();
    env = { TIXIAN_DATA_DIR: storage.dataDir, TIXIAN_SANDBOX_DELAY_MS: '0', TIXIAN_RATE_LIMIT: '0' };
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.kill('SIGTERM')));
  });
  afterAll(async () => {
    await storage?.drop();
  });

  async function call(base: string, method: 'GET' | 'POST', path: string, body?: unknown) {
    const res = await request(`${base}/v1/apps/${merchant.id}${path}`, {
      method,
      headers: { authorization: `Bearer ${merchant.secret_key_test}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  }

  it('SIGTERM to the primary of `--workers 2` under writes: each request is answered 200, refused in Ping++\'s shape, or not applied', async () => {
    const server = await startServer(['--workers', '2'], env);
    servers.push(server);
    const outcomes: string[] = [];
    const unanswered: string[] = [];
    let next = 0;
    let stop = false;
    const clients = Array.from({ length: 16 }, async () => {
      while (!stop) {
        const id = `t${next++}`;
        try {
          const res = await call(server.url, 'POST', '/users', { id });
          const error = res.body.error as { type?: string; code?: string } | string | undefined;
          outcomes.push(res.status === 200 ? '200' : `${res.status} ${typeof error === 'object' ? `${error.type}/${error.code}` : JSON.stringify(error)}`);
        } catch (err) {
          // Refused (ECONNREFUSED) or cut (ECONNRESET, UND_ERR_SOCKET) without an answer: must not have been applied.
          outcomes.push((err as { code?: string }).code ?? 'error');
          unanswered.push(id);
          if (server.child.exitCode !== null) stop = true;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await server.kill('SIGTERM')).toBe(0);
    stop = true;
    await Promise.all(clients);
    const db = new BetterSqlite3(path.join(storage.dataDir, 'tixian.db'), { readonly: true });
    const applied = unanswered.filter((id) => db.prepare('select 1 from users where id = ?').get(id));
    db.close();
    expect(applied).toEqual([]);
    expect(outcomes.filter((o) => !['200', '503 api_error/service_unavailable', 'ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET'].includes(o))).toEqual([]);
  }, 30_000);
});

/**
 * An API process and a worker process (or several of each) started together on a fresh SQLite
 * file: both found the migrations pending, and the second to take the write lock ran 0001 again
 * ("table accounts already exists") or collided on Kysely's record of it, and exited 1.
 */
describeEngines('processes started at once on a fresh database', (engine) => {
  it('all of them start: the migrations run once, and every process starts', async () => {
    const storage = await freshStorage(engine);
    const env: Record<string, string> = { TIXIAN_DATA_DIR: storage.dataDir, ...(storage.databaseUrl ? { TIXIAN_DATABASE_URL: storage.databaseUrl } : {}) };
    const roles = ['api', 'worker', 'api', 'worker'];
    // Four processes migrating and starting at once take 4–14 s alone on this machine kind, and
    // passed 20 s with the rest of the suite running beside them (2026-11-27, a slow host): the
    // bound is for a process that never starts, not a speed.
    const started = await Promise.allSettled(roles.map((role) => startServer(['--role', role], env, 60_000)));
    try {
      const failures = started.flatMap((s) => (s.status === 'rejected' ? [String(s.reason).split('\n').slice(0, 6).join('\n')] : []));
      expect(failures).toEqual([]);
    } finally {
      await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.kill('SIGTERM') : null)));
      await storage.drop();
    }
  }, 90_000);
});

/**
 * While a process drains (SIGTERM: app.close() waits for the requests in flight), a request that
 * still reaches it (pipelined, or on a keep-alive connection busy at the signal; seen under load
 * with `--workers 2`) was refused by Fastify itself: `{"error":"Service Unavailable",…}`, a string
 * where Ping++'s SDKs read an error object, without x-request-id or the response signature.
 */
describe('a request that reaches a draining process', () => {
  it('is refused with a 503 in Ping++\'s error shape, signed, and the connection closed', async () => {
    const h = await Harness.start('sqlite');
    try {
      await h.app.close();
      // What the server's 'request' handler runs for a request that arrives while it is closing.
      const res = await inject(h.app.routing, { method: 'GET', url: h.appPath('/users'), headers: { authorization: `Bearer ${h.testKey}` } });
      const body = JSON.parse(res.payload) as { error?: { type?: string; code?: string } };
      expect([res.statusCode, body.error?.type, body.error?.code]).toEqual([503, 'api_error', 'service_unavailable']);
      expect(res.headers['x-request-id']).toEqual(expect.any(String));
      expect(res.headers[PLATFORM_SIGNATURE_HEADER.toLowerCase()]).toEqual(expect.any(String));
      expect(res.headers.connection).toBe('close');
      // The probes say the same to a load balancer.
      expect((await inject(h.app.routing, { method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    } finally {
      await h.close();
    }
  });
});

/**
 * A write that cannot get the database (another process holds SQLite's write lock past
 * busy_timeout: a migration, a long CLI command, an operator's sqlite3 shell; or this process's
 * group commit queue is full) was applied nowhere, yet was answered as a 500 internal_error, as if
 * the server had a fault. It is a 503 api_error: busy now, send it again.
 */
describe('a write that cannot get the database', () => {
  it('another process holds the SQLite write lock past busy_timeout: 503, then 200 once it is let go', async () => {
    const storage = await freshStorage('sqlite');
    const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, workers: false }, { log: pino({ level: 'silent' }) });
    const merchant = await createApp(rt, { name: 'busy' });
    await rt.close();
    const server = await startServer([], { TIXIAN_DATA_DIR: storage.dataDir, TIXIAN_WORKERS: '0' });
    const holder = new BetterSqlite3(path.join(storage.dataDir, 'tixian.db'));
    const post = async (id: string) => {
      const res = await request(`${server.url}/v1/apps/${merchant.id}/users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${merchant.secret_key_test}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
      });
      return { status: res.statusCode, body: (await res.body.json()) as { error?: { type?: string; code?: string } } };
    };
    try {
      holder.exec('BEGIN IMMEDIATE');
      const refused = await post('busy_user');
      expect([refused.status, refused.body.error?.type, refused.body.error?.code]).toEqual([503, 'api_error', 'database_busy']);
      holder.exec('ROLLBACK');
      expect((await post('busy_user')).status).toBe(200);
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK');
      holder.close();
      await server.kill('SIGTERM');
      await storage.drop();
    }
  }, 20_000);

  it('the group commit\'s queue is full: the error handler answers 503, not 500', async () => {
    const storage = await freshStorage('sqlite');
    const store = Store.open({ dataDir: storage.dataDir });
    await store.migrate();
    // The error handler the API uses, on a route that writes through the group commit alone.
    const app = Fastify();
    registerErrorHandling(app, 1024);
    app.post('/write', () => store.transaction(async () => ({ ok: true })));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    try {
      // The one connection is held, so nothing the queue holds runs meanwhile.
      const holding = store.db.connection().execute(() => held);
      const queue = (n: number) => Array.from({ length: n }, () => store.transaction(async () => null).catch(() => null));
      const queued = queue(GROUP_COMMIT_MAX_QUEUE);
      await new Promise((r) => setImmediate(r)); // the first batch is taken (and waits for the connection)
      queued.push(...queue(GROUP_COMMIT_MAX_BATCH));
      const res = await app.inject({ method: 'POST', url: '/write' });
      const body = res.json<{ error?: { type?: string; code?: string } }>();
      expect([res.statusCode, body.error?.type, body.error?.code]).toEqual([503, 'api_error', 'database_busy']);
      release();
      await holding;
      await Promise.all(queued);
    } finally {
      release();
      await app.close();
      await store.close();
      await storage.drop();
    }
  });
});

const PG_URL = process.env.TIXIAN_TEST_DATABASE_URL;
describe.skipIf(!PG_URL)('PostgreSQL: every pool connection checked out', () => {
  it('a request that gets none within connectionTimeoutMillis is answered 503, not 500', { timeout: 20_000 }, async () => {
    const storage = await freshStorage('postgres');
    const store = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir, poolSize: 1 });
    const app = Fastify();
    registerErrorHandling(app, 1024);
    app.get('/read', async () => (await store.db.selectFrom('settings').selectAll().execute()).length);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    try {
      await store.migrate();
      const holding = store.db.connection().execute(() => held);
      const res = await app.inject({ method: 'GET', url: '/read' });
      const body = res.json<{ error?: { type?: string; code?: string } }>();
      expect([res.statusCode, body.error?.type, body.error?.code]).toEqual([503, 'api_error', 'database_busy']);
      release();
      await holding;
    } finally {
      release();
      await app.close();
      await store.close();
      await storage.drop();
    }
  });
});
