import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { sql } from 'kysely';
import type { Runtime } from '../runtime.ts';
import { observeWebhookRecordBatch, observeWebhookTry } from '../observability/metrics.ts';
import type { Worker } from '../workers.ts';
import type { Db } from '../store/db.ts';
import { BoundedCache } from '../domain/bounded-cache.ts';
import { newInternalId } from '../domain/ids.ts';
import { PLATFORM_SIGNATURE_HEADER } from '../security/platform-key.ts';
import { isSuccessStatus, retryDelayMs } from './schedule.ts';
import { standardWebhookHeaders, standardWebhookKey } from './signing.ts';

/**
 * Webhook dispatcher: claims due deliveries from the database under a lease, POSTs the stored event
 * bytes signed with the platform key, records the try and schedules the next one (schedule.ts).
 *
 * Claiming: one short transaction selects due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
 * processes sharing a database never claim the same row; SQLite's BEGIN IMMEDIATE serialises
 * claimers instead) and pushes their next_attempt_ms to the end of a lease. A delivery whose sender
 * dies therefore becomes due again when the lease runs out and is sent again: at-least-once, with the
 * same event id and the same bytes. The lease value doubles as a fencing token: a try is recorded
 * only if the row still carries the lease it was claimed with.
 *
 * Isolation: concurrency is bounded overall and per endpoint; an endpoint at its bound is left out
 * of the next claim, so a slow or dead receiver holds at most its own slots and never the queue.
 *
 * Back of the envelope (PERFORMANCE.md): per event one RSA signature (~250 µs, then stored and
 * reused by every retry and endpoint), per try one HTTP round trip on a kept-alive socket and one
 * small transaction (~100 µs on SQLite): a few thousand tries a second per process.
 */

export interface DispatcherOptions {
  /** Tries in flight at once, over all endpoints (this process). */
  concurrency: number;
  /** Tries in flight at once to one endpoint (this process). */
  perEndpointConcurrency: number;
  /** A try that has no complete answer head by then failed. */
  timeoutMs: number;
  leaseMs: number;
  /** Multiplies every retry delay (test-only; see Config.webhookRetryScale). */
  retryScale: number;
  /** Poll interval when nothing was due; any freed slot or in-process wake-up polls sooner. */
  idleMs: number;
  /** stop() waits this long for tries in flight, then aborts them (their leases bring them back). */
  stopGraceMs: number;
}

/** The first bytes of an answer kept with the try, for the operator to see what the receiver said. */
const RESPONSE_PREFIX_BYTES = 1024;
/** Read (and drop) at most this much more of an answer so its socket can be reused; beyond, close it. */
const RESPONSE_DRAIN_BYTES = 64 * 1024;
const ERROR_TEXT_MAX = 1024;
/** Candidates read per free slot: rows of endpoints at their bound are skipped, not taken. */
const CANDIDATES_PER_SLOT = 4;
const MAX_CANDIDATES = 256;
/** Finished tries written per transaction (group commit). */
const RECORD_BATCH = 128;
const SIGNATURE_CACHE_MAX = 4096;
const KEY_CACHE_MAX = 1024;
const ERROR_BACKOFF_MS = 1000;
const USER_AGENT = 'tixian-webhooks/1 (Ping++ compatible)';

function dispatcherOptions(rt: Runtime, overrides: Partial<DispatcherOptions> = {}): DispatcherOptions {
  const c = rt.config;
  const timeoutMs = overrides.timeoutMs ?? c.webhookTimeoutMs;
  return {
    concurrency: c.webhookConcurrency,
    perEndpointConcurrency: c.webhookPerEndpointConcurrency,
    retryScale: c.webhookRetryScale,
    idleMs: 200,
    stopGraceMs: 5_000,
    ...overrides,
    timeoutMs,
    // A lease shorter than a try would let a second process send a slow delivery again meanwhile.
    leaseMs: Math.max(overrides.leaseMs ?? c.webhookLeaseMs, timeoutMs + 1_000),
  };
}

interface Claimed {
  id: string;
  event_id: string;
  endpoint_id: string;
  attempts: number;
  lease_ms: number;
  url: string;
  secret: string | null;
  body: string;
  signature: string | null;
}

