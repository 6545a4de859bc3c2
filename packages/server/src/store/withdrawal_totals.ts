import { sql } from 'kysely';
import { isPostgres } from './engine.ts';
import type { Db } from './db.ts';
import { preparedByCount } from './prepared.ts';
import type { Bool, WithdrawalTotalRow } from './schema.ts';

/**
 * `total_withdrawals_amount` without reading the table: sums of withdrawals kept per app, mode,
 * status, channel and UTC day, changed in the same transaction as the withdrawal rows they sum
 * (migration 0004_list_growth). A list's total then costs a few hundred bucket rows however many
 * withdrawals there are; `verifyWithdrawalTotals` recomputes them from the rows.
 *
 * Every place that inserts a withdrawal or changes its status calls `moveWithdrawalTotals` once,
 * as the LAST write of its transaction. The bucket rows are shared by every writer of an app, so
 * taking their locks last (and in key order) means a transaction holding one never waits for a
 * user or withdrawal row lock: no deadlock on PostgreSQL. They are also the app's hot rows: on
 * PostgreSQL, writers of one app, status, channel and day queued on one row for the length of a
 * commit (its WAL flush), so every key is kept in PG_TOTALS_SHARDS rows (0010), the shard chosen
 * from the withdrawal's user: creates of different users mostly take different rows, and every
 * move of one withdrawal lands in the same shard, so each row stays the sum of its withdrawals.
 * Readers sum over the shards. SQLite has one writer at a time: one shard, nothing to spread.
 */

export const DAY_S = 86_400;
const dayOf = (createdS: number) => createdS - (createdS % DAY_S);
/**
 * `day_s` of the all-time bucket of each app, mode, status and channel: a total without a
 * `created` range reads ≤ 40 rows (5 statuses × 8 channels), not one per day of history.
 */
export const ALL_TIME = -1;

/** Shards per bucket key on PostgreSQL: more than the default pool's 10 concurrent writers. */
export const PG_TOTALS_SHARDS = 16;

/** The shard of a user's withdrawals (FNV-1a of the merchant's user id): the same on every writer. */
export function totalsShard(user: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) h = Math.imul(h ^ user.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

const shardsOf = (trx: Db) => (isPostgres(trx) ? PG_TOTALS_SHARDS : 1);

/** One withdrawal entering (`from: null`), leaving (`to: null`) or moving between statuses. */
export interface WithdrawalMove {
  app: string;
  livemode: Bool;
  channel: string;
  /** The withdrawal's user (merchant id): picks the shard. */
  user: string;
  created: number;
  amount: number;
  from: string | null;
  to: string | null;
}

/** Upserts per statement: 7 parameters each, far below SQLite's 32,766 and PostgreSQL's 65,535. */
const CHUNK = 500;

export async function moveWithdrawalTotals(trx: Db, moves: readonly WithdrawalMove[]): Promise<void> {
  const deltas = new Map<string, WithdrawalTotalRow>();
  const shards = shardsOf(trx);
  const add = (m: WithdrawalMove, status: string, sign: 1 | -1) => {
    const shard = totalsShard(m.user, shards);
    for (const day_s of [dayOf(m.created), ALL_TIME]) {
      const row: WithdrawalTotalRow = { app: m.app, livemode: m.livemode, status, channel: m.channel, day_s, shard, count: 0, amount: 0 };
      // Sorted by this key below: the lock order every writer follows (store/pg/withdrawal_create.ts too).
      const key = JSON.stringify([row.app, row.livemode, row.status, row.channel, row.day_s, row.shard]);
      const d = deltas.get(key) ?? row;
      d.count += sign;
      d.amount += sign * m.amount;
      deltas.set(key, d);
    }
  };
  for (const m of moves) {
    if (m.from === m.to) continue;
    if (m.from !== null) add(m, m.from, -1);
    if (m.to !== null) add(m, m.to, 1);
  }
  const rows = [...deltas.entries()]
    .filter(([, d]) => d.count !== 0 || d.amount !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, d]) => d);
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK);
    const params: Record<string, unknown> = {};
    chunk.forEach((r, j) => {
      for (const c of TOTAL_COLUMNS) params[`${j}.${c}`] = r[c];
    });
    await upsertTotals(chunk.length).execute(trx, params);
  }
}

const TOTAL_COLUMNS = ['app', 'livemode', 'status', 'channel', 'day_s', 'shard', 'count', 'amount'] as const;

/** The upsert of n bucket rows, compiled once per n (store/prepared.ts): a create moves 2, a batch more. */
const upsertTotals = preparedByCount<Record<string, unknown>>(CHUNK, (db, p, n) =>
  db
    .insertInto('withdrawal_totals')
    .values(Array.from({ length: n }, (_, j) => Object.fromEntries(TOTAL_COLUMNS.map((c) => [c, p[`${j}.${c}`]])) as unknown as WithdrawalTotalRow))
    .onConflict((oc) =>
      oc.columns(['app', 'livemode', 'status', 'channel', 'day_s', 'shard']).doUpdateSet({
        count: sql`withdrawal_totals.count + excluded.count`,
        amount: sql`withdrawal_totals.amount + excluded.amount`,
      }),
    ),
);

export interface WithdrawalTotalQuery {
  app: string;
  livemode: Bool;
  status?: string | undefined;
  channel?: string | undefined;
  /** created ≥ fromS (Unix seconds), when set */
  fromS?: number | undefined;
  /** created < untilS, when set */
  untilS?: number | undefined;
}

