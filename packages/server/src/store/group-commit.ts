import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { observeGroupCommit } from '../observability/metrics.ts';

type Db = Kysely<Database>;

/**
 * Group commit for SQLite (issue #12).
 *
 * With `synchronous=FULL` every COMMIT is an fsync of the WAL (~0.1 ms on this VM kind, 0.5–2 ms
 * on real disks), and SQLite has one writer: one commit per request caps writes at the fsync rate.
 * So the write transactions that arrive together are run back to back inside ONE
 * `BEGIN IMMEDIATE … COMMIT`:
 *
 * - each request's state change still runs as a unit of its own, in its own SAVEPOINT: it is
 *   released when its callback succeeds and rolled back alone (`ROLLBACK TO`) when it throws, so a
 *   refused withdrawal undoes exactly its own writes and none of its neighbours';
 * - every caller is answered only after the shared COMMIT returned (durable, with FULL): a
 *   callback's success is not reported before then, and a failed COMMIT fails every request of
 *   the batch (none of them was applied);
 * - a batch is bounded (`maxBatch` requests) and nobody waits for one to fill: a batch starts one
 *   event-loop turn (setImmediate, after the poll phase) after the first request queued, taking
 *   whatever arrived meanwhile. While it runs the next batch gathers;
 * - except while the answers of earlier batches are still being signed on the event loop
 *   (`answersPending`, a bounded share per turn: security/sign-pool.ts): their clients' next
 *   requests arrive during those turns, and a batch started in each turn would carry only the few
 *   that arrived in it and pay a commit each (at FULL an fsync each: half the throughput, measured
 *   with one signature per turn). So a
 *   batch waits until those answers are out, it is full, or its first request has waited
 *   MAX_GATHER_MS, whichever comes first.
 *
 * The callbacks run one at a time on the one connection, as Kysely's SQLite driver ran them before
 * (it serialises transactions with a mutex), so the money rules inside them are unchanged.
 */
export interface GroupCommitStats {
  batches: number;
  transactions: number;
  largestBatch: number;
}

interface Pending {
  fn: (trx: Db) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** performance.now() when it was queued. */
  queuedAt: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export const GROUP_COMMIT_MAX_BATCH = 64;
/** The longest a batch waits for earlier answers to go out before it starts anyway. */
export const MAX_GATHER_MS = 20;
/** A queue is a limit too: beyond this many waiting transactions a new one is refused at once. */
export const GROUP_COMMIT_MAX_QUEUE = 10_000;

export class GroupCommitter {
  readonly stats: GroupCommitStats = { batches: 0, transactions: 0, largestBatch: 0 };
  #queue: Pending[] = [];
  #scheduled = false;
  #running = false;
  /** How many answers are waiting to be signed on the event loop (none unless set). */
  #answersPending: () => number = () => 0;
  readonly #begin: BetterSqlite3.Statement;
  readonly #commit: BetterSqlite3.Statement;
  readonly #rollback: BetterSqlite3.Statement;
  readonly #savepoint: BetterSqlite3.Statement;
  readonly #release: BetterSqlite3.Statement;
  readonly #rollbackTo: BetterSqlite3.Statement;

  constructor(
    private readonly db: Db,
    private readonly sqlite: BetterSqlite3.Database,
    private readonly maxBatch = GROUP_COMMIT_MAX_BATCH,
  ) {
    // Prepared once: these run several times per request on the hot path.
    this.#begin = sqlite.prepare('BEGIN IMMEDIATE');
    this.#commit = sqlite.prepare('COMMIT');
    this.#rollback = sqlite.prepare('ROLLBACK');
    this.#savepoint = sqlite.prepare('SAVEPOINT request');
    this.#release = sqlite.prepare('RELEASE request');
    this.#rollbackTo = sqlite.prepare('ROLLBACK TO request');
  }

  /** Runs `fn` as one state change; resolves after the batch it ran in has committed. */
  run<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    if (this.#queue.length >= GROUP_COMMIT_MAX_QUEUE) return Promise.reject(new Error('too many transactions waiting for the database'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, queuedAt: performance.now() });
      this.#schedule();
    });
  }

  /** The count of answers still to be signed on the event loop (the runtime passes the signing queue's). */
  set answersPending(count: () => number) {
    this.#answersPending = count;
  }

  #schedule(): void {
    if (this.#scheduled || this.#running || this.#queue.length === 0) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: the requests whose bytes arrived in this poll phase reach
    // their transaction first, so they share this batch's fsync.
    setImmediate(this.#startWhenGathered);
  }

  readonly #startWhenGathered = (): void => {
    const gathering =
      this.#queue.length < this.maxBatch && this.#answersPending() > 0 && performance.now() - this.#queue[0]!.queuedAt < MAX_GATHER_MS;
    // Checked again next turn: each of those turns signs some answers (and reads new requests).
    if (gathering) return void setImmediate(this.#startWhenGathered);
    this.#scheduled = false;
    void this.#runBatch();
  };

  async #runBatch(): Promise<void> {
    this.#running = true;
    const batch = this.#queue.splice(0, this.maxBatch);
    try {
      // db.connection() holds Kysely's one SQLite connection (its mutex) for the whole batch, so
      // no other query can slip in between our BEGIN and COMMIT.
      await this.db.connection().execute((conn) => this.#runOnConnection(conn, batch));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.#running = false;
      this.#schedule();
    }
  }

  async #runOnConnection(conn: Db, batch: Pending[]): Promise<void> {
    this.#begin.run();
    let outcomes: Outcome[];
    try {
      outcomes = await this.#runEach(conn, batch);
      this.#commit.run();
    } catch (err) {
      // Nothing of the batch is applied; every caller learns it (the caller of #runBatch rejects all).
      if (this.sqlite.inTransaction) this.#rollback.run();
      throw err;
    }
    this.stats.batches++;
    this.stats.transactions += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    observeGroupCommit(batch.length);
    // Durable now: only from here on does any caller learn its outcome.
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.error);
    });
  }

  /** Each request's callback in its own savepoint; a refused one is rolled back alone. */
  async #runEach(conn: Db, batch: Pending[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    for (const p of batch) {
      this.#savepoint.run();
      try {
        const value = await p.fn(conn);
        this.#release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        if (!this.sqlite.inTransaction) {
          // SQLite rolled the whole transaction back itself (SQLITE_FULL, SQLITE_IOERR…): the
          // work of every request before this one is gone too, and none of the batch is applied.
          throw error;
        }
        this.#rollbackTo.run();
        this.#release.run();
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
  }
}
