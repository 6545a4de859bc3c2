import { createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, realpathSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresDialect,
  PostgresDriver,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type PostgresDialectConfig,
  type QueryResult,
  type SqliteDatabase,
  type SqliteDialectConfig,
} from 'kysely';
import type { Database } from './schema.ts';
import { ConfigError, maskDatabaseUrl, type Config } from '../config.ts';
import { migrationProvider } from './migrations.ts';
import { buildOnlineIndexes } from './pg/online-indexes.ts';
import { observePool } from '../observability/metrics.ts';
import { DATABASE_BUSY, GroupCommitter, type AnswerAt } from './group-commit.ts';
import { WalCheckpointer } from './checkpointer.ts';
import { walSyncThread, type WalSyncFactory } from './wal-sync.ts';

export type Engine = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;

/**
 * SQLite takes its write lock at BEGIN IMMEDIATE, so a transaction that will write never fails
 * half-way with SQLITE_BUSY when another process (the CLI, a second server) holds the lock; it
 * waits up to busy_timeout instead.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  #gated: DatabaseConnection | null = null;
  constructor(
    config: SqliteDialectConfig,
    private readonly inTransaction: () => boolean,
    private readonly pendingDurability: () => Promise<void> | null,
  ) {
    super(config);
  }

  /**
   * A statement run outside a transaction returns once every commit it could have seen is durable
   * (group-commit.ts syncs the WAL off the event loop, so a batch is visible a little before).
   * The wait holds the one connection, as SQLite's own fsync in COMMIT held the whole thread.
   */
  override async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await super.acquireConnection();
    return (this.#gated ??= {
      executeQuery: async <R>(query: CompiledQuery) => {
        const result = await connection.executeQuery<R>(query);
        await this.#durable();
        return result;
      },
      streamQuery: <R>(query: CompiledQuery, chunkSize?: number) => this.#stream<R>(connection, query, chunkSize),
    });
  }

  /**
   * A stream reads one snapshot, taken at its first step, and holds the one connection until it
   * ends: once what that snapshot could see is durable (checked after the first step, so another
   * process's commit just before it counts), every row it yields is.
   */
  async *#stream<R>(connection: DatabaseConnection, query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    const chunks = connection.streamQuery<R>(query, chunkSize)[Symbol.asyncIterator]();
    try {
      const first = await chunks.next();
      await this.#durable();
      for (let chunk = first; !chunk.done; chunk = await chunks.next()) yield chunk.value;
    } finally {
      // A reader that stops early (or a failed sync) ends the statement, as yield* would have.
      await chunks.return?.();
    }
  }

  /** Outside a transaction: once every commit so far is durable (inside one, its batch waits). */
  async #durable(): Promise<void> {
    const pending = this.inTransaction() ? null : this.pendingDurability();
    if (pending) await pending;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /**
   * Some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM…) make SQLite roll the transaction back
   * itself; a ROLLBACK after that fails with "no transaction is active", and that error would be
   * what Kysely throws, hiding the real cause (a full disk). Only roll back what is still open.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.inTransaction()) await super.rollbackTransaction(connection);
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(
    config: SqliteDialectConfig,
    private readonly inTransaction: () => boolean,
    private readonly pendingDurability: () => Promise<void> | null,
  ) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config, this.inTransaction, this.pendingDurability);
  }
}

/**
 * A PostgreSQL transaction whose connection died (its backend terminated, 57P01; the network gone)
 * cannot be rolled back: the server has already discarded it. Kysely would then throw the failed
 * ROLLBACK's "Connection terminated" instead of the cause. Kysely's driver marks a connection whose
 * rollback failed for discard (the pool destroys it on release, never hands it out again), so
 * swallowing the rollback's error loses nothing, and Kysely rethrows the cause.
 */
class CausePreservingPostgresDriver extends PostgresDriver {
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await super.rollbackTransaction(connection as Parameters<PostgresDriver['rollbackTransaction']>[0]);
    } catch {
      // Discarded by super; the transaction's own error is the one worth reporting.
    }
  }
}

class CausePreservingPostgresDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig;
  constructor(config: PostgresDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new CausePreservingPostgresDriver(this.#config);
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
/**
 * Statement names by SQL text, shared by every connection: a SHA-1 per query was ~1% of a
 * create's CPU. Bounded like the per-connection sets (cleared when full: names are derived, so
 * nothing is lost but the hashing).
 */
const PG_STATEMENT_NAMES = 1024;
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    if (statementNames.size >= PG_STATEMENT_NAMES) statementNames.clear();
    name = 'k' + createHash('sha1').update(text).digest('base64url');
    statementNames.set(text, name);
  }
  return name;
}
/**
 * `client.query({ name, text, values })` copies the config object through its property
 * descriptors (pg's cloneQueryConfig, ~3 µs a query here); a Query made from the text and named
 * afterwards is the same query without the copy. pg submits a Query object as it is.
 */
function namedQuery(query: (...args: unknown[]) => unknown, name: string, text: string, values: unknown[]): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const q = new pg.Query(text, values, (err, res) => (err ? reject(err) : resolve(res as unknown as pg.QueryResult)));
    (q as unknown as { name: string }).name = name;
    query(q);
  });
}

function namePreparedStatements(client: pg.PoolClient): void {
  const names = new Set<string>();
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const [text, values] = args;
    if (args.length === 2 && typeof text === 'string' && Array.isArray(values)) {
      const name = statementName(text);
      if (names.has(name) || names.size < PG_NAMED_PER_CONNECTION) {
        names.add(name);
        return namedQuery(query, name, text, values);
      }
    }
    return query(...args);
  };
}

const SQLITE_FILE_SUFFIXES = ['', '-wal', '-shm', '-journal'];

/**
 * The database holds every balance and the sealed secrets, so it is the owner's alone, like
 * master.key: the data directory 0700, the files 0600 whatever the umask. The file is created
 * 0600 before SQLite opens it, because SQLite gives -wal and -shm the database file's mode.
 * A `sqlite:` URL may point into a shared directory; only a directory it had to create is touched.
 */
function prepareSqliteFile(file: string, options: { ownDirectory: boolean }): void {
  const dir = path.dirname(path.resolve(file));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (options.ownDirectory) {
    try {
      chmodSync(dir, 0o700);
    } catch (err) {
      // A directory someone else owns (made for us by an operator) keeps the mode they chose.
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    }
  }
  closeSync(openSync(file, 'a', 0o600));
  restrictSqliteFiles(file);
}

/**
 * Keeps SQLite's `sqlite_stat4` samples out of the serving connection; returns how many rows of
 * them it removed (written by an operator's `ANALYZE` or `PRAGMA optimize`). `sqlite_stat1` is kept.
 *
 * better-sqlite3 builds SQLite with SQLITE_ENABLE_STAT4. With samples loaded, the planner reads
 * the bound values of a statement that joins tables or ranges over a sampled index, and marks the
 * statement to be planned again whenever those parameters are bound: every user retrieve (a join
 * with the user's settle accounts) is prepared anew. Measured, 2026-11-27: that statement alone 12
 * → 40 µs a run; `user_retrieve_plain` 9,753 and 8,154 → 6,183 and 6,084 answers/s with the
 * database analyzed after the bench's setup (bench README, "2026-11-27, evening"). tixian's
 * statements are planned from their indexes (growth_plans and point_lookup_plans tests, without and
 * with `ANALYZE`), so the samples buy nothing here.
 *
 * A connection takes the samples in when it loads the schema, and nothing short of loading it
 * again lets go of them (an `ANALYZE sqlite_schema` on it does not: measured, still 33–37 µs a
 * run). So, on a connection of its own before the serving one opens:
 * - samples left by an earlier `ANALYZE` are deleted;
 * - a database without the statistics tables gets them, empty (`ANALYZE sqlite_schema` creates
 *   them and writes no row). Else the first `ANALYZE` would create them while a server runs: a
 *   change of the schema, which every connection then loads again, samples and all. With the
 *   tables there, an `ANALYZE` changes rows only, and reaches this server at its next start, here.
 */
