import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { sql } from 'kysely';
import type { Db } from '../store/db.ts';
import type { ChannelDriver, DriverRegistry, PayoutOrder, PayoutOutcome } from '../channels/driver.ts';

/**
 * Prometheus metrics of this process (prom-client). Counters and histograms are process-wide
 * singletons so the places that move money count with one-line calls and no plumbing; /metrics
 * (http/plugins/metrics.ts) serves them. Every label has a small closed set of values (a route
 * pattern, a channel, a status), never an id or a raw URL: an unbounded label is a memory leak.
 *
 * Counters are per process; the backlog gauges read the shared database, so every process reports
 * the same value for them (alert on max(), not sum()).
 */
export const registry = new Registry();

let defaultsCollected = false;
/** Node process metrics (CPU, memory, event-loop lag, GC), started once the first /metrics exists. */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: registry, prefix: 'tixian_' });
}

// ---- HTTP -------------------------------------------------------------------------------------

const httpRequests = new Counter({
  name: 'tixian_http_requests_total',
  help: 'HTTP requests answered, by route pattern, method and status code.',
  labelNames: ['route', 'method', 'status'] as const,
  registers: [registry],
});
const httpDuration = new Histogram({
  name: 'tixian_http_request_duration_seconds',
  help: 'Time from request received to response sent, by route pattern and method.',
  labelNames: ['route', 'method'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/** Methods outside this set are counted as OTHER: the label stays bounded whatever a client sends. */
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);

/** `route` is the matched pattern (`/v1/apps/:app/withdrawals/:id`), or `unmatched` for a 404 of the router. */
export function observeHttpRequest(route: string, method: string, status: number, durationMs: number): void {
  const m = METHODS.has(method) ? method : 'OTHER';
  httpRequests.inc({ route, method: m, status: String(status) });
  httpDuration.observe({ route, method: m }, durationMs / 1000);
}

// ---- Withdrawals ------------------------------------------------------------------------------

const withdrawalTransitions = new Counter({
  name: 'tixian_withdrawal_transitions_total',
  help: 'Withdrawal status changes, by channel and from/to status (from="none" is a new withdrawal).',
  labelNames: ['channel', 'from', 'to'] as const,
  registers: [registry],
});

/** Call after the transaction that made the change committed (a rolled-back change is not counted). */
export function observeWithdrawalTransition(channel: string, from: string, to: string, count = 1): void {
  withdrawalTransitions.inc({ channel, from, to }, count);
}

// ---- Payout drivers ---------------------------------------------------------------------------

const driverCalls = new Counter({
  name: 'tixian_payout_driver_calls_total',
  help: 'Calls to payout channel drivers, by channel, driver, call (submit|query) and outcome.',
  labelNames: ['channel', 'driver', 'call', 'outcome'] as const,
  registers: [registry],
});
const driverDuration = new Histogram({
  name: 'tixian_payout_driver_call_duration_seconds',
  help: 'Duration of payout channel driver calls, by channel, driver and call.',
  labelNames: ['channel', 'driver', 'call'] as const,
  buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
  registers: [registry],
});
const payoutClaimSize = new Histogram({
  name: 'tixian_payout_claim_size',
  help: 'Withdrawals claimed per payout worker round (rounds that claimed at least one).',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128],
  registers: [registry],
});

export function observePayoutClaim(size: number): void {
  if (size > 0) payoutClaimSize.observe(size);
}

/**
 * A driver that counts its calls; the worker's own timeout still bounds them. Arguments pass
 * through whole, so the wrapper follows the driver interface if calls gain parameters.
 */
class InstrumentedDriver implements ChannelDriver {
  constructor(private readonly inner: ChannelDriver) {}
  get name(): string {
    return this.inner.name;
  }
  submit(...args: Parameters<ChannelDriver['submit']>): Promise<PayoutOutcome> {
    return this.timed('submit', args[0], () => this.inner.submit(...args));
  }
  query(...args: Parameters<ChannelDriver['query']>): Promise<PayoutOutcome> {
    return this.timed('query', args[0], () => this.inner.query(...args));
  }
  private async timed(call: 'submit' | 'query', order: PayoutOrder, fn: () => Promise<PayoutOutcome>): Promise<PayoutOutcome> {
    const labels = { channel: order.channel, driver: this.inner.name, call };
    const end = driverDuration.startTimer(labels);
    try {
      const outcome = await fn();
      driverCalls.inc({ ...labels, outcome: outcome.kind === 'failed' ? `failed_${outcome.blame}` : outcome.kind });
      return outcome;
    } catch (err) {
      driverCalls.inc({ ...labels, outcome: 'error' });
      throw err;
    } finally {
      end();
    }
  }
}

/** Wraps a driver registry so every submit/query is counted and timed (outcome `error` when it threw). */
export function instrumentDrivers(drivers: DriverRegistry): DriverRegistry {
  const wrapped = new WeakMap<ChannelDriver, ChannelDriver>();
  return {
    driverFor(channel, livemode) {
      const driver = drivers.driverFor(channel, livemode);
      if (!driver) return null;
      let w = wrapped.get(driver);
      if (!w) wrapped.set(driver, (w = new InstrumentedDriver(driver)));
      return w;
    },
  };
}

// ---- Webhooks ---------------------------------------------------------------------------------

const webhookTries = new Counter({
  name: 'tixian_webhook_attempts_total',
  help: 'Webhook delivery tries, by result: succeeded, retry (failed, another try is scheduled) or failed (the last try failed).',
  labelNames: ['result'] as const,
  registers: [registry],
});
const webhookFinishedAttempts = new Histogram({
  name: 'tixian_webhook_delivery_attempts',
  help: 'Tries a webhook delivery took when it finished, by result (succeeded or failed).',
  labelNames: ['result'] as const,
  buckets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  registers: [registry],
});
const webhookTryDuration = new Histogram({
  name: 'tixian_webhook_attempt_duration_seconds',
  help: 'Duration of one webhook POST (until the answer head, or the error).',
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
  registers: [registry],
});
const webhookRecordBatch = new Histogram({
  name: 'tixian_webhook_record_batch_size',
  help: 'Finished webhook tries written per transaction (group commit).',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128],
  registers: [registry],
});

