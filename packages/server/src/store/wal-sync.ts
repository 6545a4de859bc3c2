import { Worker } from 'node:worker_threads';
import { closeThread } from './threads.ts';

/**
 * The group commit's WAL sync (group-commit.ts): makes what SQLite wrote to the WAL durable.
 * `sync` resolves once every byte written before it was called is on disk, and rejects when that
 * could not be done (after which nothing can be known about the disk).
 */
export interface WalSync {
  sync(): Promise<void>;
  /** Waits for the syncs asked for, then lets go of the file. */
  close(): Promise<void>;
}

export type WalSyncFactory = (walFile: string) => WalSync;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
let fd = null;
parentPort.on('message', (m) => {
  if (m === 'close') { if (fd !== null) fs.closeSync(fd); parentPort.close(); return; }
  try {
    if (fd === null) fd = fs.openSync(workerData.file, 'r');
    fs.fdatasyncSync(fd);
    parentPort.postMessage({ id: m, error: null, code: null });
  } catch (e) {
    parentPort.postMessage({ id: m, error: String((e && e.message) || e), code: (e && e.code) || null });
  }
});
`;

interface Answer {
  id: number;
  error: string | null;
  code: string | null;
}

/**
 * The sync on a thread of its own, not on libuv's shared pool: there it would queue behind
 * whatever else holds the pool's four threads (password hashing at operator log-ins, DNS
 * look-ups of webhook endpoints, file reads), and every write answer and every read waits for it.
 * fdatasync is per file, not per descriptor, so the thread's own descriptor syncs SQLite's writes.
 */
export class WalSyncThread implements WalSync {
  #worker: Worker | null = null;
  #next = 0;
  readonly #pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  #closing: Promise<void> | null = null;
  /** Called once no sync is owed (close waits for it). */
  #idle: (() => void) | null = null;
  /** Set when the thread failed: every sync after it fails the same way. */
  #dead: Error | null = null;

  constructor(private readonly file: string) {}

  sync(): Promise<void> {
    if (this.#dead) return Promise.reject(this.#dead);
    let worker: Worker;
    try {
      worker = this.#start();
    } catch (err) {
      return Promise.reject(err as Error); // a thread that cannot start: as a sync that failed
    }
    const id = ++this.#next;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Held while a sync is owed, so the process does not end with a commit unanswered.
      worker.ref();
      worker.postMessage(id);
    });
  }

  /** Idempotent: a store closed twice (a test's teardown after the test closed it) closes once. */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    // No sync is taken after close begins (a thread would start again); those owed are waited for.
    this.#dead ??= new Error('the WAL sync thread is closed');
    const worker = this.#worker;
    if (!worker) return;
    if (this.#pending.size > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    await closeThread(worker, 'close');
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: this.file } });
    worker.on('message', (m: Answer) => this.#answer(m));
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', () => this.#fail(new Error('the WAL sync thread exited')));
    worker.unref();
    return (this.#worker = worker);
  }

  #answer(m: Answer): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (this.#pending.size === 0) this.#settled();
    if (m.error === null) p.resolve();
    else p.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
  }

  #fail(err: Error): void {
    this.#dead ??= err;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
    this.#settled();
  }

  #settled(): void {
    this.#worker?.unref();
    this.#idle?.();
    this.#idle = null;
  }
}

export const walSyncThread: WalSyncFactory = (file) => new WalSyncThread(file);