export function prepareSqliteStatistics(file: string): number {
  const probe = new BetterSqlite3(file, { fileMustExist: true });
  try {
    probe.pragma('busy_timeout = 5000');
    if (!probe.prepare("select 1 from sqlite_schema where type = 'table' and name = 'sqlite_stat4'").get()) {
      probe.exec('ANALYZE sqlite_schema');
      return 0;
    }
    return probe.prepare('delete from sqlite_stat4').run().changes;
  } finally {
    probe.close();
  }
}

function restrictSqliteFiles(file: string): void {
  for (const suffix of SQLITE_FILE_SUFFIXES) {
    try {
      chmodSync(file + suffix, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

export interface StoreOptions {
  /** postgres://… to use PostgreSQL; otherwise SQLite in dataDir. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolSize?: number;
  onIdleError?: (err: Error) => void;
  /** A connection in use failed (its backend was terminated); the request using it fails. */
  onClientError?: (err: Error) => void;
  /** FULL (default): a commit survives a power cut. NORMAL: ~2× the write rate; survives a crash, not a power cut. */
  sqliteSynchronous?: 'FULL' | 'NORMAL';
  /** SQLite group commit: the most write transactions one COMMIT carries (1: a commit each). */
  sqliteGroupCommitMax?: number;
  /** The group commit's quiet wait (group-commit.ts QUIET_MS, MAX_QUIET_WAIT_MS): tests widen it. */
  sqliteGroupCommitQuiet?: { ms: number; maxMs: number };
  /** SQLite: the checkpoint thread failed and the connection checkpoints for itself again (checkpointer.ts). */
  onCheckpointError?: (err: Error) => void;
  /** SQLite: how often the checkpoint thread runs (CHECKPOINT_INTERVAL_MS); tests shorten it. */
  sqliteCheckpointIntervalMs?: number;
  /** SQLite: `sqlite_stat4` held this many samples, removed before the database opened (prepareSqliteStatistics). */
  onStat4Dropped?: (rows: number) => void;
  /** SQLite at FULL: what syncs the WAL for the group commit (tests hold or fail it); a thread of its own by default. */
  sqliteWalSync?: WalSyncFactory;
  /** PostgreSQL: a session idle inside a transaction longer than this is ended (IDLE_IN_TRANSACTION_MS by default). */
  idleInTransactionMs?: number;
}

/**
 * PostgreSQL ends a session left idle inside a transaction this long, and with it the row locks
 * it held. No transaction of tixian waits between its statements (they run back to back, the
 * payout worker calls channels outside any transaction), so only a process that froze (SIGSTOP, a
 * debugger, a CLI suspended with Ctrl-Z) mid-transaction is ended: without this its locks held
 * every writer of those rows at statement_timeout's 30 s, again and again, until it was killed.
 */
export const IDLE_IN_TRANSACTION_MS = 60_000;

/**
 * How the caller of a write takes its outcome (`Store.transaction`, `Store.oneStatement`): by
 * default once it is durable; with `answerAt: 'committed'` at its batch's COMMIT on SQLite, and the
 * caller holds what it learned until `committedDurable()` (group-commit.ts). The API's write routes
 * pass it (their answers all wait on that, http/app.ts), and so does the payout worker for a
 * channel's result; the CLI, the console and every other write keep the default.
 */
export interface WriteOptions {
  answerAt?: AnswerAt;
}

export class Store {
  private constructor(
    readonly db: Db,
    readonly engine: Engine,
    /** SQLite only: write transactions that arrive together share one COMMIT (group-commit.ts). */
    readonly groupCommit: GroupCommitter | null = null,
    /** SQLite on a file: WAL checkpoints on a thread of their own (checkpointer.ts). */
    readonly checkpointer: WalCheckpointer | null = null,
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
        idle_in_transaction_session_timeout: options.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS,
        idleTimeoutMillis: 30_000,
      });
      observePool(pool);
      // An idle client's error (a database restart, a terminated backend) is emitted on the pool;
      // unhandled it would crash the process. The pool drops that client and connects anew.
      pool.on('error', (err) => options.onIdleError?.(err));
      pool.on('connect', (client) => {
        // A checked-out client's error (its backend terminated mid-transaction, 57P01) is emitted
        // on the client alone, where the pool does not listen: unhandled, Node exits and every
        // request in flight is lost. The query in progress fails on its own (the request answers
        // 500) and the pool discards the broken client on release, so logging is all that is left.
        client.on('error', (err) => options.onClientError?.(err));
        namePreparedStatements(client);
      });
      return new Store(new Kysely<Database>({ dialect: new CausePreservingPostgresDialect({ pool }) }), 'postgres');
    }
    if (url && !url.startsWith('sqlite:')) throw new Error(`unsupported database URL scheme: ${url.split(':')[0]}`);
    const file = url ? url.slice('sqlite:'.length) : path.join(options.dataDir, 'tixian.db');
    if (file !== ':memory:') {
      prepareSqliteFile(file, { ownDirectory: !url });
      const dropped = prepareSqliteStatistics(file);
      if (dropped > 0) options.onStat4Dropped?.(dropped);
    }
    const sqlite = new BetterSqlite3(file);
    sqlite.pragma('journal_mode = WAL');
    if (file !== ':memory:') restrictSqliteFiles(file);
    // FULL by default: a 200 answered for a money movement survives a power cut, not only a crash.
    const synchronous = options.sqliteSynchronous === 'NORMAL' ? 'NORMAL' : 'FULL';
    sqlite.pragma(`synchronous = ${synchronous}`);
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    // Group commit runs each request in a SAVEPOINT (group-commit.ts), and inside a savepoint SQLite
    // copies every page a statement first touches into the sub-journal, so that ROLLBACK TO can put
    // it back. With temp files on disk that is two pwrite() calls per page, ~30 per withdrawal
    // create: a third of its SQLite time went to system calls (issue #12). In memory the
    // sub-journal is a memcpy, and it holds at most the pages of one batch's savepoint. Temporary
    // b-trees (sorts and groupings without an index) are held in memory too: the server's queries
    // are bounded pages on indexes (growth_plans tests), so those stay small.
    sqlite.pragma('temp_store = MEMORY');
    let groupCommit: GroupCommitter | null = null;
    const dialect = new ImmediateSqliteDialect(
      { database: cachingStatements(sqlite) },
      () => sqlite.inTransaction,
      () => groupCommit?.pendingDurability() ?? null,
    );
    const db = new Kysely<Database>({ dialect });
    // SQLite names the WAL after the database's real path (symbolic links resolved).
    const realFile = file === ':memory:' ? null : realpathSync(file);
    // With FULL, the group commit syncs the WAL itself, off the event loop (group-commit.ts).
    const walFile = realFile !== null && synchronous === 'FULL' ? realFile + '-wal' : null;
    const walSync = walFile !== null ? (options.sqliteWalSync ?? walSyncThread)(walFile) : null;
    groupCommit = new GroupCommitter(db, sqlite, options.sqliteGroupCommitMax, walSync, options.sqliteGroupCommitQuiet);
    const checkpointer = realFile !== null ? new WalCheckpointer(sqlite, realFile, synchronous, options.onCheckpointError, options.sqliteCheckpointIntervalMs) : null;
    if (checkpointer) {
      // Every write on this connection goes through the group commit, which waits for the
      // checkpoint thread's finishing copy: the event loop copies nothing itself.
      checkpointer.holdWrites = true;
      groupCommit.beginHeld = () => checkpointer.holding;
    }
    return new Store(db, 'sqlite', groupCommit, checkpointer);
  }

  /**
   * One database transaction. On PostgreSQL a deadlock or serialization failure aborts one of
   * the transactions involved; nothing of it was committed, so it is run again (a bounded number
   * of times). Callbacks therefore do database work only, never outside side effects.
   *
   * On SQLite each call is still its own unit of work, in its own SAVEPOINT of a transaction it
   * may share with the calls that arrived with it (group commit), and it resolves only after
   * that transaction's COMMIT is durable; a callback that throws is rolled back alone. With
   * `answerAt: 'committed'` it resolves at the COMMIT, and the caller holds what it learned until
   * `committedDurable()` (group-commit.ts); the API's answers do (http/app.ts).
   */
  async transaction<T>(fn: (trx: Db) => Promise<T>, options: WriteOptions = {}): Promise<T> {
    if (this.groupCommit) return this.groupCommit.run(fn, options.answerAt);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(fn);
      } catch (err) {
        if (attempt >= TRANSACTION_ATTEMPTS || !isTransientConflict(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }

  /**
   * A write of one statement: on SQLite it joins the group commit like any transaction (it shares a
   * batch's commit and WAL sync, off the event loop, instead of committing and syncing on it by
   * itself); on PostgreSQL it runs as it is, in autocommit, without the round trips of BEGIN and
   * COMMIT. Resolves as `transaction` does.
   */
  oneStatement<T>(fn: (db: Db) => Promise<T>, options: WriteOptions = {}): Promise<T> {
    return this.groupCommit ? this.groupCommit.run(fn, options.answerAt) : fn(this.db);
  }

  /**
   * Applies pending migrations (on PostgreSQL in one transaction), then, on PostgreSQL, builds
   * the indexes that must not stop writes while they build (pg/online-indexes.ts). Returns what
   * it did.
   */
  async migrate(): Promise<string[]> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    const applied: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const { error, results } = await migrator.migrateToLatest();
      applied.push(...(results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName));
      if (!error) break;
      // SQLite has no migration lock (PostgreSQL's is an advisory lock): processes started together
      // on one file (an API and a worker process) may both run what is pending. Each migration
      // looks under the write lock whether it is done (migrations.ts), so only Kysely's record of
      // it can collide, with the other's record of the same migration: run again, it finds that.
      if (this.engine === 'sqlite' && attempt < MIGRATE_ATTEMPTS && isUniqueViolation(error)) {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * attempt));
        continue;
      }
      throw error instanceof Error ? error : new Error(String(error));
    }
    if (this.engine !== 'postgres') return applied;
    const built = await buildOnlineIndexes(this.db);
    return [...applied, ...built.map((name) => `index ${name} (concurrently)`)];
  }

  /**
   * Resolves once every commit made so far is durable; null when it already is (always on
   * PostgreSQL, whose COMMIT returns once durable). See `transaction`'s `answerAt`.
   */
  committedDurable(): Promise<void> | null {
    return this.groupCommit?.committedDurable() ?? null;
  }

  async close(): Promise<void> {
    await this.checkpointer?.close();
    await this.groupCommit?.close();
    await this.db.destroy();
  }
}