/** One finished try: `status` is the delivery's status after it ('pending' means a retry is scheduled). */
export function observeWebhookTry(status: 'succeeded' | 'failed' | 'pending', attempts: number, durationMs: number): void {
  webhookTries.inc({ result: status === 'pending' ? 'retry' : status });
  webhookTryDuration.observe(durationMs / 1000);
  if (status !== 'pending') webhookFinishedAttempts.observe({ result: status }, attempts);
}

export function observeWebhookRecordBatch(size: number): void {
  webhookRecordBatch.observe(size);
}

// ---- Ledger -----------------------------------------------------------------------------------

const ledgerVerifications = new Counter({
  name: 'tixian_ledger_verifications_total',
  help: 'Ledger verifications run in this process, by result (ok or drift).',
  labelNames: ['result'] as const,
  registers: [registry],
});
const ledgerDrift = new Gauge({
  name: 'tixian_ledger_drift_items',
  help: 'Problems the last ledger verification in this process found (0 = balances match the journal).',
  registers: [registry],
});

export function observeLedgerVerification(driftItems: number): void {
  ledgerVerifications.inc({ result: driftItems === 0 ? 'ok' : 'drift' });
  ledgerDrift.set(driftItems);
}

// ---- Database pool ----------------------------------------------------------------------------

/** What we read of a pg.Pool (its public counters). */
export interface PoolLike {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
  ended?: boolean;
}
const pools = new Set<PoolLike>();

function sumPools(read: (p: PoolLike) => number): number {
  let n = 0;
  for (const p of pools) {
    if (p.ended) pools.delete(p);
    else n += read(p);
  }
  return n;
}

new Gauge({
  name: 'tixian_db_pool_connections',
  help: 'PostgreSQL pool connections of this process, by state (total, idle).',
  labelNames: ['state'] as const,
  registers: [registry],
  collect() {
    this.set({ state: 'total' }, sumPools((p) => p.totalCount));
    this.set({ state: 'idle' }, sumPools((p) => p.idleCount));
  },
});
new Gauge({
  name: 'tixian_db_pool_waiting',
  help: 'Queries waiting for a PostgreSQL pool connection in this process.',
  registers: [registry],
  collect() {
    this.set(sumPools((p) => p.waitingCount));
  },
});

/** Registers a PostgreSQL pool for the pool gauges; it drops out once ended. */
export function observePool(pool: PoolLike): void {
  pools.add(pool);
}

// ---- Backlog gauges (read from the database on scrape) ---------------------------------------

/** Counts stop here: a count must stay cheap when a backlog is huge (the gauge then reads 100000). */
export const BACKLOG_COUNT_CAP = 100_000;

const webhookQueueDepth = new Gauge({
  name: 'tixian_webhook_queue_depth',
  help: `Webhook deliveries waiting for a try (due or scheduled), capped at ${BACKLOG_COUNT_CAP}.`,
  registers: [registry],
});
const webhookOldestDue = new Gauge({
  name: 'tixian_webhook_oldest_due_age_seconds',
  help: 'How long the most overdue webhook delivery has been due (0 when none is overdue).',
  registers: [registry],
});
const payoutsPending = new Gauge({
  name: 'tixian_payouts_pending',
  help: `Confirmed (pending) withdrawals by payout phase: submit (not yet sent) or query (outcome unknown or processing), capped at ${BACKLOG_COUNT_CAP}.`,
  labelNames: ['phase'] as const,
  registers: [registry],
});
const payoutsOverdue = new Gauge({
  name: 'tixian_payouts_oldest_due_age_seconds',
  help: 'How long the most overdue pending withdrawal has waited for the payout worker (0 when none is overdue).',
  registers: [registry],
});
const payoutsMaxTries = new Gauge({
  name: 'tixian_payouts_max_query_tries',
  help: 'Most tries any pending withdrawal has had without a final answer (unknown or processing; 25 unknown answers are about 2.5 hours).',
  registers: [registry],
});