interface TryRecord {
  c: Claimed;
  attemptedMs: number;
  durationMs: number;
  o: Outcome;
  /** The event's Ping++ signature, or null when signing failed (nothing to store then). */
  signature: string | null;
  made: number;
  status: 'succeeded' | 'failed' | 'pending';
  nextMs: number | null;
  resolve(fenced: boolean): void;
  reject(err: unknown): void;
}

interface Outcome {
  statusCode: number | null;
  responseBody: string | null;
  error: string | null;
}

export class WebhookDispatcher implements Worker {
  readonly options: DispatcherOptions;
  private readonly agent: Agent;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perEndpoint = new Map<string, number>();
  private readonly signatures = new BoundedCache<string, string>(SIGNATURE_CACHE_MAX);
  private readonly keys = new BoundedCache<string, Buffer>(KEY_CACHE_MAX);
  private readonly abort = new AbortController();
  private claimChain: Promise<unknown> = Promise.resolve();
  private readonly records: TryRecord[] = [];
  private flushing: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private wakeUp: (() => void) | null = null;
  /** A wake-up came while the loop was busy claiming: do not sleep through it. */
  private poked = false;
  private readonly onBus = () => this.poke();

  constructor(
    private readonly rt: Runtime,
    overrides: Partial<DispatcherOptions> = {},
  ) {
    this.options = dispatcherOptions(rt, overrides);
    this.agent = new Agent({
      keepAliveTimeout: 4_000,
      // Our own bounds decide how many tries run; the agent must not queue them behind each other
      // (endpoints may share an origin).
      connections: this.options.concurrency,
      connect: { timeout: Math.min(this.options.timeoutMs, 10_000) },
      headersTimeout: this.options.timeoutMs,
      bodyTimeout: this.options.timeoutMs,
    });
  }

  /** The background loop used by `tixian serve`. */
  start(): this {
    if (this.loop || this.stopping) return this;
    this.rt.bus.on('webhook', this.onBus);
    this.loop = this.run();
    return this;
  }

  /**
   * Claims what is due now (as far as free slots allow), sends it and waits for those tries to be
   * recorded. Deterministic with a ManualClock: tests move the clock, then call this.
   * Returns the number of tries made.
   */
  async runOnce(): Promise<number> {
    const started = await this.claimAndStart();
    await Promise.all(started);
    return started.length;
  }