/**
 * The sum of `amount` over the matching withdrawals: whole days from the buckets, and the partial
 * days at either end of a `created` range (at most two) from the rows, through the
 * (app, livemode, status|channel, created) indexes.
 */
export async function withdrawalTotal(db: Db, q: WithdrawalTotalQuery): Promise<number> {
  const { fromS, untilS } = q;
  if (fromS !== undefined && untilS !== undefined && fromS >= untilS) return 0;
  const firstWholeDay = fromS === undefined ? undefined : Math.ceil(fromS / DAY_S) * DAY_S;
  const endWholeDays = untilS === undefined ? undefined : dayOf(untilS);
  if (firstWholeDay !== undefined && endWholeDays !== undefined && firstWholeDay >= endWholeDays) {
    return rowSum(db, q, fromS!, untilS!);
  }
  let bucket = db
    .selectFrom('withdrawal_totals')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('total'))
    .where('app', '=', q.app)
    .where('livemode', '=', q.livemode);
  if (q.status !== undefined) bucket = bucket.where('status', '=', q.status);
  if (q.channel !== undefined) bucket = bucket.where('channel', '=', q.channel);
  if (fromS === undefined && untilS === undefined) bucket = bucket.where('day_s', '=', ALL_TIME);
  else bucket = bucket.where('day_s', '>=', firstWholeDay ?? 0);
  if (endWholeDays !== undefined) bucket = bucket.where('day_s', '<', endWholeDays);
  let total = Number((await bucket.executeTakeFirstOrThrow()).total);
  if (fromS !== undefined && fromS < firstWholeDay!) total += await rowSum(db, q, fromS, firstWholeDay!);
  if (untilS !== undefined && endWholeDays! < untilS) total += await rowSum(db, q, endWholeDays!, untilS);
  return total;
}

async function rowSum(db: Db, q: WithdrawalTotalQuery, fromS: number, untilS: number): Promise<number> {
  let qb = db
    .selectFrom('withdrawals')
    .select(sql<number>`coalesce(sum(amount), 0)`.as('total'))
    .where('app', '=', q.app)
    .where('livemode', '=', q.livemode)
    .where('created', '>=', fromS)
    .where('created', '<', untilS);
  if (q.status !== undefined) qb = qb.where('status', '=', q.status);
  if (q.channel !== undefined) qb = qb.where('channel', '=', q.channel);
  return Number((await qb.executeTakeFirstOrThrow()).total);
}

export interface TotalsDrift {
  subject: string;
  detail: string;
}

/**
 * Recomputes every bucket (per day and all-time) from the withdrawal rows and names each one that
 * differs (empty buckets, left behind when their last withdrawal moved on, count as absent). A
 * bucket is the sum of its shards.
 */
export async function verifyWithdrawalTotals(db: Db, limit: number): Promise<TotalsDrift[]> {
  const day = sql<number>`created - (created % ${sql.lit(DAY_S)})`;
  const perDay = await db
    .selectFrom('withdrawals')
    .select(['app', 'livemode', 'status', 'channel', day.as('day_s'), sql<number>`count(*)`.as('count'), sql<number>`sum(amount)`.as('amount')])
    .groupBy(['app', 'livemode', 'status', 'channel', day])
    .execute();
  const allTime = new Map<string, { app: string; livemode: number; status: string; channel: string; day_s: number; count: number; amount: number }>();
  for (const d of perDay) {
    const k = JSON.stringify([d.app, d.livemode, d.status, d.channel]);
    const a = allTime.get(k) ?? { app: d.app, livemode: d.livemode, status: d.status, channel: d.channel, day_s: ALL_TIME, count: 0, amount: 0 };
    a.count += Number(d.count);
    a.amount += Number(d.amount);
    allTime.set(k, a);
  }
  const actual = [...perDay, ...allTime.values()];
  const kept = (
    await db
      .selectFrom('withdrawal_totals')
      .select(['app', 'livemode', 'status', 'channel', 'day_s', sql<number>`sum(count)`.as('count'), sql<number>`sum(amount)`.as('amount')])
      .groupBy(['app', 'livemode', 'status', 'channel', 'day_s'])
      .execute()
  ).filter((r) => Number(r.count) !== 0 || Number(r.amount) !== 0);
  const key = (r: { app: string; livemode: number; status: string; channel: string; day_s: number }) =>
    `${r.app}/${Number(r.livemode) ? 'live' : 'test'}/${r.status}/${r.channel}/${Number(r.day_s)}`;
  const keptByKey = new Map(kept.map((r) => [key(r), r]));
  const drift: TotalsDrift[] = [];
  for (const a of actual) {
    const k = key(a);
    const b = keptByKey.get(k);
    keptByKey.delete(k);
    if (!b || Number(b.count) !== Number(a.count) || Number(b.amount) !== Number(a.amount)) {
      drift.push({ subject: k, detail: `withdrawals: ${a.count} totalling ${a.amount}; kept: ${b?.count ?? 0} totalling ${b?.amount ?? 0}` });
    }
  }
  for (const [k, b] of keptByKey) drift.push({ subject: k, detail: `no withdrawals; kept: ${b.count} totalling ${b.amount}` });
  return drift.slice(0, limit);
}
