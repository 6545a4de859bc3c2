import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { WalSync } from './wal-sync.ts';
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
 * - every caller is answered only after the shared COMMIT is durable (with FULL, once the WAL
 *   sync below has returned): a callback's success is not reported before then, and a failed
 *   COMMIT fails every request of the batch (none of them was applied);
 * - a batch is bounded (`maxBatch` requests) and nobody waits for one to fill: a batch starts one
 *   event-loop turn (setImmediate, after the poll phase) after the first request queued, taking
 *   whatever arrived meanwhile. While it runs the next batch gathers;
 * - except while the answers of earlier batches are still being signed on the event loop
 *   (`answersPending`, a bounded share per turn: security/sign-pool.ts): their clients' next
 *   requests arrive during those turns, and a batch started in each turn would carry only the few
 *   that arrived in it and pay a commit each (at FULL an fsync each: half the throughput, measured
 *   with one signature per turn). So a
 *   batch waits until those answers are out, it is full, or its first request has waited
 *   MAX_GATHER_MS, whichever comes first;
 * - and, once those answers are out, until no request has arrived for QUIET_MS (at most
 *   MAX_QUIET_WAIT_MS): the clients answered last are sending their next request just then. A
 *   batch that started without them left them to a batch of their own, committed and answered
 *   after the big one: batches alternated ~50/~39 and those requests waited a whole cycle more.
 *   With the wait every client of a closed loop is in each batch, and each answer takes one
 *   cycle (50 connections, signed creates on one core: p99 at the server 23 ms instead of
 *   31 ms, ~0.3 ms of idle per ~17 ms cycle);
 * - and while the previous batch's fsync is in flight (below): a batch committed meanwhile could
 *   not be answered any sooner, and gathering kept batches at ~40 creates, where starting at once
 *   halved them (17), doubled the commits and cost more than the fsync's wait had.
 *
 * The callbacks run one at a time on the one connection, as Kysely's SQLite driver ran them before
 * (it serialises transactions with a mutex), so the money rules inside them are unchanged.
 *
 * The shared commit's fsync runs off the event loop (`walSync`, with `synchronous=FULL`). SQLite
 * fsyncs the WAL inside COMMIT, and the thread waits in the kernel meanwhile: 0.2–2 ms per batch
 * in which no request is served (the serving thread sampled 12% of its time in that fsync once
 * checkpoints had their own thread). So a batch commits with `synchronous=NORMAL` (the WAL
 * written, not yet synced; the connection is back at FULL right after), and the WAL is then
 * fdatasync'ed on a thread of its own (wal-sync.ts) while the next batch runs. A batch's callers
 * learn their outcomes only once a sync that began after its COMMIT has returned: the same
 * durability as FULL, whose sync is of the same file. One sync is in flight at a time; one that returns finds
 * every batch committed since it began and starts the next for them all.
 *
 * A caller may instead take its outcome at COMMIT (`run(fn, 'committed')`), while the sync is in
 * flight, if nothing of it leaves the process before the batch is durable: the API answers its
 * writes that way (http/context.ts ANSWER_AT_COMMIT), and builds and signs each answer during the sync, while the event
 * loop would otherwise wait idle (~0.66 ms of each ~19 ms cycle of 50 signed creates); every
 * answer the API sends first waits for `committedDurable()` (http/app.ts), and one whose batch
 * then fails to sync goes out as the error its caller would have had. The payout worker takes a
 * channel's result that way too: nothing of it leaves the process before it is durable (its
 * webhook is sent after a claim of the dispatcher, and every claim, the worker's and the
 * dispatcher's, resolves only once durable: no channel or endpoint hears of an undurable commit).
 *
 * A read outside a transaction could see a batch that is committed but not yet durable, and
 * answer it before a power cut undoes it. So such a read returns its rows only after the syncs
 * in flight (`pendingDurability`, used by the SQLite driver in db.ts) have returned; reads and
 * writes inside a batch need not wait, their batch does.
 *
 * Another process on the same file (`--workers N`, separate `--role` processes, the CLI) commits
 * the same way, and its commits are visible here before its own sync has returned. A read that
 * could have seen one (SQLite's `data_version` moved since the last look: it counts commits of
 * other connections only) waits for a sync of ours that begins after it ran: fdatasync is per
 * file, so ours makes the other's commit durable too. In one process the version never moves and
 * the look is all a read pays.
 *
 * A sync that fails leaves it unknown what the disk holds (the kernel may have dropped the pages
 * it could not write, so a later sync proves nothing). The batches waiting on it fail, and so
 * does every transaction after, until the server is restarted and SQLite recovers from the WAL.
 */
