import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type SqliteDatabase,
  type SqliteDialectConfig,
} from 'kysely';
import type { Database } from './schema.ts';
import { migrationProvider } from './migrations.ts';
import { observePool } from '../observability/metrics.ts';

export type Engine = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;

/**
 * SQLite takes its write lock at BEGIN IMMEDIATE, so a transaction that will write never fails
 * half-way with SQLITE_BUSY when another process (the CLI, a second server) holds the lock; it
 * waits up to busy_timeout instead.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

// PostgreSQL returns int8 and numeric (SUM of bigint) as strings; money here fits in 2^53.
function parseSafeInteger(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`integer out of safe range: ${text}`);
  return n;
}
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return parseSafeInteger;
    return pg.types.getTypeParser(oid, format as 'text');
  },
} as unknown as pg.CustomTypesConfig;

/**
 * Kysely prepares every statement anew; better-sqlite3 statements are reusable, and preparing
 * is ~13% of a read's CPU here. Kysely's SQL text is stable per query shape, so a bounded LRU of
 * prepared statements keyed by text serves nearly every query from cache.
 */
const SQLITE_STATEMENT_CACHE = 512;
function cachingStatements(db: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => db.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (stmt) cache.delete(sql);
      else stmt = db.prepare(sql);
      cache.set(sql, stmt);
      if (cache.size > SQLITE_STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
      return stmt as unknown as ReturnType<SqliteDatabase['prepare']>;
    },
  };
}

/**
 * Named prepared statements on PostgreSQL (parse once per connection, then bind/execute): ~1.6×
 * the throughput of unnamed ones here (PERFORMANCE.md). Bounded per connection, because query
 * shapes with variable-length IN lists would otherwise prepare without end.
 */
const PG_NAMED_PER_CONNECTION = 256;
function namePreparedStatements(client: pg.PoolClient): void {
  const names = new Set<string>();
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const [text, values] = args;
    if (args.length === 2 && typeof text === 'string' && Array.isArray(values)) {
      const name = 'k' + createHash('sha1').update(text).digest('base64url');
      if (names.has(name) || names.size < PG_NAMED_PER_CONNECTION) {
        names.add(name);
        return query({ name, text, values });
      }
    }
    return query(...args);
  };
}

export interface StoreOptions {
  /** postgres://… to use PostgreSQL; otherwise SQLite in dataDir. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolSize?: number;
  onIdleError?: (err: Error) => void;
  /** FULL (default): a commit survives a power cut. NORMAL: ~2× the write rate; survives a crash, not a power cut. */
  sqliteSynchronous?: 'FULL' | 'NORMAL';
}

export class Store {
  private constructor(
    readonly db: Db,
    readonly engine: Engine,
  ) {}

  static open(options: StoreOptions): Store {
    const url = options.databaseUrl;
    if (url && /^postgres(ql)?:\/\//.test(url)) {
      const pool = new pg.Pool({
        connectionString: url,
        max: options.poolSize ?? 10,
        types: pgTypes,
        // Bound every wait: a stuck database must surface as an error, not a hung request.
        connectionTimeoutMillis: 10_000,
        statement_timeout: 30_000,
        idleTimeoutMillis: 30_000,
      });
      observePool(pool);
      // An idle client's error (a database restart, a terminated backend) is emitted on the pool;
      // unhandled it would crash the process. The pool drops that client and connects anew.
      pool.on('error', (err) => options.onIdleError?.(err));
      pool.on('connect', namePreparedStatements);
      return new Store(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), 'postgres');
    }
    if (url && !url.startsWith('sqlite:')) throw new Error(`unsupported database URL scheme: ${url.split(':')[0]}`);
    const file = url ? url.slice('sqlite:'.length) : path.join(options.dataDir, 'tixian.db');
    if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const sqlite = new BetterSqlite3(file);
    sqlite.pragma('journal_mode = WAL');
    // FULL by default: a 200 answered for a money movement survives a power cut, not only a crash.
    sqlite.pragma(`synchronous = ${options.sqliteSynchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    return new Store(new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: cachingStatements(sqlite) }) }), 'sqlite');
  }

  /**
   * One database transaction. On PostgreSQL a deadlock or serialization failure aborts one of
   * the transactions involved; nothing of it was committed, so it is run again (a bounded number
   * of times). Callbacks therefore do database work only, never outside side effects.
   */
  async transaction<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(fn);
      } catch (err) {
        if (attempt >= TRANSACTION_ATTEMPTS || !isTransientConflict(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }

  async migrate(): Promise<string[]> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw error instanceof Error ? error : new Error(String(error));
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

const TRANSACTION_ATTEMPTS = 4;

/** PostgreSQL deadlock_detected / serialization_failure: the transaction may simply be run again. */
function isTransientConflict(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** True when a database error is a unique-constraint violation (on either engine). */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (!e) return false;
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