export const TRANSACTION_ATTEMPTS = 4;
/** SQLite: runs of the migrations when another process recorded one of them first (Store.migrate). */
const MIGRATE_ATTEMPTS = 10;

/** PostgreSQL deadlock_detected / serialization_failure: the transaction may simply be run again. */
export function isTransientConflict(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '40P01' || code === '40001';
}

/**
 * True when the database could not be had in time, a load or a lock rather than a fault, and
 * nothing was applied: SQLite's write lock held by another connection past busy_timeout (another
 * process: a migration, a CLI command), the group commit's queue full, or no PostgreSQL pool
 * connection within connectionTimeoutMillis. The API answers these 503 (plugins/errors.ts).
 */
export function isDatabaseBusy(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && (e.code.startsWith('SQLITE_BUSY') || e.code === DATABASE_BUSY)) return true;
  // pg-pool's own error (no code) when every connection stays checked out past the timeout.
  return e.code === undefined && e.message === 'timeout exceeded when trying to connect';
}

/** True when a database error is a unique-constraint violation (on either engine). */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (!e) return false;
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Opens the configured store; a data directory or SQLite file that cannot be used is a ConfigError. */
export function openStore(config: Config, options: Pick<StoreOptions, 'onIdleError' | 'onClientError' | 'onCheckpointError' | 'onStat4Dropped' | 'sqliteWalSync'> = {}): Store {
  try {
    return Store.open({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.poolSize,
      sqliteSynchronous: config.sqliteSynchronous,
      sqliteGroupCommitMax: config.sqliteGroupCommitMax,
      ...options,
    });
  } catch (err) {
    throw describeStorageError(err, config) ?? err;
  }
}

