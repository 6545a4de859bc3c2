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
import { signingKeyForEvent } from '../security/signing-keys.ts';
import { sharedSignPool } from '../security/sign-pool.ts';
import { isSuccessStatus, retryDelayMs } from './schedule.ts';
import { standardWebhookHeaders, standardWebhookKey } from './signing.ts';
import { privateDestinationError, publicOnlyLookup, redactedUrl, refusedLiteral, urlHost } from './destination.ts';
import { endWaitingDeliveries } from './endpoints.ts';

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
 * Fairness: concurrency is bounded overall and per endpoint, and a claim takes deliveries round-robin
 * over the endpoints among its candidates (one each per pass), not oldest first, so one endpoint's
 * backlog never fills a claim. The last quarter of the slots (the reserve) only goes to endpoints
 * with nothing in flight: receivers that accept and never answer can hold at most three quarters of
 * the slots until their tries time out, and an endpoint that answers keeps getting slots meanwhile.
 * Circuit breaker: an endpoint whose last BREAKER_OPEN_AFTER_FAILURES tries failed (failure_streak,
 * kept in the database so every process and a restart see it) gets one try in flight at a time; its
 * next success closes the breaker. Dead receivers therefore settle at one slot each.
 * Auto-disable: when every try to an endpoint has failed for webhookDisableAfterMs and at least
 * webhookDisableAfterFailures tries in a row, the endpoint is disabled (auto_disabled_ms, shown by
 * `tixian apps webhooks list`, logged at error), its waiting deliveries fail and it gets no new
 * events until `tixian apps webhooks enable`.
 * Destinations: live-mode tries connect only to public addresses (destination.ts) unless the
 * operator allows private ones; test mode is not checked.
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
  /** Live-mode tries may go to non-public addresses (Config.allowPrivateWebhooks). */
  allowPrivate: boolean;
  /** Auto-disable after this long of nothing but failures… */
  disableAfterMs: number;
  /** …and at least this many failed tries in a row. */
  disableAfterFailures: number;
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
/** Share of the slots kept for endpoints with nothing in flight (see Fairness above). */
const RESERVE_SHARE = 4;
/**
 * Failed tries in a row that open an endpoint's circuit breaker (one try in flight until a success).
 * Not 1: a live receiver that fails often but not always (a flapping deploy, some bad events) keeps
 * its pace; ten in a row from a live one are rare (0.4^10 ≈ 1e-4), while a dead one gets there
 * within two rounds of its in-flight bound.
 */
