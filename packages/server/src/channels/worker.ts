import type { ExpressionBuilder } from 'kysely';
import type { WithdrawalChannel } from '@tixian/sdk';
import type { Runtime } from '../runtime.ts';
import { observePayoutClaim } from '../observability/metrics.ts';
import type { Worker } from '../workers.ts';
import type { Database, WithdrawalRow } from '../store/schema.ts';
import { Authenticator } from '../services/accounts.ts';
import { applyPayoutResult, PAYOUT_ANSWER_MAX, payoutKey, type PayoutResult } from '../services/withdrawals.ts';
import { payoutOrder, type ChannelCall, type PayoutOutcome } from './driver.ts';

export interface PayoutWorkerOptions {
  /** A claimed withdrawal is not claimed by another worker before this passes (crash recovery time). */
  leaseMs: number;
  /** The most withdrawals in flight at once (and claimed per runOnce round). */
  batchSize: number;
  /** Longest sleep when idle; a confirm in this process wakes the worker at once. */
  idlePollMs: number;
  /** A channel call slower than this counts as an unknown outcome (queried later, never failed). */
  channelTimeoutMs: number;
  /**
   * The end of a lease kept free of channel calls: the round's calls all end this long before the
   * lease does, leaving time to apply the result (and room for clock skew between workers).
   */
  leaseMarginMs: number;
  /** A channel call is not started with less time than this left before the round's deadline. */
  minCallMs: number;
  /**
   * Only this withdrawal (`tixian trigger` and the console's test event pay out their own test
   * withdrawal in the process that asked, never whatever else is due there: other merchants'
   * live payouts belong to the processes that run workers).
   */
  only?: string | undefined;
}

const DEFAULTS: PayoutWorkerOptions = { leaseMs: 30_000, batchSize: 32, idlePollMs: 200, channelTimeoutMs: 15_000, leaseMarginMs: 6_000, minCallMs: 3_000 };
const MAX_RETRY_DELAY_MS = 10 * 60_000;
const MIN_RETRY_DELAY_MS = 50;
const ATTENTION_AFTER_TRIES = 25;

/**
 * The payout worker: takes confirmed (`pending`) withdrawals whose next step is due, asks their
 * channel, and applies the answer. Safe to run in many processes: a withdrawal is claimed by a
 * conditional UPDATE of its lease, and results apply under a status+round guard.
 *
 * Exactly-once toward the channel: before the first submit the row is marked `query`, so after
 * any crash or unknown answer the worker asks the channel first and submits again only when the
 * channel has no record of the order (and then with the same idempotency key).
 */
export class PayoutWorker implements Worker {
  private readonly options: PayoutWorkerOptions;
  /** The event of a payout names its merchant account; apps never change owner, so this caches. */
  private readonly owners: Authenticator;
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly onPayout = () => this.wake?.();

  constructor(
    private readonly rt: Runtime,
    options: Partial<PayoutWorkerOptions> = {},
  ) {
    const leaseMs = options.leaseMs ?? rt.config.payoutLeaseMs;
    const batchSize = options.batchSize ?? rt.config.payoutBatchSize;
    // A channel call must end well inside the lease, or a second worker could claim the
    // withdrawal while the first is still waiting for the channel.
    const channelTimeoutMs = Math.max(50, Math.min(DEFAULTS.channelTimeoutMs, Math.floor(leaseMs / 2)));
    const leaseMarginMs = Math.min(DEFAULTS.leaseMarginMs, Math.floor(leaseMs / 5));
    const minCallMs = Math.min(DEFAULTS.minCallMs, Math.floor(leaseMs / 10));
    this.options = { ...DEFAULTS, leaseMs, batchSize, channelTimeoutMs, leaseMarginMs, minCallMs, ...options };
    this.owners = new Authenticator(rt);
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.rt.bus.on('payout', this.onPayout);
    this.loop = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.rt.bus.off('payout', this.onPayout);
    this.wake?.();
    await this.loop;
  }

  /**
   * Keeps up to batchSize withdrawals in flight, claiming again once half the slots are free
   * rather than after the whole round: a slow channel call (up to its timeout) holds its own slot,
   * not the round's other slots. While the last claim took all it asked for (a backlog), a freed
   * slot wakes the loop; otherwise it waits for a confirm in this process or the idle poll.
   */
  private async run(): Promise<void> {
    const { batchSize } = this.options;
    const refillAt = Math.ceil(batchSize / 2);
    const inFlight = new Set<Promise<void>>();
    let backlog = false;
    const canRefill = () => batchSize - inFlight.size >= refillAt;
    while (this.running) {
      if (canRefill()) {
        const free = batchSize - inFlight.size;
        backlog = false;
        try {
          const claimed = await this.claim(free);
          observePayoutClaim(claimed.length);
          backlog = claimed.length === free;
          for (const row of claimed) {
            const done: Promise<void> = this.process(row)
              .catch((err: unknown) => this.rt.log.error({ err, withdrawal: row.id }, 'payout failed; it is tried again when its lease runs out'))
              .finally(() => {
                inFlight.delete(done);
                if (backlog && canRefill()) this.wake?.();
              });
            inFlight.add(done);
          }
        } catch (err) {
          this.rt.log.error({ err }, 'payout worker claim failed');
        }
        // Slots freed while the claim ran (their wake-ups found no one waiting).
        if (backlog && canRefill()) continue;
      }
      if (this.running) await this.sleep(backlog ? null : this.options.idlePollMs);
    }
    await Promise.all(inFlight);
  }