  /** runOnce until nothing is due at the clock's current time (bounded). */
  async drain(maxRounds = 10_000): Promise<number> {
    let total = 0;
    for (let round = 0; round < maxRounds; round++) {
      const n = await this.runOnce();
      if (n === 0) return total;
      total += n;
    }
    throw new Error(`webhook drain did not settle in ${maxRounds} rounds`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.rt.bus.off('webhook', this.onBus);
    this.poke();
    await this.loop;
    const settled = Promise.allSettled([...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<true>((resolve) => {
      timer = setTimeout(() => resolve(true), this.options.stopGraceMs);
    });
    const timedOut = await Promise.race([settled.then(() => false), graceOver]);
    clearTimeout(timer);
    if (timedOut) {
      // Unrecorded tries keep their lease and are sent again when it runs out.
      this.abort.abort();
      await settled;
      await this.agent.destroy();
    } else {
      await this.agent.close();
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let started = 0;
      this.poked = false;
      try {
        started = (await this.claimAndStart()).length;
      } catch (err) {
        this.rt.log.error({ err }, 'webhook dispatcher: claiming deliveries failed');
        await this.sleep(ERROR_BACKOFF_MS);
        continue;
      }
      if (this.stopping) break;
      if (started > 0 && this.freeSlots() > 0) {
        // More may be due: claim again at once, but let I/O callbacks (the API) run first.
        await nextTurn();
        continue;
      }
      await this.sleep(this.options.idleMs);
    }
  }

  /** Waits up to ms, or until poke(): a slot freed, work was queued in this process, or stop(). */
  private sleep(ms: number): Promise<void> {
    if (this.poked) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  private poke(): void {
    this.poked = true;
    this.wakeUp?.();
  }

  private freeSlots(): number {
    return this.options.concurrency - this.inFlight.size;
  }

  /** One claim at a time per dispatcher, so slot counts never go stale between claim and launch. */
  private claimAndStart(): Promise<Promise<void>[]> {
    const next = this.claimChain.then(async () => {
      const free = this.freeSlots();
      if (free <= 0 || this.stopping) return [];
      const claimed = await this.claim(free);
      return claimed.map((c) => this.launch(c));
    });
    this.claimChain = next.catch(() => undefined);
    return next;
  }

  private launch(c: Claimed): Promise<void> {
    this.perEndpoint.set(c.endpoint_id, (this.perEndpoint.get(c.endpoint_id) ?? 0) + 1);
    const task: Promise<void> = this.deliver(c)
      .catch((err: unknown) => this.rt.log.error({ err, delivery: c.id }, 'webhook delivery could not be recorded; it is retried after its lease'))
      .finally(() => {
        this.inFlight.delete(task);
        const n = (this.perEndpoint.get(c.endpoint_id) ?? 1) - 1;
        if (n > 0) this.perEndpoint.set(c.endpoint_id, n);
        else this.perEndpoint.delete(c.endpoint_id);
        this.poke();
      });
    this.inFlight.add(task);
    return task;
  }

  private async claim(free: number): Promise<Claimed[]> {
    const { db, engine } = this.rt.store;
    const nowMs = this.rt.clock.nowMs();
    const per = this.options.perEndpointConcurrency;
    // Bounded: at most concurrency / 1 endpoints can be at their bound.
    const saturated = [...this.perEndpoint].filter(([, n]) => n >= per).map(([id]) => id);
    /** Deliveries due now, leaving out endpoints at their bound. */
    const due = (qb: Db) => {
      const q = qb.selectFrom('webhook_deliveries').where('next_attempt_ms', '<=', nowMs);
      return saturated.length > 0 ? q.where('endpoint_id', 'not in', saturated) : q;
    };
    // Cheap look first: an idle poll must not take SQLite's write lock.
    if (!(await due(db).select('id').limit(1).executeTakeFirst())) return [];

    const leaseUntil = nowMs + this.options.leaseMs;
    const taken = await this.rt.store.transaction(async (trx) => {
      let q = due(trx)
        .select(['id', 'endpoint_id'])
        .orderBy('next_attempt_ms')
        .limit(Math.min(free * CANDIDATES_PER_SLOT, MAX_CANDIDATES));
      if (engine === 'postgres') q = q.forUpdate().skipLocked();
      const candidates = await q.execute();
      const counts = new Map(this.perEndpoint);
      const ids: string[] = [];
      for (const c of candidates) {
        if (ids.length >= free) break;
        const n = counts.get(c.endpoint_id) ?? 0;
        if (n >= per) continue;
        counts.set(c.endpoint_id, n + 1);
        ids.push(c.id);
      }
      if (ids.length > 0) {
        await trx.updateTable('webhook_deliveries').set({ next_attempt_ms: leaseUntil, lease_ms: leaseUntil }).where('id', 'in', ids).execute();
      }
      return ids;
    });
    if (taken.length === 0) return [];
    const rows = await db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('events as e', 'e.id', 'd.event_id')
      .innerJoin('webhook_endpoints as ep', 'ep.id', 'd.endpoint_id')
      .select(['d.id', 'd.event_id', 'd.endpoint_id', 'd.attempts', 'd.lease_ms', 'ep.url', 'ep.secret', 'ep.disabled', 'e.body', 'e.signature'])
      .where('d.id', 'in', taken)
      .execute();
    const claimed: Claimed[] = [];
    const mine = new Set(taken);
    for (const r of rows) {
      // Re-queued or removed since it was claimed: whoever did that also cleared the lease.
      if (r.lease_ms !== leaseUntil) mine.delete(r.id);
      else if (!r.disabled) {
        claimed.push({ ...r, lease_ms: leaseUntil });
        mine.delete(r.id);
      }
    }
    // Left: still ours, but its endpoint is disabled or its endpoint or event row is gone. Nothing
    // will ever be sent for it; cancel it as removal would, or it would be claimed again each lease.
    if (mine.size > 0) await this.cancelOrphans([...mine], leaseUntil);
    return claimed;
  }

  private async cancelOrphans(ids: string[], leaseUntil: number): Promise<void> {
    const canceled = await this.rt.store.transaction(async (trx) => {
      const rows = await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'canceled', next_attempt_ms: null, lease_ms: null })
        .where('id', 'in', ids)
        .where('lease_ms', '=', leaseUntil)
        .returning(['id', 'event_id'])
        .execute();
      await decrementPending(trx, rows.map((r) => r.event_id));
      return rows;
    });
    if (canceled.length > 0) {
      this.rt.log.warn({ deliveries: canceled.map((r) => r.id) }, 'webhook deliveries canceled: their endpoint is disabled or gone');
    }
  }

  private async deliver(c: Claimed): Promise<void> {
    const attemptedMs = this.rt.clock.nowMs();
    let signature = c.signature;
    let headers: Record<string, string>;
    try {
      signature ??= this.signatureFor(c.event_id, c.body);
      headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT, [PLATFORM_SIGNATURE_HEADER]: signature };
      if (c.secret !== null) Object.assign(headers, standardWebhookHeaders(this.keyFor(c.secret), c.event_id, Math.floor(attemptedMs / 1000), c.body));
    } catch (err) {
      // Nothing was sent; still a try, so a secret that never opens (sealed with another master key)
      // runs out the schedule instead of being claimed again after every lease.
      const error = `could not sign: ${err instanceof Error ? err.message : String(err)}`.slice(0, ERROR_TEXT_MAX);
      await this.record(c, attemptedMs, 0, { statusCode: null, responseBody: null, error }, signature);
      return;
    }

    const started = performance.now();
    const outcome = await this.post(c.url, headers, c.body);
    const durationMs = Math.round(performance.now() - started);
    // Stopped the hard way: leave the delivery leased; it is sent again when the lease runs out.
    if (this.abort.signal.aborted) return;
    await this.record(c, attemptedMs, durationMs, outcome, signature);
  }

  private async post(url: string, headers: Record<string, string>, body: string): Promise<Outcome> {
    let res: Dispatcher.ResponseData;
    try {
      // undici's request never follows redirects: a 3xx is an answer, and not a 2xx.
      res = await request(url, {
        method: 'POST',
        headers,
        body,
        dispatcher: this.agent,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.timeoutMs)]),
      });
    } catch (err) {
      return { statusCode: null, responseBody: null, error: describeError(err, this.options.timeoutMs) };
    }
    // Only the status decides; an answer whose body then stalls or breaks still counts as given.
    let responseBody: string | null = null;
    let error: string | null = null;
    try {
      responseBody = await readPrefix(res.body);
    } catch (err) {
      error = describeError(err, this.options.timeoutMs);
    }
    return { statusCode: res.statusCode, responseBody, error };
  }

  /**
   * Records a finished try. Tries finishing close together share one transaction (group commit):
   * on SQLite every commit is an fsync that also holds up the event loop (~1 ms with
   * synchronous=FULL on this VM kind), so one commit per try would cap delivery at a few hundred
   * a second and stall the API; per batch it is one commit for up to RECORD_BATCH tries.
   */
  private async record(c: Claimed, attemptedMs: number, durationMs: number, o: Outcome, signature: string | null): Promise<void> {
    const success = o.statusCode !== null && isSuccessStatus(o.statusCode);
    const made = c.attempts + 1;
    const delayMs = success ? null : retryDelayMs(made, this.options.retryScale);
    const status: TryRecord['status'] = success ? 'succeeded' : delayMs === null ? 'failed' : 'pending';
    // The next try is counted from the end of this one, so a receiver that timed out still gets its full pause.
    const nextMs = delayMs === null ? null : this.rt.clock.nowMs() + delayMs;
    observeWebhookTry(status, made, durationMs);
    const fenced = await new Promise<boolean>((resolve, reject) => {
      this.records.push({ c, attemptedMs, durationMs, o, signature, made, status, nextMs, resolve, reject });
      this.flushRecords();
    });
    const log = { delivery: c.id, event: c.event_id, endpoint: c.endpoint_id, attempt: made, status_code: o.statusCode, error: o.error };
    if (!fenced) this.rt.log.warn(log, 'webhook try recorded, but the delivery was re-queued or canceled meanwhile');
    else if (status === 'failed') this.rt.log.warn(log, 'webhook delivery failed for good after the last scheduled try');
    else if (status === 'pending') this.rt.log.debug({ ...log, next_attempt_ms: nextMs }, 'webhook try failed; retry scheduled');
  }

  private flushRecords(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      // Let the tries that finish in this turn join the batch.
      await nextTurn();
      while (this.records.length > 0) {
        const batch = this.records.splice(0, RECORD_BATCH);
        observeWebhookRecordBatch(batch.length);
        try {
          const fenced = await this.writeRecords(batch);
          batch.forEach((r, i) => r.resolve(fenced[i]!));
        } catch (err) {
          for (const r of batch) r.reject(err);
        }
      }
    })().finally(() => {
      this.flushing = null;
      if (this.records.length > 0) this.flushRecords();
    });
  }

  /** One transaction: the tries, the first signature of each event, the deliveries (fenced), pending_webhooks. */
  private writeRecords(batch: readonly TryRecord[]): Promise<boolean[]> {
    return this.rt.store.transaction(async (trx) => {
      await trx
        .insertInto('webhook_attempts')
        .values(
          batch.map((r) => ({
            id: newInternalId('wha'), delivery_id: r.c.id, attempted_ms: r.attemptedMs, status_code: r.o.statusCode,
            response_body: r.o.responseBody, duration_ms: r.durationMs, error: r.o.error,
          })),
        )
        .execute();
      const unsigned = new Map<string, string>();
      for (const r of batch) if (r.c.signature === null && r.signature !== null) unsigned.set(r.c.event_id, r.signature);
      for (const [eventId, signature] of unsigned) {
        await trx.updateTable('events').set({ signature }).where('id', '=', eventId).where('signature', 'is', null).execute();
      }
      const fenced: boolean[] = [];
      const finished: string[] = [];
      for (const r of batch) {
        const updated = await trx
          .updateTable('webhook_deliveries')
          .set({ status: r.status, attempts: r.made, next_attempt_ms: r.nextMs, lease_ms: null, last_attempt_ms: r.attemptedMs, last_status_code: r.o.statusCode })
          .where('id', '=', r.c.id)
          .where('lease_ms', '=', r.c.lease_ms)
          .executeTakeFirst();
        const ok = Number(updated.numUpdatedRows) === 1;
        fenced.push(ok);
        if (ok && r.status !== 'pending') finished.push(r.c.event_id);
      }
      await decrementPending(trx, finished);
      return fenced;
    });
  }

  /** Each event body is signed once (per process; the first record stores it for every other). */
  private signatureFor(eventId: string, body: string): string {
    return this.signatures.getOrSet(eventId, () => this.rt.platformKey.sign(body));
  }

  /** Standard Webhooks keys are stored sealed with the master key; opened once per process. */
  private keyFor(sealed: string): Buffer {
    return this.keys.getOrSet(sealed, () => standardWebhookKey(this.rt.box.open(sealed)));
  }
}

