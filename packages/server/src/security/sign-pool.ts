import { sign, type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import Queue from 'yocto-queue';

/**
 * RSA-2048 signatures off the event loop (issue #12). One signature costs ~250 µs of CPU, the
 * largest single cost of a signed response; on a machine with a spare core a few worker threads
 * sign while the event loop serves requests. A process limited to one core (taskset, a 1-vCPU
 * container) gains nothing from threads and would pay the message passing, so there the pool has
 * no threads and signs inline, as before.
 *
 * Keys travel to each worker once (KeyObjects can be posted between threads), then only the body
 * bytes and a key number go per signature. Bounded: at most MAX_IN_FLIGHT signatures wait in the
 * workers and in the pool's queue of signatures asked for ahead (MAX_AHEAD_PER_THREAD); beyond that
 * the event loop signs them, a bounded share per turn (TurnQueue below), as it does on a machine
 * without a spare core.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { sign } = require('node:crypto');
const keys = new Map();
parentPort.on('message', (m) => {
  if (m.forget) { keys.clear(); return; }
  if (m.key) { keys.set(m.keyId, m.key); return; }
  let signature = null, error = null;
  try { signature = sign('sha256', m.bytes, keys.get(m.keyId)).toString('base64'); } catch (e) { error = String(e && e.message || e); }
  parentPort.postMessage({ id: m.id, signature, error });
});
`;

export const MAX_SIGN_THREADS = 4;

/**
 * Jobs run in arrival order, at most about `budgetMs` of them per event-loop turn: the signatures
 * made on the event loop. A job may return a continuation (signOnLoop's: send the answer); those
 * of a turn run after its last job, so the turn's signatures are made back to back.
 *
 * libuv accepts ONE connection per loop turn (libuv#3696, in Node since libuv 1.45). A turn that
 * signed every answer that became ready in it (a group commit's 64 withdrawals, 50 reads from 50
 * busy keep-alive connections) lasted 20–60 ms at ~0.3–1 ms per RSA signature, so a busy server
 * took in new connections at ~20 a second: a client opening one (a PHP SDK opens one per call)
 * waited seconds before its request was even read. A turn now signs for at most ~budgetMs, then
 * leaves the rest to the next turns, whose poll phases accept connections and read what arrived.
 *
 * Signatures interleaved with other work run slower (their caches cold): one signature per turn,
 * each answer sent right after its signature, measured ~18% fewer signed creates. Signing a
 * turn's share back to back and sending the answers after it keeps that cost away with turns of
 * 2 ms (~8 signatures), measured against 10 ms turns: as many signed creates per second, and the
 * answers go out in small groups, so the next requests of a closed loop arrive spread over the
 * signing instead of in one burst after it (with the group commit's quiet wait, p99 at the server
 * 23 ms against 31 ms).
 */
export class TurnQueue {
  readonly #jobs = new Queue<TurnJob>();
  #scheduled = false;

  constructor(private readonly budgetMs: number) {}

  /** Jobs waiting. */
  get size(): number {
    return this.#jobs.size;
  }

  push(job: TurnJob): void {
    this.#jobs.enqueue(job);
    if (!this.#scheduled) {
      this.#scheduled = true;
      // An immediate queued from an immediate runs on the next turn, after that turn's poll phase.
      setImmediate(this.#run);
    }
  }

  readonly #run = (): void => {
    const started = performance.now();
    const continuations: (() => void)[] = [];
    do {
      const job = this.#jobs.dequeue()!;
      const next = job(); // a job must not throw: it would be an uncaught exception (signOnLoop catches for its jobs)
      if (next) continuations.push(next);
    } while (this.size > 0 && performance.now() - started < this.budgetMs);
    for (const next of continuations) next();
    if (this.size > 0) setImmediate(this.#run);
    else this.#scheduled = false;
  };
}
/** A job of a turn; what it returns runs once the turn's jobs are done. */
type TurnJob = () => (() => void) | void;

/** How long one event-loop turn may spend on signatures before it lets the loop turn. */
export const SIGNING_TURN_BUDGET_MS = 2;

/** The event loop's signatures (responses and webhooks signed without a thread). */
export const inlineSignatures = new TurnQueue(SIGNING_TURN_BUDGET_MS);

/**
 * Signs on the event loop in its bounded share per turn (inlineSignatures), then, after the turn's
 * other signatures, calls `done` with the signature or the error `sign` threw; `done` runs outside
 * the catch, so its own errors are not taken for a signing failure.
 */
export function signOnLoop(sign: () => string, done: (err: Error | null, signature?: string) => void): void {
  inlineSignatures.push(() => {
    let signature: string;
    try {
      signature = sign();
    } catch (err) {
      return () => done(err as Error);
    }
    return () => done(null, signature);
  });
}
const MAX_IN_FLIGHT = 1024;
/**
 * Keys a thread holds at most. Keys come and go with the accounts' key cache (1,000 parsed keys);
 * a thread's copies would otherwise stay for the life of the process. Past the bound the thread
 * forgets them all and is sent again each key it is next asked to use.
 */
export const MAX_KEYS_PER_THREAD = 2048;

interface Slot {
  worker: Worker;
  /** Keys sent to the thread since it last forgot them. */
  keyCount: number;
  keys: WeakMap<KeyObject, number>;
  inFlight: number;
}

/**
 * Signatures asked for ahead of need (`sign(…, { ahead: true })`: a webhook's next rows) go to a
 * thread only while it has fewer than this many in flight, ~1 ms of RSA work; the rest wait in the
 * pool's own queue, in the order asked. A thread works through what it was sent in order and
 * cannot give any back, so a thread filled with signatures ahead would make a signature needed now
 * (an API answer, a try whose slot is free) wait behind all of them.
 */
export const MAX_AHEAD_PER_THREAD = 4;

/** A signature asked for: sent to a thread (or queued in the pool first) and kept until it answers, so another can make it if that thread dies. */
interface Job {
  /** The thread it was sent to; null while it waits in the pool's queue. */
  slot: Slot | null;
  key: KeyObject;
  bytes: Buffer;
  /** Out of the queue other than by its turn (hurried, or signed on the event loop: a lost thread, close). */
  taken: boolean;
  resolve: (s: string) => void;
  reject: (e: Error) => void;
}

export class SignPool {
  readonly threads: number;
  #slots: Slot[] = [];
  #pending = new Map<number, Job>();
  /** Signatures asked for ahead while every thread had MAX_AHEAD_PER_THREAD; sent as threads answer. */
  readonly #queued = new Queue<Job>();
  #jobOf = new WeakMap<Promise<string>, Job>();
  #nextId = 1;
  #keyIds = new WeakMap<KeyObject, number>();
  #nextKeyId = 1;
  #closed = false;

  /** `threads` defaults to the cores this process may use, minus the event loop's, at most MAX_SIGN_THREADS. */
  constructor(
    threads = Math.min(MAX_SIGN_THREADS, availableParallelism() - 1),
    private readonly maxKeysPerThread = MAX_KEYS_PER_THREAD,
  ) {
    this.threads = Math.max(0, threads);
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.on('message', (m: { id: number; signature: string | null; error: string | null }) => this.#settle(m));
      const slot: Slot = { worker, keys: new WeakMap(), keyCount: 0, inFlight: 0 };
      // A thread that died (an uncaught error is followed by its exit) takes no more work: the next
      // signatures go to the other threads, or inline. Only what this thread had is affected, and it
      // is signed again on the event loop: PKCS#1 v1.5 signatures are deterministic, so the caller
      // gets the very bytes the thread would have sent. The other threads' signatures go on as they were.
      worker.on('error', () => this.#lost(slot));
      worker.on('exit', () => this.#lost(slot));
      // A worker must not keep the process alive on shutdown (after the listeners: adding one refs it again).
      worker.unref();
      this.#slots.push(slot);
    }
  }

  /** Keys each live thread holds (bounded by maxKeysPerThread). */
  get keysHeld(): number[] {
    return this.#slots.map((s) => s.keyCount);
  }

  /** The live signing threads (tests stop one to see the pool survive it). */
  get workers(): readonly Worker[] {
    return this.#slots.map((s) => s.worker);
  }

  /** Whether signatures may go to a thread; without one, `sign` signs inline (callers may then sign themselves, without a promise). */
  get hasThreads(): boolean {
    return !this.#closed && this.#slots.length > 0;
  }

  /**
   * base64 RSASSA-PKCS1-v1_5 SHA-256 of exactly these bytes, in a worker when one is free. With
   * `ahead`, it is not needed yet: it waits in the pool's queue while the threads have enough to do
   * (MAX_AHEAD_PER_THREAD), until a thread has room or hurry says it is needed now.
   */
  sign(key: KeyObject, bytes: Buffer, { ahead = false }: { ahead?: boolean } = {}): Promise<string> {
    const job: Job = { slot: null, key, bytes, taken: false, resolve: () => {}, reject: () => {} };
    const signed = new Promise<string>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    if (this.#closed || this.#slots.length === 0 || this.#pending.size + this.queued >= MAX_IN_FLIGHT) {
      this.#signOnLoop(job);
      return signed;
    }
    const slot = this.#pick(ahead ? MAX_AHEAD_PER_THREAD : Infinity);
    if (!slot) {
      this.#queued.enqueue(job);
      this.#jobOf.set(signed, job);
      return signed;
    }
    try {
      this.#post(slot, job);
    } catch (err) {
      return Promise.reject(err as Error); // as when this was an async function: a promise, never a throw
    }
    return signed;
  }

  /** Signatures asked for ahead that wait in the pool's queue, not yet sent to a thread. */
  get queued(): number {
    return this.#queued.size;
  }

  /**
   * A signature asked for ahead is needed now: while it still waits in the pool's queue, it leaves
   * the queue and goes to a thread at once, as one asked for without `ahead` does. Returns whether
   * it did; one already with a thread, or done, is left as it is.
   */
  hurry(signed: Promise<string>): boolean {
    const job = this.#jobOf.get(signed);
    if (!job || job.slot !== null || job.taken) return false;
    job.taken = true;
    const slot = this.#pick(Infinity);
    // A queued job has a live thread to go to: a lost last thread or close() takes the queue first.
    if (slot) this.#post(slot, job);
    else this.#signOnLoop(job);
    return true;
  }

  /** Sends queued signatures to the threads with room for them (in the order asked), skipping those taken meanwhile. */
  #drain(): void {
    while (this.queued > 0) {
      const slot = this.#pick(MAX_AHEAD_PER_THREAD);
      if (!slot) return;
      const job = this.#queued.dequeue()!;
      if (job.taken) continue;
      try {
        this.#post(slot, job);
      } catch (err) {
        job.reject(err as Error); // runs from a thread's answer: a throw here would be uncaught
      }
    }
  }

  #post(slot: Slot, job: Job): void {
    const { key, bytes } = job;
    let keyId = this.#keyIds.get(key);
    if (keyId === undefined) this.#keyIds.set(key, (keyId = this.#nextKeyId++));
    if (!slot.keys.has(key)) {
      if (slot.keyCount >= this.maxKeysPerThread) {
        // Messages arrive in order: signatures posted before this one still find their keys.
        slot.worker.postMessage({ forget: true });
        slot.keys = new WeakMap();
        slot.keyCount = 0;
      }
      slot.worker.postMessage({ keyId, key });
      slot.keys.set(key, keyId);
      slot.keyCount++;
    }
    const id = this.#nextId++;
    // Referenced only while it has work: a signature awaited keeps the process alive, an idle pool does not.
    if (slot.inFlight++ === 0) slot.worker.ref();
    job.slot = slot;
    this.#pending.set(id, job);
    slot.worker.postMessage({ id, keyId, bytes });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failAll(new Error('the signing pool is closed'));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
    this.#slots = [];
  }

  /** The thread with the fewest signatures in flight, if it has fewer than `below` (null when there is no thread). */
  #pick(below: number): Slot | null {
    if (this.#closed || this.#slots.length === 0) return null;
    let best = this.#slots[0]!;
    for (const s of this.#slots) if (s.inFlight < best.inFlight) best = s;
    return best.inFlight < below ? best : null;
  }

  #settle(m: { id: number; signature: string | null; error: string | null }): void {
    const job = this.#pending.get(m.id);
    if (!job) return;
    this.#take(m.id, job);
    if (m.signature !== null) job.resolve(m.signature);
    else job.reject(new Error(`signing failed: ${m.error}`));
    this.#drain();
  }

  /** Removes a job from the waiting ones, and unreferences its thread when that was its last. */
  #take(id: number, job: Job): void {
    this.#pending.delete(id);
    if (--job.slot!.inFlight === 0) job.slot!.worker.unref();
  }

  /** The queued signatures, out of the queue (the pool has no thread left, or is closing). */
  #takeQueued(): Job[] {
    const jobs = [...this.#queued.drain()].filter((j) => !j.taken);
    for (const job of jobs) job.taken = true;
    return jobs;
  }

  #signOnLoop(job: Job): void {
    signOnLoop(() => sign('sha256', job.bytes, job.key).toString('base64'), (err, signature) => (err ? job.reject(err) : job.resolve(signature!)));
  }

  /**
   * A thread died: it leaves the pool, and the signatures it had not answered are made on the event
   * loop in its bounded share per turn (signOnLoop), so none is left waiting forever; so are the
   * queued ones when no thread is left, else the others take them. Bounded: at most MAX_IN_FLIGHT
   * jobs wait in all, and a dead thread is never replaced, so this runs at most once per thread
   * (its 'error' and 'exit' both call it; the second finds nothing left).
   */
  #lost(slot: Slot): void {
    this.#slots = this.#slots.filter((s) => s !== slot);
    for (const [id, job] of this.#pending) {
      if (job.slot !== slot) continue;
      this.#take(id, job);
      this.#signOnLoop(job);
    }
    if (this.#slots.length === 0) for (const job of this.#takeQueued()) this.#signOnLoop(job);
    else this.#drain();
  }

  /** Rejects every waiting signature (the pool is closing). */
  #failAll(err: Error): void {
    for (const [id, job] of this.#pending) {
      this.#take(id, job);
      job.reject(err);
    }
    for (const job of this.#takeQueued()) job.reject(err);
  }
}

let shared: SignPool | null = null;
/** The process's pool, made on first use: threads are a per-process resource, like the cores. */
export function sharedSignPool(): SignPool {
  shared ??= new SignPool();
  return shared;
}