const FS_ERRORS = new Set(['EACCES', 'EPERM', 'EEXIST', 'ENOTDIR', 'EISDIR', 'EROFS', 'ENOSPC', 'ELOOP', 'ENAMETOOLONG']);
const SQLITE_OPEN_ERRORS = new Set(['SQLITE_CANTOPEN', 'SQLITE_NOTADB', 'SQLITE_READONLY', 'SQLITE_PERM', 'SQLITE_AUTH', 'SQLITE_CORRUPT']);

/** The ConfigError a failure to open SQLite storage stands for, or null for anything else. */
function describeStorageError(err: unknown, config: Config): ConfigError | null {
  const e = err as NodeJS.ErrnoException | null;
  if (!e?.code || !(FS_ERRORS.has(e.code) || SQLITE_OPEN_ERRORS.has(e.code))) return null;
  const where = config.databaseUrl?.startsWith('sqlite:')
    ? `the SQLite file of --database-url / TIXIAN_DATABASE_URL (${config.databaseUrl})`
    : `the data directory ${path.resolve(config.dataDir)} (--data-dir / TIXIAN_DATA_DIR)`;
  if (SQLITE_OPEN_ERRORS.has(e.code)) {
    return new ConfigError(`cannot open the SQLite database in ${where}: ${e.code}: ${e.message.split('\n')[0]}; point it at tixian's own data (or restore the database from a backup)`);
  }
  const why = e.code === 'EEXIST' || e.code === 'ENOTDIR' ? 'a file is in the way of a directory' : `${e.code}: ${e.message.split('\n')[0]}`;
  return new ConfigError(`cannot use ${where}: ${why}; point it at a directory this user can write (it is created if missing)`);
}

/** Error codes and messages of a PostgreSQL server that cannot be reached or will not let us in. */
const PG_CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', '28P01', '28000', '3D000', '57P03']);

/**
 * Runs the first database work of a start-up; a PostgreSQL server that cannot be reached (or
 * refuses us) becomes one ConfigError naming the setting, with the password masked.
 */
export async function describeDatabaseErrors<T>(config: Config, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = err as { code?: string; message?: string; errors?: { code?: string }[] } | null;
    const code = e?.code ?? e?.errors?.[0]?.code;
    const unreachable = (code && PG_CONNECT_CODES.has(code)) || /timeout exceeded when trying to connect|Connection terminated/i.test(e?.message ?? '');
    if (!config.databaseUrl || config.databaseUrl.startsWith('sqlite:') || !unreachable) throw err;
    const reason = (e?.message || code || 'unknown error').split('\n')[0];
    throw new ConfigError(
      `cannot reach PostgreSQL at ${maskDatabaseUrl(config.databaseUrl)} (--database-url / TIXIAN_DATABASE_URL): ${reason}; check that the server is running and the URL, user, password and database are right`,
    );
  }
}