  /** Until wake() (a confirm, a freed slot, stop) or, with a time, that time. */
  private sleep(ms: number | null): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === null ? undefined : setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      this.wake = done;
    });
  }

  /** One round: claim what is due and process it. Returns how many withdrawals were handled. */
  async runOnce(): Promise<number> {
    const claimed = await this.claim(this.options.batchSize);
    observePayoutClaim(claimed.length);
    await Promise.all(claimed.map((row) => this.process(row)));
    return claimed.length;
  }

  /**
   * Claims up to `limit` due withdrawals in one statement. Each claimed row carries its lease,
   * the fence every later write of this worker checks.
   *
   * The due rows are picked in a MATERIALIZED CTE, read once. Not `id in (select … limit n for
   * update skip locked)`: PostgreSQL may run such a sub-select again for each row it updates, and
   * each run, finding the rows just leased no longer due, picks the next ones, so one round claimed
   * every due withdrawal, whatever the batch size. On PostgreSQL the pick skips rows another worker
   * is claiming (FOR UPDATE SKIP LOCKED), so workers take different rows instead of racing for the
   * same oldest ones; SQLite has one writer and needs no such clause.
   */
  private async claim(limit: number): Promise<WithdrawalRow[]> {
    const now = this.rt.clock.nowMs();
    const { only, leaseMs } = this.options;
    const leaseFree = (eb: ExpressionBuilder<Database, 'withdrawals'>) => eb.or([eb('payout_lease_ms', 'is', null), eb('payout_lease_ms', '<', now)]);
    return this.rt.store.db
      .with(
        (cte) => cte('due').materialized(),
        (db) =>
          db.selectFrom('withdrawals').select('id')
            .where('status', '=', 'pending').where('payout_due_ms', '<=', now).where(leaseFree)
            .$if(only !== undefined, (q) => q.where('id', '=', only!))
            .orderBy('payout_due_ms').limit(limit)
            .$if(this.rt.store.engine === 'postgres', (q) => q.forUpdate().skipLocked()),
      )
      .updateTable('withdrawals')
      .set({ payout_lease_ms: now + leaseMs })
      .where('id', 'in', (eb) => eb.selectFrom('due').select('due.id'))
      .where('status', '=', 'pending')
      .where(leaseFree)
      .returningAll()
      .execute();
  }

  private async process(row: WithdrawalRow): Promise<void> {
    const driver = this.rt.drivers.driverFor(row.channel as WithdrawalChannel, row.livemode === 1);
    const order = payoutOrder(row, payoutKey(row));
    // Every channel call of this round ends by one deadline inside the lease. A query and then a
    // submit, each with its own full timeout, could together outlast the lease; another worker
    // would then claim the withdrawal and ask the channel about the same key at the same time.
    const deadlineMs = row.payout_lease_ms! - this.options.leaseMarginMs;
    let outcome: PayoutOutcome | null;
    if (!driver) {
      outcome = { kind: 'unknown', message: `no payout driver for ${row.channel} (${row.livemode ? 'live' : 'test'})` };
    } else if (row.payout_phase === 'submit') {
      if (!this.hasTime(deadlineMs)) {
        outcome = null;
      } else {
        // From here on the channel may have the order: never submit again without asking first.
        // Durable before the submit (oneStatement resolves once it is).
        const marked = await this.rt.store.oneStatement((db) =>
          db.updateTable('withdrawals').set({ payout_phase: 'query' })
            .where('id', '=', row.id).where('status', '=', 'pending').where('payout_round', '=', row.payout_round)
            .where('payout_lease_ms', '=', row.payout_lease_ms).executeTakeFirst());
        // Lost the lease (this worker stalled past it): the new holder asks the channel instead.
        if (Number(marked.numUpdatedRows) !== 1) return;
        outcome = await this.call(deadlineMs, (c) => driver.submit(order, c));
      }
    } else {
      outcome = await this.call(deadlineMs, (c) => driver.query(order, c));
      if (outcome?.kind === 'not_found') outcome = await this.call(deadlineMs, (c) => driver.submit(order, c));
    }
    // Not enough of the lease was left for a call: the next round starts with a query, in a fresh lease.
    const result: PayoutResult = outcome
      ? { ...this.toResult(row, outcome), answer: channelAnswer(outcome, order.extra) }
      : { kind: 'retry', dueMs: this.rt.clock.nowMs() + MIN_RETRY_DELAY_MS };
    try {
      const fence = { id: row.id, round: row.payout_round, leaseMs: row.payout_lease_ms! };
      // Taken at COMMIT, not once durable: nothing of the result leaves this process from here.
      // The webhook it queues is sent only after a claim of the dispatcher that is durable, and
      // with it every commit before; the slot it frees claims again (durable before any call).
      // Lost to a power cut, the result is learnt again: the row is as the worker left it before
      // the call (in phase `query` once a submit may have happened), so once the lease runs out
      // the channel is asked again, and nothing is paid twice.
      await applyPayoutResult(this.rt, fence, result, await this.accountOf(row.app), { answerAt: 'committed' });
    } catch (err) {
      // The lease expires and the next round asks the channel again: nothing is lost.
      this.rt.log.error({ err, withdrawal: row.id }, 'applying a payout result failed');
    }
  }

  private toResult(row: WithdrawalRow, outcome: PayoutOutcome): PayoutResult {
    const now = this.rt.clock.nowMs();
    switch (outcome.kind) {
      case 'succeeded':
        return { kind: 'succeeded' };
      case 'failed':
        return outcome.blame === 'user' ? { kind: 'failed_user', message: outcome.message } : { kind: 'failed_merchant', message: outcome.message };
      case 'processing':
        // Bounded both ways: 0 would spin on the channel, a huge value would strand the payout.
        return {
          kind: 'retry', dueMs: now + Math.min(MAX_RETRY_DELAY_MS, Math.max(MIN_RETRY_DELAY_MS, outcome.retryAfterMs)),
          ...(outcome.confirmation ? { confirmation: outcome.confirmation } : {}),
        };
      case 'not_found':
      case 'unknown': {
        const delay = Math.min(MAX_RETRY_DELAY_MS, 200 * 2 ** Math.min(row.payout_tries, 20));
        // Never given up on (the money is at the channel or still held), but an operator must hear
        // of a payout nobody can settle: after ~2.5 h of tries it is logged as an error each round.
        const level = row.payout_tries >= ATTENTION_AFTER_TRIES ? 'error' : 'warn';
        if (outcome.kind === 'unknown') this.rt.log[level]({ withdrawal: row.id, tries: row.payout_tries, message: outcome.message }, 'payout outcome unknown; will query');
        return { kind: 'retry', dueMs: now + delay };
      }
    }
  }

  private hasTime(deadlineMs: number): boolean {
    return deadlineMs - this.rt.clock.nowMs() >= this.options.minCallMs;
  }

  /**
   * One channel call, timed out at min(channel timeout, time left before the round's deadline).
   * Null when too little time is left to start it.
   */
  private async call(deadlineMs: number, fn: (call: ChannelCall) => Promise<PayoutOutcome>): Promise<PayoutOutcome | null> {
    if (!this.hasTime(deadlineMs)) return null;
    const timeoutMs = Math.min(this.options.channelTimeoutMs, deadlineMs - this.rt.clock.nowMs());
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<PayoutOutcome>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error('channel call timed out'));
        resolve({ kind: 'unknown', message: 'channel call timed out' });
      }, timeoutMs);
    });
    try {
      return await Promise.race([fn({ timeoutMs, signal: controller.signal, nowMs: this.rt.clock.nowMs() }), timeout]);
    } catch (err) {
      return { kind: 'unknown', message: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  private async accountOf(app: string): Promise<string> {
    const account = await this.owners.appOwner(app);
    if (!account) throw new Error(`withdrawal of unknown app ${app}`);
    return account;
  }
}

/**
 * The channel's answer as stored on the withdrawal (`payout_answer`, shown by `tixian withdrawals
 * stuck`): the outcome kind and the channel's own words, one line of at most 255 characters. The
 * payee's details (every text of the withdrawal's `extra`: account, name, openid, bank…) are
 * masked where the channel echoes them; drivers never put credentials in a message.
 */
export function channelAnswer(outcome: PayoutOutcome, extra: Record<string, unknown>): string {
  let words = '';
  if (outcome.kind === 'failed') words = `(${outcome.blame}) ${outcome.message}`;
  else if ((outcome.kind === 'processing' || outcome.kind === 'unknown') && outcome.message !== undefined) words = outcome.message;
  // eslint-disable-next-line no-control-regex
  words = words.slice(0, 4 * PAYOUT_ANSWER_MAX).replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  const payee = Object.values(extra)
    .flatMap((v) => (typeof v === 'string' || typeof v === 'number' ? [String(v)] : []))
    .filter((v) => v.length >= 2)
    .sort((a, b) => b.length - a.length);
  for (const v of payee) words = words.split(v).join('***');
  const text = words ? `${outcome.kind}: ${words}` : outcome.kind;
  return text.length > PAYOUT_ANSWER_MAX ? `${text.slice(0, PAYOUT_ANSWER_MAX - 1)}…` : text;
}

export function startPayoutWorker(rt: Runtime): Worker {
  return new PayoutWorker(rt).start();
}