/** Takes finished deliveries out of their events' pending_webhooks (one per id listed; never below 0). */
async function decrementPending(trx: Db, eventIds: readonly string[]): Promise<void> {
  const perEvent = new Map<string, number>();
  for (const id of eventIds) perEvent.set(id, (perEvent.get(id) ?? 0) + 1);
  for (const [eventId, n] of perEvent) {
    await trx
      .updateTable('events')
      .set({ pending_webhooks: sql<number>`case when pending_webhooks > ${n} then pending_webhooks - ${n} else 0 end` })
      .where('id', '=', eventId)
      .execute();
  }
}

/** The first RESPONSE_PREFIX_BYTES of an answer as text; reads on a little so the socket can be reused. */
async function readPrefix(body: Dispatcher.ResponseData['body']): Promise<string> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let readBytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    readBytes += chunk.length;
    if (keptBytes < RESPONSE_PREFIX_BYTES) {
      const part = chunk.subarray(0, RESPONSE_PREFIX_BYTES - keptBytes);
      kept.push(part);
      keptBytes += part.length;
    }
    // Leaving the loop destroys the stream: the connection is closed instead of drained.
    if (readBytes > RESPONSE_PREFIX_BYTES + RESPONSE_DRAIN_BYTES) break;
  }
  // PostgreSQL text cannot hold NUL; a cut multi-byte character decodes as U+FFFD.
  return Buffer.concat(kept).toString('utf8').replaceAll('\u0000', '\uFFFD');
}

function describeError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } } | null;
  let text: string;
  if (e?.name === 'TimeoutError' || e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT' || e?.code === 'UND_ERR_CONNECT_TIMEOUT') {
    text = `timeout: no complete answer within ${timeoutMs} ms` + (e.code ? ` (${e.code})` : '');
  } else {
    const code = e?.code ?? e?.cause?.code;
    const message = e?.message || e?.cause?.message || String(err);
    text = code ? `${code}: ${message}` : message;
  }
  return text.slice(0, ERROR_TEXT_MAX);
}

export function startWebhookDispatcher(rt: Runtime): Worker {
  return new WebhookDispatcher(rt).start();
}