export const BREAKER_OPEN_AFTER_FAILURES = 10;
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
    allowPrivate: c.allowPrivateWebhooks,
    disableAfterMs: c.webhookDisableAfterMs,
    disableAfterFailures: c.webhookDisableAfterFailures,
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
  livemode: number;
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
  /** Whether the try reached the network: a try we could not sign says nothing about the receiver. */
  sent: boolean;
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
  /** Test-mode tries: any destination. */
  private readonly agent: Agent;
  /** Live-mode tries: public destinations only, checked on the address connected to (DNS rebinding). */
  private readonly liveAgent: Agent;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perEndpoint = new Map<string, number>();
  /** The in-flight bound of each endpoint with tries in flight (1 while its breaker is open). */
  private readonly caps = new Map<string, number>();
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
    const agentOptions = (guarded: boolean): Agent.Options => ({
      keepAliveTimeout: 4_000,
      // Our own bounds decide how many tries run; the agent must not queue them behind each other
      // (endpoints may share an origin).
      connections: this.options.concurrency,
      connect: { timeout: Math.min(this.options.timeoutMs, 10_000), ...(guarded ? { lookup: publicOnlyLookup } : {}) },
      headersTimeout: this.options.timeoutMs,
      bodyTimeout: this.options.timeoutMs,
    });
    this.agent = new Agent(agentOptions(false));
    this.liveAgent = this.options.allowPrivate ? this.agent : new Agent(agentOptions(true));
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
      if (this.liveAgent !== this.agent) await this.liveAgent.destroy();
    } else {
      await this.agent.close();
      if (this.liveAgent !== this.agent) await this.liveAgent.close();
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
      return claimed.map(({ c, cap }) => this.launch(c, cap));
    });
    this.claimChain = next.catch(() => undefined);
    return next;
  }

  private launch(c: Claimed, cap: number): Promise<void> {
    this.perEndpoint.set(c.endpoint_id, (this.perEndpoint.get(c.endpoint_id) ?? 0) + 1);
    if (!this.caps.has(c.endpoint_id)) this.caps.set(c.endpoint_id, cap);
    const task: Promise<void> = this.deliver(c)
      .catch((err: unknown) => this.rt.log.error({ err, delivery: c.id }, 'webhook delivery could not be recorded; it is retried after its lease'))
      .finally(() => {
        this.inFlight.delete(task);
        const n = (this.perEndpoint.get(c.endpoint_id) ?? 1) - 1;
        if (n > 0) this.perEndpoint.set(c.endpoint_id, n);
        else {
          this.perEndpoint.delete(c.endpoint_id);
          this.caps.delete(c.endpoint_id);
        }
        this.poke();
      });
    this.inFlight.add(task);
    return task;
  }

  /** The in-flight bound of an endpoint with this many failed tries in a row: 1 while its breaker is open. */
  private capForStreak(failureStreak: number): number {
    return failureStreak >= BREAKER_OPEN_AFTER_FAILURES ? 1 : this.options.perEndpointConcurrency;
  }

  /** In-flight tries per endpoint that this claim may not exceed for endpoints already busy. */
  private capOf(endpointId: string): number {
    return this.caps.get(endpointId) ?? this.options.perEndpointConcurrency;
  }

  private async claim(free: number): Promise<{ c: Claimed; cap: number }[]> {
    const { db, engine } = this.rt.store;
    const nowMs = this.rt.clock.nowMs();
    const reserve = Math.floor(this.options.concurrency / RESERVE_SHARE);
    // Bounded: at most `concurrency` endpoints are busy. Within the reserve only idle endpoints claim.
    const busy = [...this.perEndpoint.keys()];
    const excluded = free <= reserve ? busy : busy.filter((id) => this.perEndpoint.get(id)! >= this.capOf(id));
    /** Deliveries due now, leaving out endpoints that may not take another try. */
    const due = (qb: Db) => {
      const q = qb.selectFrom('webhook_deliveries').where('next_attempt_ms', '<=', nowMs);
      return excluded.length > 0 ? q.where('endpoint_id', 'not in', excluded) : q;
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
      if (candidates.length === 0) return new Map<string, number>();
      const queues = new Map<string, string[]>();
      for (const c of candidates) {
        const queue = queues.get(c.endpoint_id);
        if (queue) queue.push(c.id);
        else queues.set(c.endpoint_id, [c.id]);
      }
      const states = await trx.selectFrom('webhook_endpoints').select(['id', 'failure_streak']).where('id', 'in', [...queues.keys()]).execute();
      // An endpoint row that is gone still gets one pick, so its delivery is canceled below.
      const capOf = new Map<string, number>([...queues.keys()].map((id) => [id, 1]));
      for (const st of states) {
        const cap = Math.min(this.capForStreak(st.failure_streak), this.capOf(st.id));
        capOf.set(st.id, cap);
        // Another process's failures may have opened the breaker: the next claim's exclusions follow.
        if (this.caps.has(st.id)) this.caps.set(st.id, cap);
      }
      const picked = this.pickRoundRobin(queues, capOf, free, reserve);
      if (picked.size > 0) {
        await trx.updateTable('webhook_deliveries').set({ next_attempt_ms: leaseUntil, lease_ms: leaseUntil }).where('id', 'in', [...picked.keys()]).execute();
      }
      return picked;
    });
    if (taken.size === 0) return [];
    const rows = await db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('events as e', 'e.id', 'd.event_id')
      .innerJoin('webhook_endpoints as ep', 'ep.id', 'd.endpoint_id')
      .select(['d.id', 'd.event_id', 'd.endpoint_id', 'd.attempts', 'd.lease_ms', 'ep.url', 'ep.livemode', 'ep.secret', 'ep.disabled', 'ep.auto_disabled_ms', 'e.body', 'e.signature'])
      .where('d.id', 'in', [...taken.keys()])
      .execute();
    const claimed: { c: Claimed; cap: number }[] = [];
    const mine = new Set(taken.keys());
    const paused: string[] = [];
    for (const r of rows) {
      // Re-queued or removed since it was claimed: whoever did that also cleared the lease.
      if (r.lease_ms !== leaseUntil) mine.delete(r.id);
      else if (!r.disabled && r.auto_disabled_ms === null) {
        const { disabled: _d, auto_disabled_ms: _a, ...c } = r;
        claimed.push({ c: { ...c, lease_ms: leaseUntil }, cap: taken.get(r.id)! });
        mine.delete(r.id);
      } else if (!r.disabled) {
        paused.push(r.id);
        mine.delete(r.id);
      }
    }
    // Left: still ours, but its endpoint is disabled or its endpoint or event row is gone. Nothing
    // will ever be sent for it; cancel it as removal would, or it would be claimed again each lease.
    // A delivery queued for an endpoint while it was being auto-disabled fails as its others did.
    if (mine.size > 0) await this.cancelOrphans([...mine], leaseUntil, 'canceled');
    if (paused.length > 0) await this.cancelOrphans(paused, leaseUntil, 'failed');
    return claimed;
  }

  /**
   * Takes candidates one per endpoint per pass (endpoints in the order of their oldest due delivery)
   * until the slots are used: an endpoint stops at its cap; one that already has a try in flight
   * (or picked in this claim) does not take the reserve. Returns delivery id → the endpoint's cap.
   */
  private pickRoundRobin(queues: Map<string, string[]>, capOf: Map<string, number>, free: number, reserve: number): Map<string, number> {
    const picked = new Map<string, number>();
    const counts = new Map<string, number>();
    for (let progress = true; progress && picked.size < free; ) {
      progress = false;
      for (const [endpointId, queue] of queues) {
        if (picked.size >= free) break;
        const cap = capOf.get(endpointId);
        if (cap === undefined || queue.length === 0) continue;
        const n = (this.perEndpoint.get(endpointId) ?? 0) + (counts.get(endpointId) ?? 0);
        if (n >= cap) continue;
        if (n > 0 && picked.size >= free - reserve) continue;
        picked.set(queue.shift()!, cap);
        counts.set(endpointId, (counts.get(endpointId) ?? 0) + 1);
        progress = true;
      }
    }
    return picked;
  }

  private async cancelOrphans(ids: string[], leaseUntil: number, status: 'canceled' | 'failed'): Promise<void> {
    const canceled = await this.rt.store.transaction(async (trx) => {
      const rows = await trx
        .updateTable('webhook_deliveries')
        .set({ status, next_attempt_ms: null, lease_ms: null })
        .where('id', 'in', ids)
        .where('lease_ms', '=', leaseUntil)
        .returning(['id', 'event_id'])
        .execute();
      await decrementPending(trx, rows.map((r) => r.event_id));
      return rows;
    });
    if (canceled.length > 0) {
      this.rt.log.warn({ deliveries: canceled.map((r) => r.id), status }, `webhook deliveries ${status}: their endpoint is disabled or gone`);
    }
  }

  private async deliver(c: Claimed): Promise<void> {
    const attemptedMs = this.rt.clock.nowMs();
    let signature = c.signature;
    let headers: Record<string, string>;
    try {
      signature ??= await this.signatureFor(c.event_id, c.body);
      headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT, [PLATFORM_SIGNATURE_HEADER]: signature };
      if (c.secret !== null) Object.assign(headers, standardWebhookHeaders(this.keyFor(c.secret), c.event_id, Math.floor(attemptedMs / 1000), c.body));
    } catch (err) {
      // Nothing was sent; still a try, so a secret that never opens (sealed with another master key)
      // runs out the schedule instead of being claimed again after every lease.
      const error = `could not sign: ${err instanceof Error ? err.message : String(err)}`.slice(0, ERROR_TEXT_MAX);
      await this.record(c, attemptedMs, 0, { statusCode: null, responseBody: null, error }, signature, false);
      return;
    }

    const started = performance.now();
    const outcome = await this.post(c, headers);
    const durationMs = Math.round(performance.now() - started);
    // Stopped the hard way: leave the delivery leased; it is sent again when the lease runs out.
    if (this.abort.signal.aborted) return;
    await this.record(c, attemptedMs, durationMs, outcome, signature, true);
  }

  private async post(c: Claimed, headers: Record<string, string>): Promise<Outcome> {
    const live = c.livemode === 1;
    let res: Dispatcher.ResponseData;
    try {
      if (live && !this.options.allowPrivate) {
        // net.connect does not resolve an IP literal, so the lookup hook never sees it: check here.
        const parsed = new URL(c.url);
        const literal = refusedLiteral(parsed);
        if (literal !== null) throw privateDestinationError(urlHost(parsed), literal);
      }
      // undici's request never follows redirects: a 3xx is an answer, and not a 2xx.
      res = await request(c.url, {
        method: 'POST',
        headers,
        body: c.body,
        dispatcher: live ? this.liveAgent : this.agent,
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
  private async record(c: Claimed, attemptedMs: number, durationMs: number, o: Outcome, signature: string | null, sent: boolean): Promise<void> {
    const success = o.statusCode !== null && isSuccessStatus(o.statusCode);
    const made = c.attempts + 1;
    const delayMs = success ? null : retryDelayMs(made, this.options.retryScale);
    const status: TryRecord['status'] = success ? 'succeeded' : delayMs === null ? 'failed' : 'pending';
    // The next try is counted from the end of this one, so a receiver that timed out still gets its full pause.
    const nextMs = delayMs === null ? null : this.rt.clock.nowMs() + delayMs;
    observeWebhookTry(status, made, durationMs);
    const fenced = await new Promise<boolean>((resolve, reject) => {
      this.records.push({ c, attemptedMs, durationMs, o, signature, sent, made, status, nextMs, resolve, reject });
      this.flushRecords();
    });
    const log = {
      delivery: c.id, event: c.event_id, endpoint: c.endpoint_id, url: redactedUrl(c.url), attempt: made, status_code: o.statusCode, error: o.error,
    };
    if (!fenced) this.rt.log.warn(log, 'webhook try recorded, but the delivery was re-queued or canceled meanwhile');
    else if (status === 'failed') this.rt.log.warn(log, 'webhook delivery failed for good after the last scheduled try');
    // Warn, not debug: a failing receiver must show at the default log level.
    else if (status === 'pending') this.rt.log.warn({ ...log, next_attempt_ms: nextMs }, 'webhook try failed; retry scheduled');
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
          const { fenced, streaks } = await this.writeRecords(batch);
          // The breaker of an endpoint with tries still in flight follows its latest recorded run.
          for (const [endpointId, streak] of streaks) if (this.caps.has(endpointId)) this.caps.set(endpointId, this.capForStreak(streak));
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
  private writeRecords(batch: readonly TryRecord[]): Promise<{ fenced: boolean[]; streaks: Map<string, number> }> {
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
      const streaks = await this.updateHealth(trx, batch);
      return { fenced, streaks };
    });
  }

  /**
   * Endpoint health from this batch's tries, in order: a success ends the run of failures (closes
   * the breaker); failures lengthen it. An endpoint whose run is long enough, in tries and in time,
   * is disabled in the same transaction.
   */
  private async updateHealth(trx: Db, batch: readonly TryRecord[]): Promise<Map<string, number>> {
    const streaks = new Map<string, number>();
    const perEndpoint = new Map<string, { succeeded: boolean; failures: number; firstFailureMs: number | null }>();
    for (const r of batch) {
      if (!r.sent) continue;
      const h = perEndpoint.get(r.c.endpoint_id) ?? { succeeded: false, failures: 0, firstFailureMs: null };
      if (r.status === 'succeeded') Object.assign(h, { succeeded: true, failures: 0, firstFailureMs: null });
      else {
        h.failures += 1;
        h.firstFailureMs ??= r.attemptedMs;
      }
      perEndpoint.set(r.c.endpoint_id, h);
    }
    const nowMs = this.rt.clock.nowMs();
    for (const [endpointId, h] of perEndpoint) {
      const q = trx.updateTable('webhook_endpoints').where('id', '=', endpointId);
      if (h.succeeded) {
        await q.set({ failure_streak: h.failures, failing_since_ms: h.firstFailureMs }).execute();
        streaks.set(endpointId, h.failures);
        continue;
      }
      const row = await q
        .set((eb) => ({
          failure_streak: eb('failure_streak', '+', h.failures),
          failing_since_ms: eb.fn.coalesce('failing_since_ms', eb.val(h.firstFailureMs!)),
        }))
        .returning(['failure_streak', 'failing_since_ms', 'auto_disabled_ms', 'disabled', 'url', 'app'])
        .executeTakeFirst();
      if (row) streaks.set(endpointId, row.failure_streak);
      if (!row || row.disabled || row.auto_disabled_ms !== null) continue;
      const failingForMs = nowMs - Number(row.failing_since_ms);
      if (row.failure_streak < this.options.disableAfterFailures || failingForMs < this.options.disableAfterMs) continue;
      const reason =
        `every try failed for ${Math.floor(failingForMs / 3_600_000)} h (${row.failure_streak} in a row); ` +
        `disabled after ${Math.round(this.options.disableAfterMs / 3_600_000)} h and ${this.options.disableAfterFailures} failures`;
      await trx.updateTable('webhook_endpoints').set({ auto_disabled_ms: nowMs, auto_disabled_reason: reason }).where('id', '=', endpointId).execute();
      const failed = await endWaitingDeliveries(trx, endpointId, 'failed');
      // The operator's record: `tixian apps webhooks list` shows it; this is the event in the log.
      this.rt.log.error(
        { event: 'webhook_endpoint.disabled', endpoint: endpointId, app: row.app, url: redactedUrl(row.url), reason, failed_deliveries: failed },
        'webhook endpoint disabled after a long run of failures; re-enable with `tixian apps webhooks enable`',
      );
    }
    return streaks;
  }

  /** Each event body is signed once (per process; the first record stores it for every other). */
  private async signatureFor(eventId: string, body: string): Promise<string> {
    const hit = this.signatures.get(eventId);
    if (hit !== undefined) return hit;
    // The event's account's own key when it has one, else the platform key (signing-keys.ts).
    const key = await signingKeyForEvent(this.rt, eventId);
    // In a signing thread when the process has a spare core (sign-pool.ts), so deliveries and the
    // event loop's other work go on while it signs.
    const signature = key.privateKey ? await sharedSignPool().sign(key.privateKey, Buffer.from(body, 'utf8')) : key.sign(body);
    return this.signatures.getOrSet(eventId, () => signature);
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
