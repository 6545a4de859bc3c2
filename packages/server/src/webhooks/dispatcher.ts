import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Agent } from 'undici';
import { sql, type RawBuilder } from 'kysely';
import type { Runtime } from '../runtime.ts';
import { observeWebhookRecordBatch, observeWebhookTry } from '../observability/metrics.ts';
import type { Worker } from '../workers.ts';
import type { Db } from '../store/db.ts';
import { BoundedCache } from '../domain/bounded-cache.ts';
import { newTimeOrderedId } from '../domain/ids.ts';
import { PLATFORM_SIGNATURE_HEADER } from '../security/platform-key.ts';
import { cachedSigningKeyFor, signingKeyFor, type SigningKey } from '../security/signing-keys.ts';
import { sharedSignPool } from '../security/sign-pool.ts';
import { isSuccessStatus, retryDelayMs } from './schedule.ts';
import { standardWebhookHeaders, standardWebhookKey } from './signing.ts';
import { destinationRule, privateDestinationError, publicOnlyLookup, redactedUrl, refusedLiteral, testModeLookup, urlHost } from './destination.ts';
import { endWaitingDeliveries } from './endpoints.ts';
import { postOnce, type Post } from './post.ts';

/**
 * Webhook dispatcher: claims due deliveries from the database under a lease, POSTs the stored event
 * bytes signed with the key of the event's account (see Signing key below), records the try and
 * schedules the next one (schedule.ts).
 *
 * Claiming: one short transaction selects due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
 * processes sharing a database never claim the same row; SQLite's BEGIN IMMEDIATE serialises
 * claimers instead) and pushes their next_attempt_ms to the end of a lease. A delivery whose sender
 * dies therefore becomes due again when the lease runs out and is sent again: at-least-once, with the
 * same event id and the same bytes. The lease value doubles as a fencing token: a try is recorded
 * only if the row still carries the lease it was claimed with.
 *
 * Claiming ahead (issue #12): for an endpoint whose slots are all taken, a claim also leases its
 * next rows (up to CLAIM_AHEAD_FACTOR × its bound, claimed again when half are used; at most
 * `concurrency` rows in all), kept in memory as ids only. A freed slot then takes a buffered row at
 * once instead of waiting for a claim transaction, and one claim serves many tries. A buffered row
 * is loaded (body, endpoint) just before it is sent, in one query for all rows sent together, and
 * that query checks the lease: a row re-queued, canceled or taken over meanwhile is not sent. A row
 * waits at most BUFFER_MAX_WAIT_MS, and never so long that its try could outlive its lease; past
 * that, and on stop(), it is given back (due again when it was due). A slot is freed when its
 * request is over (answered or failed), not when the try is recorded: records are written in
 * batches (RECORD_BATCH, RECORD_GATHER_MS), at most MAX_UNRECORDED waiting, and the lease of a try
 * waiting for its record is as safe as before (the record is fenced by it).
 *
 * Signing ahead: with a signing thread (a spare core), the rows next in a sending endpoint's line
 * (up to twice its in-flight bound) are read with the rows sent and their signatures started, so
 * a freed slot finds its row's signature made. Signing then overlaps the round trips instead of
 * waiting for a slot: with 8 per endpoint, a 100,000-event drain to one endpoint went from ~2,200
 * to ~2,700–2,900/s on two cores. The pool holds signatures asked for ahead back while its threads
 * are busy (sign-pool.ts), so they never delay an API answer's, and a try hurries its own.
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
 * Signing key: every try carries a signature made with the key that signs for the event's account
 * now (signing-keys.ts; after `tixian apps signing-key create|remove` every process has the new
 * one within SIGNING_KEY_TTL_MS). The stored signature says which key made it (events.signature_kid)
 * and is reused only while that key signs; else the event is signed again and the new one stored.
 *
 * Back of the envelope (PERFORMANCE.md): per event one RSA signature (~250–290 µs on this VM kind,
 * then stored and reused by every retry and endpoint while the account's key stays the same; in a
 * signing thread when the process has a spare core), per try one HTTP round trip on a kept-alive
 * socket, a share of one load query, of one claim (~1/8–1/32) and of one record transaction of a
 * fixed number of statements (~1/7–1/20):
 * on one core with inline signing, the signature is about half of a try's CPU time.
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
  /** A buffered row read at most this long ago is sent without reading it again (LOADED_FRESH_MS). */
  loadedFreshMs: number;
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
/**
 * A record batch started with fewer than RECORD_BATCH / 4 tries, all successes, waits this long
 * for more while requests are on the wire (their answers may be due any moment): one commit for
 * many tries. A failure is written without waiting (the breaker reads the recorded run).
 */
const RECORD_GATHER_MS = 20;
/** Tries answered and waiting for their record beyond which no new try starts (back-pressure on the database). */
const MAX_UNRECORDED = 2 * RECORD_BATCH;
/**
 * A buffered (claimed ahead) row is sent at most this long after its claim, and never later than
 * its lease minus the timeout minus 1 s (the margin a try always had to be recorded in), so no try
 * outlives its lease. Past that it is given back. Never less than LAUNCH_GRACE_MS, the time a
 * claim may take before what it took for free slots is sent.
 */
const BUFFER_MAX_WAIT_MS = 10_000;
const LAUNCH_GRACE_MS = 250;
/**
 * A buffered row read by load() (its lease still ours, its endpoint sendable) at most this long ago
 * is sent from what was read, not read again: the rows next in an endpoint's line are read a round
 * of its slots ahead, so a freed slot sends at once instead of waiting for a query (on PostgreSQL a
 * round trip, ~0.65 ms of a ~3.7 ms try). A lease lost, a re-queue or a removal within this window
 * still lets one try go out, as one within the query-to-POST window always could: its record is
 * fenced by the lease, so it changes nothing, and a delivery may repeat.
 */
const LOADED_FRESH_MS = 50;
/**
 * Claimed ahead per endpoint: this many times its in-flight bound (claims again when half of that
 * is left, so one claim transaction serves about twice the bound's worth of tries). Each claim is a
 * commit the dispatcher waits for (on SQLite its batch's WAL sync, ~0.2–2 ms); 4, not 2, halves them.
 */
const CLAIM_AHEAD_FACTOR = 4;
/** No claiming ahead when buffered rows could wait less than this (a lease barely above the timeout). */
const CLAIM_AHEAD_MIN_WAIT_MS = 1_000;
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
    loadedFreshMs: LOADED_FRESH_MS,
    allowPrivate: c.allowPrivateWebhooks,
    disableAfterMs: c.webhookDisableAfterMs,
    disableAfterFailures: c.webhookDisableAfterFailures,
    ...overrides,
    timeoutMs,
    // A lease shorter than a try would let a second process send a slow delivery again meanwhile.
    leaseMs: Math.max(overrides.leaseMs ?? c.webhookLeaseMs, timeoutMs + 1_000),
  };
}