export interface Backlog {
  webhookQueued: number;
  webhookOldestDueMs: number | null;
  payoutsPending: Record<'submit' | 'query', number>;
  payoutOldestDueMs: number | null;
  payoutMaxTries: number;
}

/**
 * Reads the backlog with bounded queries on indexed columns: next_attempt_ms (null once a delivery
 * finished) and payout_due_ms (null unless pending). Counts read at most BACKLOG_COUNT_CAP rows.
 */
export async function readBacklog(db: Db): Promise<Backlog> {
  const cap = BACKLOG_COUNT_CAP;
  const webhooks = await sql<{ n: number | string; oldest: number | string | null }>`
    select (select count(*) from (select 1 from webhook_deliveries where next_attempt_ms is not null limit ${cap}) q) as n,
           (select min(next_attempt_ms) from webhook_deliveries where next_attempt_ms is not null) as oldest`.execute(db);
  const payouts = await sql<{ phase: string | null; n: number | string; tries: number | string | null }>`
    select payout_phase as phase, count(*) as n, max(payout_tries) as tries
    from (select payout_phase, payout_tries from withdrawals where payout_due_ms is not null limit ${cap}) q
    group by payout_phase`.execute(db);
  const oldestPayout = await sql<{ oldest: number | string | null }>`
    select min(payout_due_ms) as oldest from withdrawals where payout_due_ms is not null`.execute(db);
  const w = webhooks.rows[0];
  const pending = { submit: 0, query: 0 };
  let maxTries = 0;
  for (const r of payouts.rows) {
    if (r.phase === 'submit' || r.phase === 'query') pending[r.phase] += Number(r.n);
    maxTries = Math.max(maxTries, Number(r.tries ?? 0));
  }
  const oldest = oldestPayout.rows[0]?.oldest;
  return {
    webhookQueued: Number(w?.n ?? 0),
    webhookOldestDueMs: w?.oldest === null || w?.oldest === undefined ? null : Number(w.oldest),
    payoutsPending: pending,
    payoutOldestDueMs: oldest === null || oldest === undefined ? null : Number(oldest),
    payoutMaxTries: maxTries,
  };
}

export function setBacklogGauges(b: Backlog, nowMs: number): void {
  webhookQueueDepth.set(b.webhookQueued);
  webhookOldestDue.set(b.webhookOldestDueMs === null ? 0 : Math.max(0, nowMs - b.webhookOldestDueMs) / 1000);
  payoutsPending.set({ phase: 'submit' }, b.payoutsPending.submit);
  payoutsPending.set({ phase: 'query' }, b.payoutsPending.query);
  payoutsOverdue.set(b.payoutOldestDueMs === null ? 0 : Math.max(0, nowMs - b.payoutOldestDueMs) / 1000);
  payoutsMaxTries.set(b.payoutMaxTries);
}

// ---- SQLite group commit ----------------------------------------------------------------------

const groupCommitSize = new Histogram({
  name: 'tixian_sqlite_group_commit_transactions',
  help: 'Write transactions (requests) committed together by one SQLite COMMIT (one fsync).',
  buckets: [1, 2, 4, 8, 16, 32, 64],
  registers: [registry],
});

export function observeGroupCommit(size: number): void {
  groupCommitSize.observe(size);
}

// ---- Live channels ------------------------------------------------------------------------------

const unverifiedChannelAnswers = new Counter({
  name: 'tixian_channel_unverified_answers_total',
  help: 'Channel answers whose signature did not verify (each treated as an unknown outcome and queried again), by channel.',
  labelNames: ['channel'] as const,
  registers: [registry],
});

/** A channel answer failed signature verification: a wrong channel public key, or someone in between. */
export function observeUnverifiedChannelAnswer(channel: string): void {
  unverifiedChannelAnswers.inc({ channel });
}

const channelChecks = new Counter({
  name: 'tixian_channel_checks_total',
  help: 'Connectivity checks of payout channel credentials (tixian channels check, the console), by channel and result.',
  labelNames: ['channel', 'result'] as const,
  registers: [registry],
});

/** A signed, harmless call made with an app's channel credentials, and whether it passed. */
export function observeChannelCheck(channel: string, ok: boolean): void {
  channelChecks.inc({ channel, result: ok ? 'ok' : 'failed' });
}

const channelNotifications = new Counter({
  name: 'tixian_channel_notifications_total',
  help: 'Channel notifications received, by channel and result (accepted: a query was scheduled; rejected: not verified or not readable).',
  labelNames: ['channel', 'result'] as const,
  registers: [registry],
});

/** A channel notification arrived: `accepted` (verified, a query scheduled) or `rejected`. */
export function observeChannelNotification(channel: string, result: 'accepted' | 'rejected'): void {
  channelNotifications.inc({ channel, result });
}
