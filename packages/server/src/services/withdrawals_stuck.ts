import { sql } from 'kysely';
import type { Runtime } from '../runtime.ts';

/** The most rows one report returns; `has_more` says when there are more. */
export const STUCK_LIMIT_MAX = 1000;

export interface StuckQuery {
  /** Only this app's withdrawals; all apps when absent. */
  app?: string;
  /** A withdrawal is reported once it was confirmed longer ago than this. */
  olderThanMs: number;
  limit: number;
}

/** One confirmed withdrawal whose payout has not reached a final answer. */
export interface StuckWithdrawal {
  id: string;
  app: string;
  livemode: boolean;
  user: string;
  channel: string;
  amount: number;
  /** Seconds since the withdrawal was confirmed (since creation for one confirmed before migration 0009). */
  age_s: number;
  created: number;
  /** When the current payout round was confirmed (Unix seconds); null when confirmed before 0009. */
  confirmed: number | null;
  /** `submit`: the channel has not been asked yet; `query`: it was asked and the outcome is open. */
  payout_phase: string | null;
  /** Channel answers that left the outcome open (processing, unknown, timeout) in this round. */
  payout_tries: number;
  /** When the worker asks the channel next (Unix seconds); past means no worker has picked it up. */
  next_try_at: number | null;
  /** A worker holds it right now (a channel call is in flight). */
  in_flight: boolean;
  /** What the worker's stored state says of the payout (submitted or not, answers so far, next step). */
  last_answer: string;
  /**
   * The channel's own last answer in this round: outcome kind and the channel's code/message
   * (e.g. `processing: PAYEE_CONFIRMING`), payee details masked; null before the channel answered.
   */
  channel_answer: string | null;
  /** When that answer came (Unix seconds). */
  channel_answer_at: number | null;
}

export interface StuckReport {
  now: number;
  older_than_s: number;
  has_more: boolean;
  withdrawals: StuckWithdrawal[];
}

/**
 * Withdrawals stuck between confirm and a final answer: `pending` (the payout worker owes the
 * channel a submit or a query) and older than the bound, oldest first. Read-only.
 */
export async function findStuckWithdrawals(rt: Runtime, q: StuckQuery): Promise<StuckReport> {
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > STUCK_LIMIT_MAX) throw new RangeError(`limit must be 1..${STUCK_LIMIT_MAX}`);
  const nowMs = rt.clock.nowMs();
  // Age counts from the confirm; a withdrawal confirmed before 0009 has no confirm time: its creation.
  const sinceMs = sql<number>`coalesce(confirmed_ms, created * 1000)`;
  let query = rt.store.db
    .selectFrom('withdrawals')
    .select(['id', 'app', 'livemode', 'user', 'channel', 'amount', 'created', 'confirmed_ms', 'payout_phase', 'payout_tries', 'payout_due_ms', 'payout_lease_ms', 'payout_answer', 'payout_answer_ms'])
    .select(sinceMs.as('since_ms'))
    .where('status', '=', 'pending')
    .where(sinceMs, '<=', nowMs - q.olderThanMs);
  if (q.app !== undefined) query = query.where('app', '=', q.app);
  const rows = await query.orderBy(sinceMs, 'asc').orderBy('id', 'asc').limit(q.limit + 1).execute();
  const withdrawals = rows.slice(0, q.limit).map((r): StuckWithdrawal => {
    const tries = Number(r.payout_tries);
    const dueMs = r.payout_due_ms === null ? null : Number(r.payout_due_ms);
    const inFlight = r.payout_lease_ms !== null && Number(r.payout_lease_ms) > nowMs;
    return {
      id: r.id,
      app: r.app,
      livemode: Number(r.livemode) === 1,
      user: r.user,
      channel: r.channel,
      amount: Number(r.amount),
      age_s: Math.max(0, Math.floor((nowMs - Number(r.since_ms)) / 1000)),
      created: Number(r.created),
      confirmed: (r.confirmed_ms ?? null) === null ? null : Math.floor(Number(r.confirmed_ms) / 1000),
      payout_phase: r.payout_phase,
      payout_tries: tries,
      next_try_at: dueMs === null ? null : Math.floor(dueMs / 1000),
      in_flight: inFlight,
      last_answer: lastAnswer(r.payout_phase, tries, inFlight, dueMs, nowMs),
      channel_answer: r.payout_answer ?? null,
      channel_answer_at: (r.payout_answer_ms ?? null) === null ? null : Math.floor(Number(r.payout_answer_ms) / 1000),
    };
  });
  return { now: Math.floor(nowMs / 1000), older_than_s: Math.floor(q.olderThanMs / 1000), has_more: rows.length > q.limit, withdrawals };
}

/** The worker's view: the payout phase, how many answers left it open, and what comes next. */
function lastAnswer(phase: string | null, tries: number, inFlight: boolean, dueMs: number | null, nowMs: number): string {
  const overdue = dueMs !== null && dueMs < nowMs && !inFlight;
  const idle = overdue ? '; overdue: is a payout worker running?' : '';
  if (phase === 'submit') return inFlight ? 'being submitted to the channel now' : `not yet submitted to the channel${idle}`;
  if (tries === 0) {
    return inFlight ? 'submitted; waiting for the channel' : `submitted; no answer recorded (call interrupted); will query${idle}`;
  }
  return `outcome still open after ${tries} channel answer(s) (processing, unknown or timeout); ${inFlight ? 'querying now' : `will query again${idle}`}`;
}