/** A delivery this dispatcher holds leased, claimed but not yet sent (the buffer). */
interface Leased {
  id: string;
  endpointId: string;
  /** The lease (fencing token) it was claimed with. */
  leaseMs: number;
  /** When it was due before the claim: what it goes back to if given back unsent. */
  dueMs: number;
  /** The endpoint's in-flight bound at claim time. */
  cap: number;
  claimedMs: number;
  /**
   * It was read ahead (pickLoadAhead), and its event's signature started then: once. A row whose
   * read went stale before its turn (a slow endpoint) is read again only when it is sent.
   */
  readAhead?: boolean;
  /** What load() read of it, still ours and sendable then, and when (performance.now()). */
  loaded?: { c: Claimed; atMs: number };
}

interface Claimed {
  id: string;
  event_id: string;
  account_id: string;
  endpoint_id: string;
  attempts: number;
  lease_ms: number;
  url: string;
  livemode: number;
  secret: string | null;
  body: string;
  /** The event's stored signature and the kid of the key that made it (signature_kid). */
  signature: string | null;
  signature_kid: string | null;
}

/** What signing a row's event ahead needs of it. */
type AheadRow = Pick<Claimed, 'event_id' | 'account_id' | 'body' | 'signature' | 'signature_kid'>;

/** A leased row as load() reads it, with its endpoint's state. */
interface LoadedRow extends Omit<Claimed, 'lease_ms'> {
  lease_ms: number | null;
  disabled: number;
  auto_disabled_ms: number | null;
}

interface TryRecord {
  c: Claimed;
  attemptedMs: number;
  durationMs: number;
  o: Outcome;
  /** A signature this try made (none stored, or made with another key) to store with the event; else null. */
  signature: MadeSignature | null;
  /** Whether the try reached the network: a try we could not sign says nothing about the receiver. */
  sent: boolean;
  made: number;
  status: 'succeeded' | 'failed' | 'pending';
  nextMs: number | null;
  resolve(fenced: boolean): void;
  reject(err: unknown): void;
}

/** A signature of an event's body and the kid of the key that made it. */
interface MadeSignature {
  signature: string;
  kid: string;
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
  /** Tries from launch until recorded (stop() and runOnce() wait for these). */
  private readonly inFlight = new Set<Promise<void>>();
  /**
   * Requests on the wire (launch until the answer, or the failure, is in): what the slots bound.
   * A try answered but not yet recorded no longer holds a slot, so the next one goes out while
   * its record waits for the next batch; at most MAX_UNRECORDED wait that way (freeSlots).
   */
  private sending = 0;
  private readonly perEndpoint = new Map<string, number>();
  /** The in-flight bound of each endpoint with tries in flight (1 while its breaker is open). */
  private readonly caps = new Map<string, number>();
  /**
   * `${kid}:${eventId}` → the signature that key made: an event fanned out to several endpoints, or
   * tried again before its first record is written, is signed once per key and process. Keyed by the
   * key too, so an entry made with a key the account no longer uses is never sent again.
   */
  private readonly signatures = new BoundedCache<string, string>(SIGNATURE_CACHE_MAX);
  /**
   * Signatures being made, by the same key as `signatures`: a try and a signature made ahead share
   * one. `pending` is the signing pool's promise (null when signed without the pool), which a try
   * about to be sent hurries (signNow).
   */
  private readonly signing = new Map<string, { made: Promise<string>; pending: Promise<string> | null }>();
  private readonly keys = new BoundedCache<string, Buffer>(KEY_CACHE_MAX);
  /** Aborted when stop() gives up waiting: every try on the wire is aborted with it (onWire). */
  private readonly abort = new AbortController();
  private readonly onWire = new Set<Post>();
  /**
   * Leased rows waiting for a slot, per endpoint in claim order (ids and numbers only, no bodies).
   * Bounded: at most `concurrency` claimed ahead plus one claim's rows for the free slots.
   */
  private readonly buffer = new Map<string, Leased[]>();
  private bufferedTotal = 0;
  /** How long a buffered row may wait for a slot (BUFFER_MAX_WAIT_MS). */
  private readonly bufferWaitMs: number;
  /** Rows the last claim leased (the loop claims again at once while claims find work). */
  private lastClaimed = 0;
  private claimChain: Promise<unknown> = Promise.resolve();
  /**
   * Launches from the buffer run one at a time (their own chain, not the claims'): a slot freed
   * while a claim transaction is under way is filled from the buffer without waiting for it.
   */
  private launchChain: Promise<unknown> = Promise.resolve();
  private launchScheduled = false;
  /** Rows taken from the buffer and being loaded, per endpoint: still committed, about to be in flight. */
  private readonly launching = new Map<string, number>();
  private launchingTotal = 0;
  private readonly records: TryRecord[] = [];
  private flushing: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  /** A wake-up came while the loop was busy claiming: do not sleep through it. */
  private poked = false;
  private readonly onBus = () => {
    this.queuedHere = true;
    this.poke();
  };
  /** Work was queued in this process since the last look (the bus): look even if the last one found nothing. */
  private queuedHere = false;
  /**
   * The last look of the background loop that found nothing due outside the endpoints it left out
   * (performance.now(), and which it left out). Such a look walks every due row of the endpoints
   * left out (a busy endpoint's whole backlog): repeated on every freed slot it would cost more
   * than the tries. So it is repeated only after idleMs, on the bus, or when an endpoint left out
   * then may take rows now.
   */
  private fruitless: { atMs: number; excluded: Set<string> } | null = null;

