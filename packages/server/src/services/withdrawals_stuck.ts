import type { Runtime } from '../runtime.ts';

/** The most rows one report returns; `has_more` says when there are more. */
export const STUCK_LIMIT_MAX = 1000;

export interface StuckQuery {
  /** Only this app's withdrawals; all apps when absent. */
  app?: string;
  /** A withdrawal is reported once it is older than this. */
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
  /** Seconds since the withdrawal was created (its confirm time is not stored; see README "Logs"). */
  age_s: number;
  created: number;
  /** `submit`: the channel has not been asked yet; `query`: it was asked and the outcome is open. */
  payout_phase: string | null;
  /** Channel answers that left the outcome open (processing, unknown, timeout) in this round. */
  payout_tries: number;
  /** When the worker asks the channel next (Unix seconds); past means no worker has picked it up. */
  next_try_at: number | null;
  /** A worker holds it right now (a channel call is in flight). */
  in_flight: boolean;
  /** What is known of the channel's last answer, from the stored payout state. */
  last_answer: string;
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
  const createdBeforeS = Math.floor((nowMs - q.olderThanMs) / 1000);
  let query = rt.store.db
    .selectFrom('withdrawals')
    .select(['id', 'app', 'livemode', 'user', 'channel', 'amount', 'created', 'payout_phase', 'payout_tries', 'payout_due_ms', 'payout_lease_ms'])
    .where('status', '=', 'pending')
    .where('created', '<=', createdBeforeS);
  if (q.app !== undefined) query = query.where('app', '=', q.app);
  const rows = await query.orderBy('created', 'asc').orderBy('id', 'asc').limit(q.limit + 1).execute();
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
      age_s: Math.max(0, Math.floor(nowMs / 1000) - Number(r.created)),
      created: Number(r.created),
      payout_phase: r.payout_phase,
      payout_tries: tries,
      next_try_at: dueMs === null ? null : Math.floor(dueMs / 1000),
      in_flight: inFlight,
      last_answer: lastAnswer(r.payout_phase, tries, inFlight, dueMs, nowMs),
    };
  });
  return { now: Math.floor(nowMs / 1000), older_than_s: Math.floor(q.olderThanMs / 1000), has_more: rows.length > q.limit, withdrawals };
}

/**
 * The worker keeps the payout phase and how many answers left it open, not the channel's words
 * (those go to the log: "payout outcome unknown; will query", with the withdrawal id).
 */
function lastAnswer(phase: string | null, tries: number, inFlight: boolean, dueMs: number | null, nowMs: number): string {
  const overdue = dueMs !== null && dueMs < nowMs && !inFlight;
  const idle = overdue ? '; overdue: is a payout worker running?' : '';
  if (phase === 'submit') return inFlight ? 'being submitted to the channel now' : `not yet submitted to the channel${idle}`;
  if (tries === 0) {
    return inFlight ? 'submitted; waiting for the channel' : `submitted; no answer recorded (call interrupted); will query${idle}`;
  }
  return `outcome still open after ${tries} channel answer(s) (processing, unknown or timeout); ${inFlight ? 'querying now' : `will query again${idle}`}`;
}
