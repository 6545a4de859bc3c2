import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import { closeThread } from './threads.ts';

/**
 * SQLite WAL checkpoints on a thread of their own (issue #12).
 *
 * A checkpoint copies the WAL's pages into the database file and fsyncs both. SQLite runs one
 * after the COMMIT that takes the WAL past 1,000 pages, on the connection that committed: here the
 * event loop's. Sampling the serving thread under creates found it in uninterruptible sleep
 * (fsync, `blkdev_issue_flush`) 13–21% of the time, most of it in those checkpoints (with
 * `synchronous=NORMAL`, no fsync per commit, 11–13% remained), and no request is served while the
 * thread waits.
 *
 * So once the connection has written, a worker thread with its own connection runs
 * `wal_checkpoint(PASSIVE)` every `intervalMs` (when something was written since), and the event
 * loop's connection runs none of its own (`wal_autocheckpoint = 0`). PASSIVE never blocks the
 * writer: the two connections coordinate through SQLite's WAL locks, as two processes would. What
 * durability means does not change: a commit is durable once the WAL is synced after it
 * (group-commit.ts), and a checkpoint fsyncs the database before it lets the WAL be reused.
 *
 * The WAL is reused from its start (rather than grown) only by a write that begins when every
 * frame has been copied. Frames committed while the thread copied are copied by a second pass
 * (it took a fraction of the first's time, so it has few to copy); what even that leaves must be
 * copied while nothing commits, so the WAL starts over once per cycle under steady load instead of
 * growing without end. That last copy, a few pages and two fsyncs, was made here on the event
 * loop's connection between transactions: 2.1–2.7 ms of the serving thread each cycle on this
 * machine kind's disk, over 20 ms where an fsync takes 10 ms. Where the connection's writes all
 * go through the group commit (`holdWrites`, store/db.ts), the thread makes it instead: it starts
 * when the connection is between transactions, and until it is done (at most FINISH_HOLD_MAX_MS,
 * or FINISH_HOLD_AFTER_SLOW_MS after a copy that took longer) `holding` tells the group commit to
 * begin no batch; the event loop serves meanwhile. Thread passes alone did not do (measured: the
 * WAL grew to ~74 MB): they catch up while a batch is open, and its COMMIT puts them behind again.
 *
 * Should the thread fail (it could not open the file, it died), the connection checkpoints for
 * itself again as SQLite does by default.
 */
export const CHECKPOINT_INTERVAL_MS = 200;
/** SQLite's default `wal_autocheckpoint`, put back if the thread fails. */
const AUTOCHECKPOINT_PAGES = 1000;
/** Passes of the thread per cycle (the second copies what was committed during the first). */
const PASSES = 2;
/** Turns the event loop waits for its connection to be out of a transaction before it gives up a finishing copy. */
const FINISH_TRIES = 100;
/** The longest writes are held for the thread's finishing copy; past it they begin (that cycle's WAL then grows on). */
export const FINISH_HOLD_MAX_MS = 50;
/**
 * ... but after a copy that outlasted its hold, the next hold waits for the copy up to this long:
 * on a disk whose fsyncs always take more than half of FINISH_HOLD_MAX_MS, the WAL still starts
 * over every other cycle instead of never.
 */