export interface GroupCommitStats {
  batches: number;
  transactions: number;
  largestBatch: number;
}

/** When a caller learns its transaction's outcome: once durable (the default), or at COMMIT (above). */
export type AnswerAt = 'durable' | 'committed';

interface Pending {
  fn: (trx: Db) => Promise<unknown>;
  answerAt: AnswerAt;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** performance.now() when it was queued. */
  queuedAt: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export const GROUP_COMMIT_MAX_BATCH = 64;
/** The longest a batch waits for earlier answers to go out before it starts anyway. */
export const MAX_GATHER_MS = 20;
/**
 * Once every earlier answer is out, a batch still gathers until no request has arrived for this
 * long, so that the clients answered last (their next request is on its way) join it.
 */
export const QUIET_MS = 0.3;
/** ... but for no longer than this after the answers went out. */
export const MAX_QUIET_WAIT_MS = 2;
/** A queue is a limit too: beyond this many waiting transactions a new one is refused at once. */
export const GROUP_COMMIT_MAX_QUEUE = 10_000;
/** The code of that refusal (db.ts isDatabaseBusy: the API answers it 503). */
export const DATABASE_BUSY = 'TIXIAN_DATABASE_BUSY';

/** A write refused because too many wait for the database already (a bounded queue is full). */
export function databaseBusy(message: string): Error {
  return Object.assign(new Error(message), { code: DATABASE_BUSY });
}

export class GroupCommitter {
  readonly stats: GroupCommitStats = { batches: 0, transactions: 0, largestBatch: 0 };
  #queue: Pending[] = [];
  #scheduled = false;
  #running = false;
  /** How many answers are waiting to be signed on the event loop (none unless set). */
  #answersPending: () => number = () => 0;
  /** While this resolves no batch begins: the checkpoint thread's finishing copy (checkpointer.ts). */
  #beginHeld: () => Promise<void> | null = () => null;
  readonly #begin: BetterSqlite3.Statement;
  readonly #commit: BetterSqlite3.Statement;
  readonly #rollback: BetterSqlite3.Statement;
  readonly #savepoint: BetterSqlite3.Statement;
  readonly #release: BetterSqlite3.Statement;
  readonly #rollbackTo: BetterSqlite3.Statement;
  readonly #unsynced: BetterSqlite3.Statement;
  readonly #synced: BetterSqlite3.Statement;
  readonly #dataVersion: BetterSqlite3.Statement;
  /** `data_version` at the last look: it moves when another connection (another process) commits. */
  #seenVersion: unknown;
  /**
   * Points in the WAL's history to be made durable (each batch's COMMIT, each read that saw
   * another process's commit), and of those the ones known durable (a count of both).
   */
  #committed = 0;
  #durable = 0;
  #syncing: Promise<void> | null = null;
  /** A batch is gathering until the sync in flight returns. */
  #waitingForSync = false;
  /** When this gather stopped waiting for earlier answers (-1: not yet): its quiet wait's start. */
  #answeredAt = -1;
  #waiters: { seq: number; resolve: () => void; reject: (err: unknown) => void }[] = [];
  /** Set when a sync failed: nothing commits here any more. */
  #failed: Error | null = null;