  constructor(
    private readonly rt: Runtime,
    overrides: Partial<DispatcherOptions> = {},
  ) {
    this.options = dispatcherOptions(rt, overrides);
    this.bufferWaitMs = Math.max(LAUNCH_GRACE_MS, Math.min(BUFFER_MAX_WAIT_MS, this.options.leaseMs - this.options.timeoutMs - 1_000));
    const agentOptions = (lookup: typeof publicOnlyLookup | null): Agent.Options => ({
      keepAliveTimeout: 4_000,
      // Our own bounds decide how many tries run; the agent must not queue them behind each other
      // (endpoints may share an origin).
      connections: this.options.concurrency,
      connect: { timeout: Math.min(this.options.timeoutMs, 10_000), ...(lookup ? { lookup } : {}) },
      headersTimeout: this.options.timeoutMs,
      bodyTimeout: this.options.timeoutMs,
    });
    this.agent = new Agent(agentOptions(this.options.allowPrivate ? null : testModeLookup));
    this.liveAgent = this.options.allowPrivate ? this.agent : new Agent(agentOptions(publicOnlyLookup));
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
    const started = await this.claimAndStart(false);
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

  /** Stops the loop, gives back buffered rows, waits for (or aborts) the tries in flight. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.stopOnce();
    return this.stopped;
  }

  private async stopOnce(): Promise<void> {
    this.stopping = true;
    this.rt.bus.off('webhook', this.onBus);
    this.poke();
    await this.loop;
    await this.claimChain;
    await this.launchChain;
    // Buffered rows go back now rather than when their leases run out.
    const buffered = [...this.buffer.values()].flat();
    this.buffer.clear();
    this.bufferedTotal = 0;
    await this.releaseLeases(buffered);
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
      for (const post of this.onWire) post.abort(this.abort.signal.reason);
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
      this.poked = false;
      this.lastClaimed = 0;
      try {
        await this.claimAndStart(true);
      } catch (err) {
        this.rt.log.error({ err }, 'webhook dispatcher: claiming deliveries failed');
        await this.sleep(ERROR_BACKOFF_MS);
        continue;
      }
      if (this.stopping) break;
      if (this.lastClaimed > 0 && (this.freeSlots() > 0 || this.wantsAhead())) {
        // More may be due: claim again at once, but let I/O callbacks (the API) run first.
        await nextTurn();
        continue;
      }
      await this.sleep(this.options.idleMs);
      // The answers that arrived in this turn free their slots before the next step: one step
      // (one load query) for all of them rather than one each.
      await nextTurn();
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
    const unrecorded = this.inFlight.size - this.sending;
    const taken = this.sending + this.launchingTotal;
    return Math.min(this.options.concurrency - taken, this.options.concurrency + MAX_UNRECORDED - taken - unrecorded);
  }

  /**
   * One step at a time per dispatcher, so slot counts never go stale between claim and launch:
   * first the buffered rows that fit the free slots are sent (no claim transaction in the way),
   * then, if slots are still free (or `ahead` and a saturated endpoint's buffer runs low), a claim
   * leases more and what fits is sent at once.
   */
  private claimAndStart(ahead = false): Promise<Promise<void>[]> {
    const next = this.claimChain.then(async () => {
      if (this.stopping) return [];
      const started = await this.launchFromBuffer();
      const free = this.freeSlots();
      if (this.stopping || (free <= 0 && !(ahead && this.wantsAhead()))) return started;
      this.lastClaimed = await this.claim(free, ahead);
      if (this.lastClaimed > 0) started.push(...(await this.launchFromBuffer()));
      return started;
    });
    this.claimChain = next.catch(() => undefined);
    return next;
  }

  private launch(c: Claimed, cap: number): Promise<void> {
    this.perEndpoint.set(c.endpoint_id, (this.perEndpoint.get(c.endpoint_id) ?? 0) + 1);
    this.sending++;
    if (!this.caps.has(c.endpoint_id)) this.caps.set(c.endpoint_id, cap);
    let answered = false;
    /** The request is over (answered, failed or never sent): its slot is free for the next one. */
    const freeSlot = () => {
      if (answered) return;
      answered = true;
      this.sending--;
      const n = (this.perEndpoint.get(c.endpoint_id) ?? 1) - 1;
      if (n > 0) this.perEndpoint.set(c.endpoint_id, n);
      else {
        this.perEndpoint.delete(c.endpoint_id);
        this.caps.delete(c.endpoint_id);
      }
      // The background loop refills the slot from the buffer at once (and claims when it runs low).
      if (this.loop !== null) this.scheduleLaunch();
      this.poke();
    };
    const task: Promise<void> = this.deliver(c, freeSlot)
      .catch((err: unknown) => this.rt.log.error({ err, delivery: c.id }, 'webhook delivery could not be recorded; it is retried after its lease'))
      .finally(() => {
        freeSlot();
        this.inFlight.delete(task);
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
    return this.caps.get(endpointId) ?? this.buffer.get(endpointId)?.[0]?.cap ?? this.options.perEndpointConcurrency;
  }

  /**
   * Rows an endpoint may hold leased beyond its in-flight bound: CLAIM_AHEAD_FACTOR times the bound while
   * its breaker is closed; none while it is open (one try at a time, nothing to keep ready), nor
   * when the lease leaves no time to wait (bufferWaitMs).
   */
  private aheadCapOf(endpointId: string, cap = this.capOf(endpointId)): number {
    return this.bufferWaitMs >= CLAIM_AHEAD_MIN_WAIT_MS && cap >= this.options.perEndpointConcurrency
      ? Math.min(CLAIM_AHEAD_FACTOR * cap, this.options.concurrency)
      : 0;
  }

  private bufferedOf(endpointId: string): number {
    return this.buffer.get(endpointId)?.length ?? 0;
  }

  /** Tries in flight plus rows leased and waiting, per endpoint. */
  private committed(endpointId: string): number {
    return (this.perEndpoint.get(endpointId) ?? 0) + this.bufferedOf(endpointId) + (this.launching.get(endpointId) ?? 0);
  }

  /** The most rows a claim may lease for one endpoint now: up to its bound, and its share ahead with `ahead`. */
  private mayTake(endpointId: string, ahead: boolean): number {
    const cap = this.capOf(endpointId);
    return cap + (ahead ? this.aheadCapOf(endpointId, cap) : 0) - this.committed(endpointId);
  }

  /**
   * Whether a claim with `free` slots and `aheadRoom` rows of buffer room could lease a row of this
   * endpoint: claim's two picks, in short. For a free slot, while the endpoint holds less than its
   * bound, and, once it holds any, only outside the reserve. Ahead, only while the buffer has room,
   * and only once half of its own share ahead is used, so that one claim takes many rows.
   */
  private mayLeaseAny(endpointId: string, free: number, aheadRoom: number, reserve: number): boolean {
    const cap = this.capOf(endpointId);
    const held = this.committed(endpointId);
    const forSlot = free > 0 && held < cap && (held === 0 || free > reserve);
    const forAhead = aheadRoom > 0 && held < cap + Math.floor(this.aheadCapOf(endpointId, cap) / 2);
    return forSlot || forAhead;
  }

  private reserve(): number {
    return Math.floor(this.options.concurrency / RESERVE_SHARE);
  }

  /** A saturated endpoint (every slot in flight) whose buffer fell to half: claim ahead for it. */
  private wantsAhead(): boolean {
    if (this.bufferedTotal >= this.options.concurrency) return false;
    for (const [endpointId, n] of this.perEndpoint) {
      const cap = this.capOf(endpointId);
      const aheadCap = this.aheadCapOf(endpointId, cap);
      if (aheadCap > 0 && n >= cap && this.bufferedOf(endpointId) <= aheadCap / 2) return true;
    }
    return false;
  }

  /**
   * Leases due deliveries into the buffer: first as many as there are free slots (round-robin over
   * endpoints, the reserve kept for idle ones: Fairness above), then, with `ahead`, up to each
   * saturated endpoint's aheadCapOf (round-robin too, at most `concurrency` rows buffered in all).
   * Returns the number of rows leased. Nothing is sent here: launchBuffered sends.
   */
  private async claim(free: number, ahead: boolean): Promise<number> {
    const { db, engine } = this.rt.store;
    const nowMs = this.rt.clock.nowMs();
    const reserve = this.reserve();
    const aheadRoom = ahead ? Math.max(0, this.options.concurrency - this.bufferedTotal) : 0;
    if (free <= 0 && aheadRoom <= 0) return 0;
    // Endpoints this claim can lease nothing for are left out of the candidates, by the very rules
    // the picks below apply: were they read, their older rows would fill the candidate window and
    // an endpoint that could take a row would never be among them (dead receivers with a backlog
    // and a full buffer left free slots idle). Bounded: at most `concurrency` endpoints are busy
    // and as many have buffered rows.
    const excluded = [...new Set([...this.perEndpoint.keys(), ...this.buffer.keys()])].filter((id) => !this.mayLeaseAny(id, free, aheadRoom, reserve));
    /** Deliveries due now, of the endpoints `only` (all when null). */
    const due = (qb: Db, only: string[] | null) => {
      const q = qb.selectFrom('webhook_deliveries').where('next_attempt_ms', '<=', nowMs);
      return only !== null ? q.where('endpoint_id', 'in', only).where('status', '=', 'pending') : q;
    };
    const excludedSet = new Set(excluded);
    const last = this.fruitless;
    const lastStillHolds = last !== null && !this.queuedHere && performance.now() - last.atMs < this.options.idleMs;
    let only: string[] | null = null;
    if (ahead && lastStillHolds) {
      // The last look found nothing due outside the endpoints it left out, and it still holds
      // (within idleMs, nothing queued here since): what is due now is theirs. Read only the rows
      // of those that may take some now, as many as each may take, instead of walking the due
      // index past rows nobody may take (one busy endpoint with a backlog: 256 rows read to lease
      // 8). The look itself is made again once it is idleMs old, as an idle poll would be. None of
      // them may take any (all left out again): nothing to do until a slot frees or the look is old.
      only = [...last.excluded].filter((id) => !excludedSet.has(id));
      if (only.length === 0) return 0;
    } else {
      this.queuedHere = false;
      this.fruitless = null;
      // Cheap look first: an idle poll must not take SQLite's write lock. With endpoints left out,
      // not "the first due row not theirs" (that walks a busy endpoint's whole backlog in the due
      // index) but the endpoints with a due row, one index probe each (endpoint, status, created),
      // and the candidates then come from those endpoints only.
      if (excluded.length === 0) {
        if (!(await due(db, null).select('id').limit(1).executeTakeFirst())) return 0;
      } else {
        only = (
          await db
            .selectFrom('webhook_endpoints as ep')
            .select('ep.id')
            .where('ep.id', 'not in', excluded)
            .where((eb) =>
              eb.exists(
                eb
                  .selectFrom('webhook_deliveries as d')
                  .select('d.id')
                  .whereRef('d.endpoint_id', '=', 'ep.id')
                  .where('d.status', '=', 'pending')
                  .where('d.next_attempt_ms', '<=', nowMs),
              ),
            )
            .limit(MAX_CANDIDATES)
            .execute()
        ).map((r) => r.id);
        if (only.length === 0) {
          if (ahead) this.fruitless = { atMs: performance.now(), excluded: excludedSet };
          return 0;
        }
      }
    }
    // Rows of other endpoints are skipped, not taken, so several endpoints' rows are read
    // CANDIDATES_PER_SLOT times over; one named endpoint's rows need no more than it may take.
    let readAtMost = Math.min((free + aheadRoom) * CANDIDATES_PER_SLOT, MAX_CANDIDATES);
    if (only?.length === 1) readAtMost = Math.min(readAtMost, Math.max(1, this.mayTake(only[0]!, aheadRoom > 0)));

    const leaseUntil = nowMs + this.options.leaseMs;
    const taken = await this.rt.store.transaction(async (trx) => {
      // For named endpoints in the order of their index (endpoint, status, created): the rows of
      // one endpoint come without a sort, oldest first.
      let q = due(trx, only)
        .select(['id', 'endpoint_id', 'next_attempt_ms'])
        .orderBy(only === null ? 'next_attempt_ms' : 'created')
        .limit(readAtMost);
      if (engine === 'postgres') q = q.forUpdate().skipLocked();
      const candidates = await q.execute();
      if (candidates.length === 0) return [];
      const queues = new Map<string, { id: string; dueMs: number }[]>();
      for (const c of candidates) {
        const row = { id: c.id, dueMs: Number(c.next_attempt_ms) };
        const queue = queues.get(c.endpoint_id);
        if (queue) queue.push(row);
        else queues.set(c.endpoint_id, [row]);
      }
      const states = await trx.selectFrom('webhook_endpoints').select(['id', 'failure_streak']).where('id', 'in', [...queues.keys()]).execute();
      // An endpoint row that is gone still gets one pick, so its delivery is canceled when loaded.
      const capOf = new Map<string, number>([...queues.keys()].map((id) => [id, 1]));
      for (const st of states) {
        const cap = Math.min(this.capForStreak(st.failure_streak), this.capOf(st.id));
        capOf.set(st.id, cap);
        // Another process's failures may have opened the breaker: the next claim's exclusions follow.
        if (this.caps.has(st.id)) this.caps.set(st.id, cap);
      }
      const counts = new Map<string, number>();
      const picked: Leased[] = [];
      const take = (endpointId: string, row: { id: string; dueMs: number }, cap: number) => {
        picked.push({ id: row.id, endpointId, leaseMs: leaseUntil, dueMs: row.dueMs, cap, claimedMs: nowMs });
        counts.set(endpointId, (counts.get(endpointId) ?? 0) + 1);
      };
      // For the free slots: an endpoint stops at its cap; a busy one does not take the reserve.
      this.pickRoundRobin(queues, free, (endpointId, n) => {
        const cap = capOf.get(endpointId)!;
        const held = this.committed(endpointId) + (counts.get(endpointId) ?? 0);
        if (held >= cap || (held > 0 && n >= free - reserve)) return false;
        return (row) => take(endpointId, row, cap);
      });
      // Ahead, for endpoints whose slots are all taken: their next rows, ready when a slot frees.
      if (aheadRoom > 0) {
        this.pickRoundRobin(queues, aheadRoom, (endpointId) => {
          const cap = capOf.get(endpointId)!;
          if (this.committed(endpointId) + (counts.get(endpointId) ?? 0) >= cap + this.aheadCapOf(endpointId, cap)) return false;
          return (row) => take(endpointId, row, cap);
        });
      }
      if (picked.length > 0) {
        await trx.updateTable('webhook_deliveries').set({ next_attempt_ms: leaseUntil, lease_ms: leaseUntil }).where('id', 'in', picked.map((p) => p.id)).execute();
      }
      return picked;
    });
    for (const row of taken) {
      const queue = this.buffer.get(row.endpointId);
      if (queue) queue.push(row);
      else this.buffer.set(row.endpointId, [row]);
    }
    this.bufferedTotal += taken.length;
    return taken.length;
  }

  /**
   * Passes over the queues one row per endpoint per pass (endpoints in the order of their oldest
   * due row) until `max` rows are taken or no endpoint takes one. `admit(endpoint, takenSoFar)`
   * returns false to skip the endpoint in this pass, or the function that takes the row.
   */
  private pickRoundRobin<T>(queues: Map<string, T[]>, max: number, admit: (endpointId: string, taken: number) => false | ((row: T) => void)): number {
    let taken = 0;
    for (let progress = true; progress && taken < max; ) {
      progress = false;
      for (const [endpointId, queue] of queues) {
        if (taken >= max) break;
        if (queue.length === 0) continue;
        const takeRow = admit(endpointId, taken);
        if (!takeRow) continue;
        takeRow(queue.shift()!);
        taken++;
        progress = true;
      }
    }
    return taken;
  }

  /** launchBuffered, after any launch under way (launchChain). */
  private launchFromBuffer(): Promise<Promise<void>[]> {
    const next = this.launchChain.then(() => (this.stopping && this.loop !== null ? [] : this.launchBuffered()));
    this.launchChain = next.catch(() => undefined);
    return next;
  }

  /** One launch from the buffer after this turn's I/O, for every slot freed in it. */
  private scheduleLaunch(): void {
    if (this.launchScheduled || this.stopping || this.bufferedTotal === 0) return;
    this.launchScheduled = true;
    setImmediate(() => {
      this.launchScheduled = false;
      this.launchFromBuffer().catch((err: unknown) => this.rt.log.error({ err }, 'webhook dispatcher: sending buffered deliveries failed'));
    });
  }

  /**
   * Sends buffered rows into the free slots, round-robin over endpoints, each endpoint within its
   * cap and the reserve kept for idle endpoints. A row read less than LOADED_FRESH_MS ago goes out
   * at once; the others are loaded (body, endpoint) in one query for all of them, which also checks
   * that each still carries its lease: a row re-queued, canceled or taken over since it was claimed
   * is dropped, not sent. The same query reads the rows next in line (pickLoadAhead). A row that
   * waited longer than bufferWaitMs is given back instead (releaseLeases): its try might outlive
   * its lease.
   */
  private async launchBuffered(): Promise<Promise<void>[]> {
    const free = this.freeSlots();
    if (free <= 0 || this.bufferedTotal === 0) return [];
    const reserve = this.reserve();
    const nowMs = this.rt.clock.nowMs();
    const stale: Leased[] = [];
    for (const [endpointId, queue] of this.buffer) {
      while (queue.length > 0 && nowMs - queue[0]!.claimedMs > this.bufferWaitMs) stale.push(queue.shift()!);
      if (queue.length === 0) this.buffer.delete(endpointId);
    }
    const counts = new Map<string, number>();
    const picked: Leased[] = [];
    this.pickRoundRobin(this.buffer, free, (endpointId, n) => {
      const inFlight = (this.perEndpoint.get(endpointId) ?? 0) + (counts.get(endpointId) ?? 0);
      if (inFlight >= this.capOf(endpointId) || (inFlight > 0 && n >= free - reserve)) return false;
      return (row) => {
        picked.push(row);
        counts.set(endpointId, (counts.get(endpointId) ?? 0) + 1);
      };
    });
    for (const [endpointId, queue] of this.buffer) if (queue.length === 0) this.buffer.delete(endpointId);
    this.bufferedTotal -= stale.length + picked.length;
    const readAtMs = performance.now();
    const fresh = (l: Leased) => l.loaded !== undefined && readAtMs - l.loaded.atMs <= this.options.loadedFreshMs;
    const started = picked.filter(fresh).map((l) => this.launch(l.loaded!.c, l.cap));
    const toLoad = picked.filter((l) => !fresh(l));
    const ahead = this.pickLoadAhead(counts.keys(), fresh);
    const loading = new Map<string, number>();
    for (const l of toLoad) loading.set(l.endpointId, (loading.get(l.endpointId) ?? 0) + 1);
    for (const [endpointId, n] of loading) this.launching.set(endpointId, (this.launching.get(endpointId) ?? 0) + n);
    this.launchingTotal += toLoad.length;
    try {
      if (stale.length > 0) await this.releaseLeases(stale);
      if (toLoad.length === 0 && ahead.length === 0) return started;
      const loaded = await this.load(toLoad, ahead);
      return [...started, ...loaded.map(({ c, cap }) => this.launch(c, cap))];
    } finally {
      for (const [endpointId, n] of loading) {
        const left = (this.launching.get(endpointId) ?? n) - n;
        if (left > 0) this.launching.set(endpointId, left);
        else this.launching.delete(endpointId);
      }
      this.launchingTotal -= toLoad.length;
    }
  }

  /**
   * Rows to read ahead (load, LOADED_FRESH_MS): for each endpoint sending now whose line holds less
   * than a round of its slots read and fresh, the rows of its next two rounds not read ahead yet.
   * One query then serves a round or more of its tries, and a freed slot sends at once.
   * With a signing thread their signatures start then too (signAhead): two rounds because with
   * one, measured, the thread was still signing a slot's next row when the slot freed (~2,400
   * against ~2,900 deliveries/s); the whole buffer, four rounds, gained nothing more and would queue
   * more signatures ahead of another endpoint's.
   */
  private pickLoadAhead(endpoints: Iterable<string>, fresh: (l: Leased) => boolean): Leased[] {
    const ahead: Leased[] = [];
    for (const endpointId of endpoints) {
      const cap = this.capOf(endpointId);
      const next = this.buffer.get(endpointId)?.slice(0, 2 * cap) ?? [];
      if (next.filter(fresh).length >= cap) continue;
      for (const row of next) {
        if (row.readAhead) continue;
        row.readAhead = true;
        ahead.push(row);
      }
    }
    return ahead;
  }

  /**
   * Starts the signatures of buffered rows' events in a signing thread (sign-pool.ts), so each is
   * ready, or under way, when a slot frees for its row: the endpoint's in-flight bound then bounds
   * the requests on the wire, not the signatures queued for them. The key is looked up once per
   * account. Only where no signature by the key in force is stored; at most `concurrency`
   * signatures under way. A failure (the key cannot be read, the thread died) is left for the try:
   * signatureFor signs again, or records why not.
   */
  private signAhead(rows: readonly AheadRow[]): void {
    const byAccount = new Map<string, AheadRow[]>();
    for (const r of rows) {
      const theirs = byAccount.get(r.account_id);
      if (theirs) theirs.push(r);
      else byAccount.set(r.account_id, [r]);
    }
    for (const [accountId, theirs] of byAccount) {
      const withKey = (key: SigningKey) => {
        if (!key.privateKey) return;
        for (const r of theirs) {
          if (storedSignatureBy(key, r)) continue;
          if (this.signing.size >= this.options.concurrency) return;
          const cacheKey = signatureCacheKey(key, r.event_id);
          if (this.signatures.get(cacheKey) === undefined) this.signOnce(cacheKey, key, r.body, true).catch(() => undefined);
        }
      };
      const cached = cachedSigningKeyFor(this.rt, accountId);
      if (cached) withKey(cached);
      else signingKeyFor(this.rt, accountId).then(withKey, () => undefined);
    }
  }

  /**
   * The signature under `cacheKey`, made once however many ask while it is being made; `ahead`
   * when no try waits for it yet (the pool then keeps it queued while its threads are busy, so it
   * does not hold up the API's answers or a try due now).
   */
  private signOnce(cacheKey: string, key: SigningKey, body: string, ahead = false): Promise<string> {
    const under = this.signing.get(cacheKey);
    if (under) return under.made;
    // In a signing thread when the process has a spare core (sign-pool.ts), so deliveries and the
    // event loop's other work go on while it signs.
    const pending = key.privateKey ? sharedSignPool().sign(key.privateKey, Buffer.from(body, 'utf8'), { ahead }) : null;
    const made = (async () => {
      const fresh = pending ? await pending : key.sign(body);
      return this.signatures.getOrSet(cacheKey, () => fresh);
    })().finally(() => this.signing.delete(cacheKey));
    this.signing.set(cacheKey, { made, pending });
    return made;
  }

  /**
   * signOnce for a try about to be sent. A signature started ahead that still waits in the pool's
   * queue goes to a thread now (hurry), before the ones asked for ahead of it.
   */
  private signNow(cacheKey: string, key: SigningKey, body: string): Promise<string> {
    const pending = this.signing.get(cacheKey)?.pending;
    if (pending) sharedSignPool().hurry(pending);
    return this.signOnce(cacheKey, key, body);
  }

  /**
   * The rows to send, with their bodies and endpoints; rows no longer ours or not sendable are left
   * out. The rows `ahead` (still buffered, not sent now) are read in the same query; those still
   * ours and sendable keep what was read (Leased.loaded) and, when a signing thread signs beside the
   * event loop, have their signatures started (none without a thread: on the event loop a
   * signature made ahead is the same work).
   */
  private async load(leased: readonly Leased[], ahead: readonly Leased[] = []): Promise<{ c: Claimed; cap: number }[]> {
    const byId = new Map(leased.map((l) => [l.id, l]));
    const aheadById = new Map(ahead.map((l) => [l.id, l]));
    const readAtMs = performance.now();
    // Raw SQL: this runs for every group of tries sent (often one or two rows), and building the
    // same joined query with the query builder cost more than running it.
    const rows = (
      await sql<LoadedRow>`
        select d.id, d.event_id, d.endpoint_id, d.attempts, d.lease_ms, ep.url, ep.livemode, ep.secret, ep.disabled, ep.auto_disabled_ms,
               e.account_id, e.body, e.signature, e.signature_kid
          from webhook_deliveries d
          join events e on e.id = d.event_id
          join webhook_endpoints ep on ep.id = d.endpoint_id
         where d.id in (${sql.join([...byId.keys(), ...aheadById.keys()])})`.execute(this.rt.store.db)
    ).rows;
    const claimed: { c: Claimed; cap: number }[] = [];
    const mine = new Map(byId);
    const paused: Leased[] = [];
    const toSign: AheadRow[] = [];
    const signsAhead = sharedSignPool().hasThreads;
    // Re-queued or removed since it was claimed: whoever did that also cleared the lease.
    const stillOurs = (r: LoadedRow, l: Leased) => r.lease_ms !== null && Number(r.lease_ms) === l.leaseMs;
    const sendable = (r: LoadedRow) => !r.disabled && r.auto_disabled_ms === null;
    const toClaimed = (r: LoadedRow, l: Leased): Claimed => {
      const { disabled: _d, auto_disabled_ms: _a, ...c } = r;
      return { ...c, lease_ms: l.leaseMs };
    };
    for (const r of rows) {
      const l = byId.get(r.id);
      if (l === undefined) {
        const a = aheadById.get(r.id);
        if (a === undefined || !stillOurs(r, a) || !sendable(r)) continue;
        a.loaded = { c: toClaimed(r, a), atMs: readAtMs };
        if (signsAhead) toSign.push(r);
        continue;
      }
      if (!stillOurs(r, l)) mine.delete(r.id);
      else if (sendable(r)) {
        claimed.push({ c: toClaimed(r, l), cap: l.cap });
        mine.delete(r.id);
      } else if (!r.disabled) {
        paused.push(l);
        mine.delete(r.id);
      }
    }
    if (toSign.length > 0) this.signAhead(toSign);
    // Left: still ours, but its endpoint is disabled or its endpoint or event row is gone. Nothing
    // will ever be sent for it; cancel it as removal would, or it would be claimed again each lease.
    // A delivery queued for an endpoint while it was being auto-disabled fails as its others did.
    if (mine.size > 0) await this.cancelOrphans([...mine.values()], 'canceled');
    if (paused.length > 0) await this.cancelOrphans(paused, 'failed');
    return claimed;
  }

  private async cancelOrphans(rows: readonly Leased[], status: 'canceled' | 'failed'): Promise<void> {
    const canceled = await this.rt.store.transaction(async (trx) => {
      const done = await updateLeased(trx, rows, sql`status = ${text(status)}, next_attempt_ms = null, lease_ms = null`);
      await updateEvents(trx, done.map((r) => ({ eventId: r.event_id, signature: null, finished: true })));
      return done;
    });
    if (canceled.length > 0) {
      this.rt.log.warn({ deliveries: canceled.map((r) => r.id), status }, `webhook deliveries ${status}: their endpoint is disabled or gone`);
    }
  }

  /**
   * Gives buffered rows back unsent: due again at the time they were due, lease cleared (only
   * where the row still carries our lease). If this fails, the leases run out and bring them back.
   */
  private async releaseLeases(rows: readonly Leased[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.rt.store.transaction((trx) => updateLeased(trx, rows, sql`next_attempt_ms = v.due_ms, lease_ms = null`));
    } catch (err) {
      this.rt.log.warn({ err, deliveries: rows.length }, 'webhook dispatcher: could not give back buffered deliveries; their leases will run out');
    }
  }

  private async deliver(c: Claimed, freeSlot: () => void): Promise<void> {
    const attemptedMs = this.rt.clock.nowMs();
    let made: MadeSignature | null = null;
    let headers: Record<string, string>;
    try {
      const signed = await this.signatureFor(c);
      made = signed.made;
      headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT, [PLATFORM_SIGNATURE_HEADER]: signed.signature };
      if (c.secret !== null) Object.assign(headers, standardWebhookHeaders(this.keyFor(c.secret), c.event_id, Math.floor(attemptedMs / 1000), c.body));
    } catch (err) {
      // Nothing was sent; still a try, so a secret that never opens (sealed with another master key)
      // runs out the schedule instead of being claimed again after every lease.
      const error = `could not sign: ${err instanceof Error ? err.message : String(err)}`.slice(0, ERROR_TEXT_MAX);
      freeSlot();
      await this.record(c, attemptedMs, 0, { statusCode: null, responseBody: null, error }, made, false);
      return;
    }

    const started = performance.now();
    const outcome = await this.post(c, headers);
    const durationMs = Math.round(performance.now() - started);
    freeSlot();
    // Stopped the hard way: leave the delivery leased; it is sent again when the lease runs out.
    if (this.abort.signal.aborted) return;
    await this.record(c, attemptedMs, durationMs, outcome, made, true);
  }

  private async post(c: Claimed, headers: Record<string, string>): Promise<Outcome> {
    const live = c.livemode === 1;
    const failed = (err: unknown): Outcome => ({ statusCode: null, responseBody: null, error: describeError(err, this.options.timeoutMs) });
    let url: URL;
    try {
      url = new URL(c.url);
      if (!this.options.allowPrivate) {
        // net.connect does not resolve an IP literal, so the lookup hook never sees it: check here.
        const allowed = destinationRule(live);
        const literal = refusedLiteral(url, allowed);
        if (literal !== null) throw privateDestinationError(urlHost(url), literal, allowed);
      }
    } catch (err) {
      return failed(err);
    }
    if (this.abort.signal.aborted) return failed(this.abort.signal.reason);
    // One timer per try bounds all of it, the answer's body included (post.ts).
    const post = postOnce(live ? this.liveAgent : this.agent, url, headers, c.body, {
      timeoutMs: this.options.timeoutMs, keepBytes: RESPONSE_PREFIX_BYTES, drainBytes: RESPONSE_DRAIN_BYTES,
    });
    this.onWire.add(post);
    try {
      const answer = await post.answer;
      return { statusCode: answer.statusCode, responseBody: answer.body, error: answer.error === null ? null : describeError(answer.error, this.options.timeoutMs) };
    } finally {
      this.onWire.delete(post);
    }
  }

  /**
   * Records a finished try. Tries finishing close together share one transaction (group commit):
   * on SQLite every commit is an fsync that also holds up the event loop (~1 ms with
   * synchronous=FULL on this VM kind), so one commit per try would cap delivery at a few hundred
   * a second and stall the API; per batch it is one commit for up to RECORD_BATCH tries.
   */
  private async record(c: Claimed, attemptedMs: number, durationMs: number, o: Outcome, signature: MadeSignature | null, sent: boolean): Promise<void> {
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
    if (fenced && status === 'succeeded') return;
    // Built only when something is logged: redactedUrl parses the URL.
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
      // Let the tries that finish in this turn join the batch; while many requests are still on
      // the wire their answers are due within milliseconds: wait a little for them too (bounded),
      // so a commit carries many tries. Slots are not held meanwhile (launch), only the records.
      await nextTurn();
      while (this.records.length > 0) {
        // Failures are written at once: the circuit breaker follows the recorded run of failures.
        if (this.records.length < RECORD_BATCH / 4 && this.sending > 0 && !this.stopping && this.records.every((r) => r.status === 'succeeded')) {
          await new Promise((resolve) => setTimeout(resolve, RECORD_GATHER_MS));
        }
        // A power of two: the batch statements' text depends on the count, and SQLite keeps a
        // prepared statement per text (store/db.ts); eight sizes instead of 128.
        const batch = this.records.splice(0, 2 ** Math.floor(Math.log2(Math.min(this.records.length, RECORD_BATCH))));
        observeWebhookRecordBatch(batch.length);
        try {
          const { fenced, streaks } = await this.writeRecords(batch);
          // The breaker of an endpoint with tries still in flight follows its latest recorded run.
          for (const [endpointId, streak] of streaks) {
            const cap = this.capForStreak(streak);
            if (this.caps.has(endpointId)) this.caps.set(endpointId, cap);
            for (const row of this.buffer.get(endpointId) ?? []) row.cap = cap;
          }
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

  /**
   * One transaction, a fixed number of statements whatever the batch size: the tries (one INSERT),
   * the deliveries (one UPDATE … FROM a list of values, fenced: a row is updated only while it
   * carries the lease its try was claimed with; RETURNING says which were), the events (one UPDATE:
   * the signature a try made for each, and pending_webhooks less the deliveries that finished), then the
   * endpoints' health (one statement per endpoint in the batch).
   */
  private writeRecords(batch: readonly TryRecord[]): Promise<{ fenced: boolean[]; streaks: Map<string, number> }> {
    return this.rt.store.transaction(async (trx) => {
      await trx
        .insertInto('webhook_attempts')
        .values(
          batch.map((r) => ({
            id: newTimeOrderedId('wha', r.attemptedMs), delivery_id: r.c.id, attempted_ms: r.attemptedMs, status_code: r.o.statusCode,
            response_body: r.o.responseBody, duration_ms: r.durationMs, error: r.o.error,
          })),
        )
        .execute();
      const values = batch.map(
        (r) => sql`(${text(r.c.id)}, ${int(r.c.lease_ms)}, ${text(r.status)}, ${int(r.made)}, ${int(r.nextMs)}, ${int(r.attemptedMs)}, ${int(r.o.statusCode)})`,
      );
      const updated = await sql<{ id: string }>`
        with v(id, lease_ms, status, attempts, next_attempt_ms, last_attempt_ms, last_status_code) as (values ${sql.join(values)})
        update webhook_deliveries
           set status = v.status, attempts = v.attempts, next_attempt_ms = v.next_attempt_ms, lease_ms = null,
               last_attempt_ms = v.last_attempt_ms, last_status_code = v.last_status_code
          from v
         where webhook_deliveries.id = v.id and webhook_deliveries.lease_ms = v.lease_ms
        returning webhook_deliveries.id`.execute(trx);
      const recorded = new Set(updated.rows.map((r) => r.id));
      const fenced = batch.map((r) => recorded.has(r.c.id));
      await updateEvents(
        trx,
        batch.map((r, i) => ({
          eventId: r.c.event_id,
          signature: r.signature,
          finished: fenced[i]! && r.status !== 'pending',
        })),
      );
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

  /**
   * The signature a try carries: made with the key that signs for the event's account now (its own
   * key when it has one, else the platform key; signing-keys.ts). The stored one when that key made
   * it (no RSA: a map lookup while this process's cache of the account is fresh, one read of its
   * row every SIGNING_KEY_TTL_MS otherwise); else signed now, once per event, key and process, and
   * `made` for the try's record to store in place of the old one. So after a key switch each event
   * still waiting is signed once more, at its next try, and a resend of an older event (re-queued by
   * events.ts) is signed with the key in force, not the one it was first signed with.
   *
   * Other processes: one whose cache of the account is older than the switch signs with the old key
   * until its cache expires (SIGNING_KEY_TTL_MS), as it does its API responses, and may store that
   * signature (a try in flight during the switch may too); the next try after that window sees
   * another kid than the key in force and signs again. Its in-memory signatures are keyed by kid,
   * so none made with the old key is reused past that window either.
   */
  private async signatureFor(c: Claimed): Promise<{ signature: string; made: MadeSignature | null }> {
    let key: SigningKey;
    try {
      key = cachedSigningKeyFor(this.rt, c.account_id) ?? (await signingKeyFor(this.rt, c.account_id));
    } catch (err) {
      // The key cannot be had (the database away and this process never read the account): the
      // stored signature may well still verify, a try with none surely fails.
      if (c.signature !== null) return { signature: c.signature, made: null };
      throw err;
    }
    if (storedSignatureBy(key, c)) return { signature: c.signature, made: null };
    const cacheKey = signatureCacheKey(key, c.event_id);
    const signature = this.signatures.get(cacheKey) ?? (await this.signNow(cacheKey, key, c.body));
    return { signature, made: { signature, kid: key.kid } };
  }

  /** Standard Webhooks keys are stored sealed with the master key; opened once per process. */
  private keyFor(sealed: string): Buffer {
    return this.keys.getOrSet(sealed, () => standardWebhookKey(this.rt.box.open(sealed)));
  }
}

const text = (v: string | null) => sql`cast(${v} as text)`;
const int = (v: number | null) => sql`cast(${v} as bigint)`;

/**
 * `UPDATE webhook_deliveries SET <set>` for leased rows, each only while it still carries the lease
 * it was claimed with (the fence: a row re-queued, canceled or taken over meanwhile is left alone),
 * RECORD_BATCH rows per statement; `set` may read `v.due_ms`, the row's due time before its claim.
 * Returns the rows updated.
 */
async function updateLeased(trx: Db, rows: readonly Leased[], set: RawBuilder<unknown>): Promise<{ id: string; event_id: string }[]> {
  const done: { id: string; event_id: string }[] = [];
  for (let i = 0; i < rows.length; i += RECORD_BATCH) {
    const values = rows.slice(i, i + RECORD_BATCH).map((r) => sql`(${text(r.id)}, ${int(r.leaseMs)}, ${int(r.dueMs)})`);
    const { rows: updated } = await sql<{ id: string; event_id: string }>`
      with v(id, lease_ms, due_ms) as (values ${sql.join(values)})
      update webhook_deliveries
         set ${set}
        from v
       where webhook_deliveries.id = v.id and webhook_deliveries.lease_ms = v.lease_ms
      returning webhook_deliveries.id, webhook_deliveries.event_id`.execute(trx);
    done.push(...updated);
  }
  return done;
}

/**
 * Per event, in one statement: a signature a try made is stored when the event has none, or one
 * made with another key (signature_kid); one made with the same key is kept (the first stays, as
 * other processes may be sending it). Each finished delivery is taken out of pending_webhooks
 * (never below 0). Of two signatures for one event in a batch (a key switch between its tries),
 * the later one is stored.
 */
async function updateEvents(trx: Db, changes: readonly { eventId: string; signature: MadeSignature | null; finished: boolean }[]): Promise<void> {
  const events = new Map<string, { signature: MadeSignature | null; finished: number }>();
  for (const c of changes) {
    const e = events.get(c.eventId) ?? { signature: null, finished: 0 };
    if (c.signature !== null) e.signature = c.signature;
    if (c.finished) e.finished += 1;
    events.set(c.eventId, e);
  }
  const rows = [...events].filter(([, e]) => e.signature !== null || e.finished > 0);
  if (rows.length === 0) return;
  const values = rows.map(([id, e]) => sql`(${text(id)}, ${text(e.signature?.signature ?? null)}, ${text(e.signature?.kid ?? null)}, ${int(e.finished)})`);
  // `keep`: no new signature, or the stored one is the same key's (a null stored kid never equals).
  const keep = sql`v.signature is null or events.signature_kid = v.kid`;
  await sql`
    with v(id, signature, kid, finished) as (values ${sql.join(values)})
    update events
       set signature = case when ${keep} then events.signature else v.signature end,
           signature_kid = case when ${keep} then events.signature_kid else v.kid end,
           pending_webhooks = case when events.pending_webhooks > v.finished then events.pending_webhooks - v.finished else 0 end
      from v
     where events.id = v.id`.execute(trx);
}

/** Whether the event's stored signature was made by `key` (the one in force), so it is sent as it is. */
function storedSignatureBy<R extends Pick<Claimed, 'signature' | 'signature_kid'>>(key: SigningKey, row: R): row is R & { signature: string } {
  return row.signature !== null && row.signature_kid === key.kid;
}

/** The key of an event's signature in `signatures` and `signing`: by key, so a switch of key signs again. */
const signatureCacheKey = (key: SigningKey, eventId: string) => `${key.kid}:${eventId}`;

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
