import pg from 'pg';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../src/config.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { verifyLedger } from '../src/ledger/verify.ts';
import { Store } from '../src/store/db.ts';
import { freshStorage } from './helpers/harness.ts';
import { startServer, type ServerProcess } from './helpers/process.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/**
 * PostgreSQL backends die (a failover, an operator's pg_terminate_backend, an idle-session
 * timeout) while the server holds them mid-transaction. The process must stay up: the requests
 * that were using a dead connection answer a clean 500 api_error, later ones succeed, and nothing
 * is left half-done (no withdrawal stuck `pending`, ledger clean).
 */
const PG_URL = process.env.TIXIAN_TEST_DATABASE_URL;
if (!PG_URL && process.env.CI) throw new Error('CI must set TIXIAN_TEST_DATABASE_URL: the PostgreSQL suites must run');

describe.skipIf(!PG_URL)('PostgreSQL connection loss [postgres]', () => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let merchant: CreatedApp;
  let server: ServerProcess | undefined;
  let admin: pg.Client;
  let dbName: string;
  /** Called on each answer during the outage. */
  let onAnswer: () => void = () => {};

  beforeAll(async () => {
    storage = await freshStorage('postgres');
    dbName = new URL(storage.databaseUrl!).pathname.slice(1);
    const rt = await open();
    merchant = await createApp(rt, { name: 'resilience' });
    await rt.close();
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await server?.kill();
    await admin?.end();
    await storage?.drop();
  });

  it('a transaction whose backend dies fails with the cause (57P01), not the failed ROLLBACK; the store carries on', async () => {
    const store = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir, poolSize: 2 });
    try {
      const err = await store
        .transaction(async (trx) => {
          await trx.insertInto('settings').values({ key: 'doomed', value: 'x' }).execute();
          await sql`select pg_terminate_backend(pg_backend_pid())`.execute(trx);
        })
        .then(() => null, (e: unknown) => e as { code?: string; message?: string });
      expect(err).not.toBeNull();
      expect({ code: err!.code, message: err!.message }).toEqual({ code: '57P01', message: expect.stringMatching(/terminating connection/) });
      // The dead connection is not handed out again; the next transaction works and the first left nothing.
      await store.transaction((trx) => trx.insertInto('settings').values({ key: 'after', value: 'y' }).execute());
      const keys = await store.db.selectFrom('settings').select('key').where('key', 'in', ['doomed', 'after']).execute();
      expect(keys).toEqual([{ key: 'after' }]);
    } finally {
      await store.close();
    }
  });

  it('a session left idle inside a transaction (a frozen process) is ended, and the row it locked is free again', async () => {
    const frozen = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir, poolSize: 1, idleInTransactionMs: 300 });
    const other = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir, poolSize: 1 });
    try {
      await other.db.insertInto('settings').values({ key: 'locked', value: 'a' }).execute();
      // The frozen process: its transaction locks the row, then nothing more is sent on it.
      let resume!: () => void;
      const resumed = new Promise<void>((resolve) => (resume = resolve));
      let lockTaken!: () => void;
      const locked = new Promise<void>((resolve) => (lockTaken = resolve));
      const held = frozen.db.connection().execute(async (c) => {
        await sql`begin`.execute(c);
        await sql`update settings set value = 'b' where key = 'locked'`.execute(c);
        lockTaken();
        await resumed;
        return sql`commit`.execute(c);
      });
      held.catch(() => {}); // awaited below
      await locked;
      // Another writer of that row gets through once PostgreSQL has ended the idle session (well
      // inside the 30 s statement_timeout it would otherwise wait for), and sees the row unchanged.
      const t0 = performance.now();
      await other.db.updateTable('settings').set({ value: 'c' }).where('key', '=', 'locked').execute();
      expect(performance.now() - t0).toBeLessThan(10_000);
      resume();
      await expect(held).rejects.toThrow(/idle-in-transaction|terminat|connection error/i);
      expect(await other.db.selectFrom('settings').select('value').where('key', '=', 'locked').executeTakeFirst()).toEqual({ value: 'c' });
      // The default for the server's pool is a minute.
      expect((await sql<{ v: string }>`select current_setting('idle_in_transaction_session_timeout') as v`.execute(other.db)).rows[0]!.v).toBe('1min');
    } finally {
      await frozen.close().catch(() => {});
      await other.close();
    }
  });

  function open(): Promise<Runtime> {
    return openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
  }

  /** Terminates every backend of the test database (that database only); returns how many. */
  async function terminateBackends(): Promise<number> {
    const res = await admin.query('SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [dbName]);
    return res.rowCount ?? 0;
  }

  async function call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; json: Record<string, any> }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(`${server!.url}${path.startsWith('/healthz') || path.startsWith('/readyz') ? '' : `/v1/apps/${merchant.id}`}${path}`, {
      method,
      headers: { authorization: `Bearer ${merchant.secret_key_test}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  async function ok(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) {
    const res = await call(method, path, body);
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.json)}`);
    return res.json;
  }

  it('stays up while backends are terminated mid-transaction; failed requests are clean 500s; nothing is left pending', async () => {
    server = await startServer(['--database-url', storage.databaseUrl!, '--data-dir', storage.dataDir], {
      TIXIAN_PAYOUT_LEASE_MS: '500',
      TIXIAN_SANDBOX_DELAY_MS: '0',
      TIXIAN_POOL_SIZE: '4',
    });
    await ok('POST', '/users', { id: 'pg_user' });
    await ok('POST', '/balance_settlements', { user: 'pg_user', amount: 10_000_000, order_no: 'pgfund' });

    const statuses: number[] = [];
    const failures: unknown[] = [];
    /** Sends until answered 200; every other answer must be a clean 500 api_error. */
    async function persist(method: 'POST' | 'PUT', path: string, body: unknown, accept400 = false) {
      for (let attempt = 0; attempt < 50; attempt++) {
        const res = await call(method, path, body);
        statuses.push(res.status);
        onAnswer();
        if (res.status === 200) return res.json;
        // A confirm whose commit reached the database before the connection died answers 500,
        // and its retry finds the withdrawal no longer `created`.
        if (accept400 && res.status === 400) return res.json;
        if (res.status !== 500 || res.json.error?.type !== 'api_error') failures.push(res);
      }
      throw new Error(`${method} ${path}: no success in 50 tries`);
    }

    // The outage strikes again after every few answers (not on a timer), so requests are always in
    // flight when it does and every request still gets its chance between strikes, however slow
    // the machine.
    let chaos = true;
    let terminated = 0;
    let strikes = 0;
    let nextStrike: (() => void) | null = null;
    let answeredSinceStrike = 0;
    onAnswer = () => {
      if (++answeredSinceStrike >= 3) nextStrike?.();
    };
    const killer = (async () => {
      while (chaos) {
        await new Promise<void>((resolve) => (nextStrike = resolve));
        answeredSinceStrike = 0;
        if (!chaos) break;
        terminated += await terminateBackends();
        strikes++;
      }
    })();

    const COUNT = 60;
    const ids: string[] = [];
    let next = 0;
    const flow = async () => {
      while (next < COUNT) {
        const i = next++;
        const w = await persist('POST', '/withdrawals', {
          user: 'pg_user', amount: 1000 + i, user_fee: 0, channel: 'jdpay', order_no: `pgres${i}`, extra: seedExtra('jdpay', sandboxPayee('jdpay', '')),
        });
        ids.push(w.id as string);
        await persist('PUT', `/withdrawals/${w.id}`, { status: 'pending' }, true);
      }
    };
    try {
      await Promise.all(Array.from({ length: 8 }, flow));
    } finally {
      chaos = false;
      (nextStrike as (() => void) | null)?.(); // assigned inside the killer, which TypeScript cannot see
      await killer;
      onAnswer = () => {};
    }

    expect(server.child.exitCode, server.output()).toBeNull();
    expect(failures).toEqual([]);
    expect(strikes).toBeGreaterThan(10);
    expect(terminated).toBeGreaterThan(0);
    // The outage must have hit requests, or this test proves nothing.
    expect(statuses.filter((s) => s === 500).length).toBeGreaterThan(0);
    expect(ids).toHaveLength(COUNT);
    expect(await call('GET', '/healthz')).toEqual({ status: 200, json: { status: 'ok' } });
    expect(await call('GET', '/readyz')).toEqual({ status: 200, json: { status: 'ok' } });

    // Every withdrawal is confirmed (a confirm lost to the outage is sent again) and then paid.
    for (const id of ids) {
      const w = await ok('GET', `/withdrawals/${id}`);
      if (w.status === 'created') await ok('PUT', `/withdrawals/${id}`, { status: 'pending' });
    }
    const deadline = Date.now() + 30_000;
    let left = ids.length;
    while (Date.now() < deadline) {
      const list = await ok('GET', '/withdrawals?per_page=100&user=pg_user');
      left = (list.data as { status: string }[]).filter((w) => w.status !== 'succeeded').length;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 100)); // polling the API the way a merchant would
    }
    expect(left).toBe(0);
    expect(server.child.exitCode, server.output()).toBeNull();

    await server.kill('SIGTERM');
    server = undefined;
    const rt = await open();
    try {
      const pending = await rt.store.db.selectFrom('withdrawals').select('id').where('status', '!=', 'succeeded').execute();
      expect(pending).toEqual([]);
      const report = await verifyLedger(rt.store);
      expect(report.drift).toEqual([]);
    } finally {
      await rt.close();
    }
  }, 120_000);
});