  constructor(
    private readonly db: Db,
    private readonly sqlite: BetterSqlite3.Database,
    private readonly maxBatch = GROUP_COMMIT_MAX_BATCH,
    /** Syncs the WAL off the event loop; null: COMMIT syncs (or not) as the connection is set. */
    private readonly walSync: WalSync | null = null,
    /** The quiet wait (QUIET_MS, at most MAX_QUIET_WAIT_MS); tests widen it to be independent of the machine's pace. */
    private readonly quiet = { ms: QUIET_MS, maxMs: MAX_QUIET_WAIT_MS },
  ) {
    // Prepared once: these run several times per request on the hot path.
    this.#begin = sqlite.prepare('BEGIN IMMEDIATE');
    this.#commit = sqlite.prepare('COMMIT');
    this.#rollback = sqlite.prepare('ROLLBACK');
    this.#savepoint = sqlite.prepare('SAVEPOINT request');
    this.#release = sqlite.prepare('RELEASE request');
    this.#rollbackTo = sqlite.prepare('ROLLBACK TO request');
    this.#unsynced = sqlite.prepare('PRAGMA synchronous = NORMAL');
    this.#synced = sqlite.prepare('PRAGMA synchronous = FULL');
    this.#dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
    this.#seenVersion = this.#dataVersion.get();
  }