export const FINISH_HOLD_AFTER_SLOW_MS = 1_000;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db = null, checkpoint = null;
parentPort.on('message', (m) => {
  if (m === 'close') { if (db) db.close(); parentPort.close(); return; }
  const finish = m === 'finish';
  let result = null, error = null;
  try {
    if (!db) {
      db = new Database(workerData.file, { fileMustExist: true });
      db.pragma('synchronous = ' + workerData.synchronous);
      checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
    }
    // Not stopped when a pass reports log === checkpointed: its log is the WAL as it found it, so
    // what was committed during it is counted nowhere; the next pass copies that. A finishing copy
    // is one pass: nothing commits during it.
    for (let pass = 0; pass < (finish ? 1 : workerData.passes); pass++) {
      result = checkpoint.get();
      if (result.busy) break;
    }
  } catch (e) { error = String((e && e.message) || e); }
  parentPort.postMessage({ finish, result, error });
});
`;

interface ThreadAnswer {
  /** The answer to a finishing copy (one pass), not to a cycle. */
  finish: boolean;
  result: CheckpointResult | null;
  error: string | null;
}

interface CheckpointResult {
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames of it copied into the database. */
  checkpointed: number;
}

export interface CheckpointerStats {
  /** Checkpoints the thread ran (cycles, each one or two passes). */
  cycles: number;
  /** Remainders copied on the event loop's connection. */
  finishes: number;
  /** Remainders copied by the thread while writes were held. */
  threadFinishes: number;
  /** The most frames a cycle found in the WAL. */
  largestWal: number;
}

export class WalCheckpointer {
  readonly stats: CheckpointerStats = { cycles: 0, finishes: 0, threadFinishes: 0, largestWal: 0 };
  /**
   * Set by the store when every write on the connection goes through the group commit, which
   * begins no batch while `holding`: the finishing copy is then the thread's (see above).
   */
  holdWrites = false;
  #worker: Worker | null = null;
  #busy = false;
  /** While the thread makes a finishing copy: `done` resolves when it is (or past the hold's bound), `end` ends it. */
  #hold: { done: Promise<void>; end: () => void } | null = null;
  /** The last finishing copy outlasted its hold. */
  #lastCopySlow = false;
  #stopped = false;
  #lastChanges = 0;
  readonly #timer: NodeJS.Timeout;
  readonly #changes: BetterSqlite3.Statement;
  readonly #checkpoint: BetterSqlite3.Statement;

  constructor(
    private readonly sqlite: BetterSqlite3.Database,
    private readonly file: string,
    private readonly synchronous: 'FULL' | 'NORMAL',
    private readonly onError: (err: Error) => void = () => {},
    intervalMs = CHECKPOINT_INTERVAL_MS,
  ) {
    this.#changes = sqlite.prepare('SELECT total_changes()').pluck();
    this.#checkpoint = sqlite.prepare('PRAGMA wal_checkpoint(PASSIVE)');
    this.#lastChanges = this.#changes.get() as number;
    this.#timer = setInterval(() => this.#tick(), intervalMs).unref();
  }

  /** The thread, once started (tests stop it to see the fallback). */
  get worker(): Worker | null {
    return this.#worker;
  }

  /** True while the thread does the checkpoints (false before the first write, after a failure or close). */
  get active(): boolean {
    return this.#worker !== null && !this.#stopped;
  }

  /** A finishing copy under way on the thread: no write transaction may begin until it resolves. */
  get holding(): Promise<void> | null {
    return this.#hold?.done ?? null;
  }

  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stop();
    const worker = this.#worker;
    if (!worker) return;
    await closeThread(worker, 'close');
  }

  #tick(): void {
    if (this.#busy || this.#stopped || !this.sqlite.open) return;
    try {
      const changes = this.#changes.get() as number;
      if (changes === this.#lastChanges) return;
      this.#lastChanges = changes;
      this.#busy = true;
      this.#start().postMessage('checkpoint');
    } catch (err) {
      // The connection is busy with an open cursor, or the thread could not start: not this time.
      this.#busy = false;
      this.onError(err as Error);
    }
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), file: this.file, synchronous: this.synchronous, passes: PASSES },
    });
    worker.on('message', (m: ThreadAnswer) => (m.finish ? this.#finished(m) : this.#settle(m)));
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', () => this.#fail(new Error('the checkpoint thread exited')));
    worker.unref();
    this.sqlite.pragma('wal_autocheckpoint = 0');
    return (this.#worker = worker);
  }

  #settle(m: ThreadAnswer): void {
    this.#busy = false;
    if (this.#stopped) return;
    if (m.error !== null || !m.result) {
      // The next cycle tries again; a thread that cannot checkpoint at all gives the work back.
      if (this.stats.cycles === 0) this.#fail(new Error(`checkpoint thread: ${m.error}`));
      else this.onError(new Error(`checkpoint thread: ${m.error}`));
      return;
    }
    this.stats.cycles++;
    this.stats.largestWal = Math.max(this.stats.largestWal, m.result.log);
    // Not only when `log > checkpointed`: `log` is the WAL as the thread's pass found it, and the
    // frames committed during that pass are in neither count.
    if (!m.result.busy) this.#finish(FINISH_TRIES);
  }

  /** Copies the frames the thread's passes left, so the next write can start the WAL over. */
  #finish(tries: number): void {
    if (this.#stopped) return;
    if (!this.sqlite.open) return;
    if (this.sqlite.inTransaction) {
      if (tries > 1) setImmediate(() => this.#finish(tries - 1));
      return;
    }
    if (this.holdWrites && this.#worker) {
      // A cycle that began meanwhile ends with a finishing copy of its own.
      if (!this.#busy) this.#finishOnThread(this.#worker);
      return;
    }
    try {
      this.#checkpoint.get();
      this.stats.finishes++;
    } catch (err) {
      // Left for the next cycle (an open cursor on the connection, a closed connection).
      if (this.sqlite.open) this.onError(err as Error);
    }
  }

  /** The finishing copy on the thread, with writes held until it is done (bounded). */
  #finishOnThread(worker: Worker): void {
    this.#busy = true; // no cycle starts meanwhile
    const maxMs = this.#lastCopySlow ? FINISH_HOLD_AFTER_SLOW_MS : FINISH_HOLD_MAX_MS;
    this.#lastCopySlow = false;
    let end!: () => void;
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#lastCopySlow = true;
        end();
      }, maxMs);
      end = () => {
        clearTimeout(timer);
        this.#hold = null;
        resolve();
      };
    });
    this.#hold = { done, end };
    worker.postMessage('finish');
  }

  #finished(m: ThreadAnswer): void {
    this.#busy = false;
    this.#hold?.end();
    if (this.#stopped) return;
    if (m.error !== null) this.onError(new Error(`checkpoint thread: ${m.error}`));
    else this.stats.threadFinishes++;
  }

  #fail(err: Error): void {
    if (this.#stopped) return;
    this.#stop();
    // A thread that failed a cycle is still running, with its connection open: close() will not
    // (the checkpointer is stopped), so it goes now. After an exit this does nothing.
    void this.#worker?.terminate();
    this.onError(new Error(`${err.message}; the connection checkpoints for itself again`, { cause: err }));
  }

  #stop(): void {
    this.#stopped = true;
    this.#hold?.end();
    clearInterval(this.#timer);
    // The connection checkpoints for itself again (SQLite's default); closing it checkpoints too.
    if (this.sqlite.open) this.sqlite.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
  }
}
