import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { describe } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { defaults, type Config } from '../../src/config.ts';
import { openRuntime, type Runtime } from '../../src/runtime.ts';
import { buildApp } from '../../src/http/app.ts';
import { createApp, type CreatedApp } from '../../src/services/accounts.ts';
import { verifyLedger } from '../../src/ledger/verify.ts';
import type { Clock } from '../../src/clock.ts';
import type { WalSyncFactory } from '../../src/store/wal-sync.ts';

export type Engine = 'sqlite' | 'postgres';

const PG_URL = process.env.TIXIAN_TEST_DATABASE_URL;

/**
 * Runs a suite once per storage engine. PostgreSQL runs when TIXIAN_TEST_DATABASE_URL is set
 * (.ci/run sets it); locally without it the PostgreSQL half is reported as skipped, and in CI
 * (CI=true) a missing URL is an error, so the suite can never pass by silently not running.
 */
export function describeEngines(name: string, body: (engine: Engine) => void): void {
  describe.each(['sqlite', 'postgres'] as Engine[])(`${name} [%s]`, (engine) => {
    if (engine === 'postgres' && !PG_URL) {
      if (process.env.CI) throw new Error('CI must set TIXIAN_TEST_DATABASE_URL: the PostgreSQL suites must run');
      describe.skip('skipped: set TIXIAN_TEST_DATABASE_URL to run on PostgreSQL', () => {});
      return;
    }
    body(engine);
  });
}

/** A fresh, empty database for one test file: a temp directory (SQLite) or a new PostgreSQL database. */
export async function freshStorage(engine: Engine): Promise<{ dataDir: string; databaseUrl: string | undefined; drop: () => Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tixian-test-'));
  if (engine === 'sqlite') {
    return { dataDir, databaseUrl: undefined, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const name = `tixian_t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_URL!);
  url.pathname = `/${name}`;
  return {
    dataDir,
    databaseUrl: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface HarnessOptions {
  clock?: Clock;
  config?: Partial<Config>;
  /** SQLite: the group commit's WAL sync (helpers/wal-sync.ts holds or fails one). */
  sqliteWalSync?: WalSyncFactory;
}

export interface RequestOptions {
  body?: unknown;
  /** Defaults to the harness app's test key; pass null to send no Authorization header. */
  key?: string | null;
  headers?: Record<string, string>;
  rawBody?: string | Buffer;
}

/** A key createApp showed (it shows keys only for a new account, once). */
export function shownKey(key: string | null): string {
  if (key === null) throw new Error('no key shown: the app joined an existing account (keys are shown once, at creation or roll)');
  return key;
}

/** One server (in-process, via inject) on fresh storage, with one app ready to use. */
export class Harness {
  private constructor(
    readonly engine: Engine,
    readonly rt: Runtime,
    readonly app: FastifyInstance,
    readonly merchant: CreatedApp,
    private readonly drop: () => Promise<void>,
  ) {}

  static async start(engine: Engine, options: HarnessOptions = {}): Promise<Harness> {
    const storage = await freshStorage(engine);
    const config: Config = {
      ...defaults,
      dataDir: storage.dataDir,
      databaseUrl: storage.databaseUrl,
      workers: false,
      logLevel: 'silent',
      // Suites fire thousands of in-process requests a second with one key; limits.test.ts opts in.
      rateLimit: 0,
      ...options.config,
    };
    const rt = await openRuntime(config, {
      log: pino({ level: 'silent' }),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.sqliteWalSync ? { sqliteWalSync: options.sqliteWalSync } : {}),
    });
    const app = await buildApp(rt);
    const merchant = await createApp(rt, { name: 'test app' });
    return new Harness(engine, rt, app, merchant, storage.drop);
  }

  get appId(): string {
    return this.merchant.id;
  }
  get testKey(): string {
    return shownKey(this.merchant.secret_key_test);
  }
  get liveKey(): string {
    return shownKey(this.merchant.secret_key_live);
  }

  async request(method: InjectOptions['method'], url: string, options: RequestOptions = {}) {
    const headers: Record<string, string> = { ...options.headers };
    const key = options.key === undefined ? this.testKey : options.key;
    if (key !== null) headers.authorization = 'Bearer ' + key;
    let payload: string | Buffer | undefined;
    if (options.rawBody !== undefined) payload = options.rawBody;
    else if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json; charset=UTF-8';
    }
    const res = await this.app.inject({ method, url, headers, ...(payload !== undefined ? { payload } : {}) });
    let json: unknown;
    try {
      json = res.json();
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers, body: res.body, json: json as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  /** `/v1/apps/<this app>` + path */
  appPath(rest: string): string {
    return `/v1/apps/${this.appId}${rest}`;
  }

  async createUser(id: string, extra: Record<string, unknown> = {}, key?: string) {
    const res = await this.request('POST', this.appPath('/users'), { body: { id, ...extra }, ...(key ? { key } : {}) });
    if (res.status !== 200) throw new Error(`create user ${id}: ${res.status} ${res.body}`);
    return res.json;
  }

  /** Gives a user withdrawable money (a balance_settlement). */
  async fund(user: string, amount: number, key?: string) {
    const res = await this.request('POST', this.appPath('/balance_settlements'), {
      body: { user, amount, order_no: `fund${Math.random().toString(36).slice(2, 12)}` },
      ...(key ? { key } : {}),
    });
    if (res.status !== 200) throw new Error(`fund ${user}: ${res.status} ${res.body}`);
    return res.json;
  }

  async verify() {
    return verifyLedger(this.rt.store);
  }

  /** Row counts of every table plus the sum of all balances: equal snapshots mean nothing changed. */
  async snapshot(): Promise<Record<string, number>> {
    const db = this.rt.store.db;
    const out: Record<string, number> = {};
    for (const t of [
      'accounts', 'apps', 'users', 'journal_entries', 'postings', 'balance_transactions', 'balance_bonuses',
      'balance_settlements', 'balance_transfers', 'withdrawals', 'batch_withdrawals', 'settle_accounts', 'events',
      'webhook_endpoints', 'webhook_deliveries',
    ] as const) {
      const r = await db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      out[t] = Number(r.n);
    }
    const b = await db
      .selectFrom('users')
      .select((eb) => [eb.fn.sum<number>('available_balance').as('a'), eb.fn.sum<number>('withdrawable_balance').as('w')])
      .executeTakeFirstOrThrow();
    out.available_total = Number(b.a ?? 0);
    out.withdrawable_total = Number(b.w ?? 0);
    const statuses = await db.selectFrom('withdrawals').select(['status', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('status').execute();
    for (const s of statuses) out[`withdrawals_${s.status}`] = Number(s.n);
    return out;
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.rt.close();
    await this.drop();
  }
}