  /**
   * Runs `fn` as one state change; resolves once the batch it ran in has committed and is durable,
   * or with 'committed' once it has committed (its caller then waits for committedDurable before
   * anything of it leaves the process).
   */
  run<T>(fn: (trx: Db) => Promise<T>, answerAt: AnswerAt = 'durable'): Promise<T> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#queue.length >= GROUP_COMMIT_MAX_QUEUE) return Promise.reject(databaseBusy('too many transactions waiting for the database'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, answerAt, resolve: resolve as (v: unknown) => void, reject, queuedAt: performance.now() });
      this.#schedule();
      if (this.#queue.length >= this.maxBatch) this.#wake();
    });
  }

  /**
   * Resolves once every batch committed so far is durable; null when it already is (no wait). A
   * read outside a transaction waits on it before it returns what it read.
   */
  pendingDurability(): Promise<void> | null {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.walSync && this.#otherProcessCommitted()) {
      // What the read saw may not be durable yet: a sync that begins from here covers it (and
      // every batch of ours before it), as one that follows a COMMIT covers its batch.
      const mark = ++this.#committed;
      const durable = this.#whenDurable(mark);
      this.#sync();
      return durable;
    }
    return this.committedDurable();
  }

  /**
   * Resolves once every batch committed so far is durable; null when it already is. What a
   * caller learned at COMMIT waits on this before it leaves the process (the API's answers).
   */
  committedDurable(): Promise<void> | null {
    if (this.#failed) return Promise.reject(this.#failed);
    return this.#durable === this.#committed ? null : this.#whenDurable(this.#committed);
  }

  /** True once per change of `data_version`: another connection committed since the last look. */
  #otherProcessCommitted(): boolean {
    const version = this.#dataVersion.get();
    if (version === this.#seenVersion) return false;
    this.#seenVersion = version;
    return true;
  }

  /**
   * Waits for the syncs owed, then lets go of the WAL. A sync that ends starts the next for the
   * batches committed meanwhile, so this waits until none is in flight.
   */
  async close(): Promise<void> {
    while (this.#syncing) await this.#syncing; // never rejects: a failed sync resolves it (#fail)
    await this.walSync?.close();
  }

  /** The count of answers still to be signed on the event loop (the runtime passes the signing queue's). */
  set answersPending(count: () => number) {
    this.#answersPending = count;
  }

  /** What holds batches back (the store passes its checkpointer's `holding`). */
  set beginHeld(held: () => Promise<void> | null) {
    this.#beginHeld = held;
  }

  #schedule(): void {
    if (this.#scheduled || this.#running || this.#queue.length === 0) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: the requests whose bytes arrived in this poll phase reach
    // their transaction first, so they share this batch's fsync.
    setImmediate(this.#startWhenGathered);
  }

  readonly #startWhenGathered = (): void => {
    // Still scheduled: it runs again once the hold ends (the hold never rejects, and is bounded).
    const held = this.#beginHeld();
    if (held) return void held.then(() => setImmediate(this.#startWhenGathered));
    if (this.#queue.length < this.maxBatch) {
      // A batch committed now could not be answered before the sync in flight returns (its own
      // sync starts after that one), so it gathers until then, while the event loop serves; the
      // sync's end starts it (#sync), and a full queue at once (run).
      if (this.#syncing) return void (this.#waitingForSync = true);
      // Checked again next turn: each of those turns signs some answers (and reads new requests).
      const now = performance.now();
      if (this.#answersPending() > 0 && now - this.#queue[0]!.queuedAt < MAX_GATHER_MS) return void setImmediate(this.#startWhenGathered);
      if (this.#answeredAt < 0) this.#answeredAt = now;
      const quietSince = Math.max(this.#queue[this.#queue.length - 1]!.queuedAt, this.#answeredAt);
      if (now - quietSince < this.quiet.ms && now - this.#answeredAt < this.quiet.maxMs) return void setImmediate(this.#startWhenGathered);
    }
    this.#answeredAt = -1;
    this.#scheduled = false;
    this.#waitingForSync = false;
    void this.#runBatch();
  };

  /** Starts the batch that waited for a sync (or for a full queue) in a turn of its own. */
  #wake(): void {
    if (!this.#waitingForSync) return;
    this.#waitingForSync = false;
    setImmediate(this.#startWhenGathered);
  }

  async #runBatch(): Promise<void> {
    this.#running = true;
    const batch = this.#queue.splice(0, this.maxBatch);
    try {
      if (this.#failed) throw this.#failed;
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
    const syncHere = this.walSync !== null;
    if (syncHere) this.#unsynced.run();
    let outcomes: Outcome[];
    try {
      this.#begin.run();
      outcomes = await this.#runEach(conn, batch);
      // A sync failed while the callbacks ran: nothing commits any more (the catch rolls back,
      // and every caller of the batch learns it was not applied).
      if (this.#failed) throw this.#failed;
      this.#commit.run();
    } catch (err) {
      // Nothing of the batch is applied; every caller learns it (the caller of #runBatch rejects all).
      if (this.sqlite.inTransaction) this.#rollback.run();
      throw err;
    } finally {
      if (syncHere) this.#synced.run();
    }
    this.stats.batches++;
    this.stats.transactions += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    observeGroupCommit(batch.length);
    const answer = (i: number) => {
      const o = outcomes[i]!;
      if (o.ok) batch[i]!.resolve(o.value);
      else batch[i]!.reject(o.error);
    };
    if (!syncHere) return batch.forEach((_, i) => answer(i));
    const seq = ++this.#committed;
    // Only once the batch is durable does a caller learn its outcome, but for those who take it at
    // COMMIT (and hold it until then themselves). Not awaited: the next batch runs while this
    // one's sync is in flight.
    const later: number[] = [];
    batch.forEach((p, i) => (p.answerAt === 'committed' ? answer(i) : later.push(i)));
    if (later.length > 0) this.#whenDurable(seq).then(() => later.forEach((i) => answer(i)), (err: unknown) => later.forEach((i) => batch[i]!.reject(err)));
    this.#sync();
  }

  #whenDurable(seq: number): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => this.#waiters.push({ seq, resolve, reject }));
  }

  /** One sync of the WAL at a time, off the event loop; each covers every batch committed before it began. */
  #sync(): void {
    if (this.#syncing || this.#failed || this.#durable === this.#committed) return;
    const target = this.#committed;
    this.#syncing = this.walSync!.sync().then(
      () => {
        this.#durable = target;
        const ready = this.#waiters.filter((w) => w.seq <= target);
        this.#waiters = this.#waiters.filter((w) => w.seq > target);
        for (const w of ready) w.resolve();
      },
      (err: Error) => this.#fail(err),
    ).finally(() => {
      this.#syncing = null;
      this.#sync();
      this.#wake();
    });
  }

  #fail(err: Error): void {
    this.#failed = Object.assign(new Error(`the database could not make a commit durable (${err.message}); restart the server`), { cause: err });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(this.#failed);
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
