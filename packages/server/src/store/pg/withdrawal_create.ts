import { CompiledQuery } from 'kysely';
import type { Db } from '../db.ts';
import { isTransientConflict, TRANSACTION_ATTEMPTS } from '../db.ts';
import { databaseBusy } from '../group-commit.ts';
import type { WithdrawalRow } from '../schema.ts';
import { DAY_S, PG_TOTALS_SHARDS, totalsShard } from '../withdrawal_totals.ts';
import { errors } from '../../domain/errors.ts';
import { numericId } from '../../domain/ids.ts';
import { appAccount, assertMoney, InsufficientFunds } from '../../ledger/ledger.ts';

/**
 * PostgreSQL: a withdrawal create (channel + extra, no settle account) as ONE statement, its own
 * implicit transaction: one round trip instead of six (BEGIN, user SELECT, movement, withdrawal
 * INSERT, totals upsert, COMMIT), and the user's row lock is held only for the statement and its
 * commit (issue #12).
 *
 * The same writes as the general path (services/withdrawals.ts createWithdrawal with ledger.ts
 * applyMovement and withdrawal_totals.ts moveWithdrawalTotals), all selected FROM the conditional
 * UPDATE's RETURNING: when the user is missing, disabled or short of funds the UPDATE matches no
 * row and nothing at all is written. Lock order is the general path's: the user row (the UPDATE),
 * then the withdrawal's unique order_no entry (the INSERT reads from the UPDATE), then the shared
 * totals rows, last (their INSERT reads from the withdrawal INSERT), in key order (day_s -1, the
 * all-time bucket, before the day's, in the user's shard; moveWithdrawalTotals sorts them the same way).
 *
 * Every parameter is cast where it appears, so PostgreSQL infers no type from context. The text is
 * a constant: store/db.ts prepares it once per connection under one name (exported for its query
 * plan's test, test/point_lookup_plans.test.ts).
 */
export const CREATE_SQL = `with u as (
  update users
  set available_balance = available_balance - $4::bigint,
      withdrawable_balance = withdrawable_balance - $4::bigint
  where app = $1::text and livemode = $2::integer and id = $3::text and disabled = 0 and withdrawable_balance >= $4::bigint
  returning pk, available_balance, withdrawable_balance
), e as (
  insert into journal_entries (id, app, livemode, type, source, created)
  select $5::text, $1::text, $2::integer, 'withdrawal', $7::text, $8::bigint from u
  returning id
), p as (
  insert into postings (entry_id, seq, app, livemode, account, amount)
  select e.id, 0, $1::text, $2::integer, 'user:' || u.pk || ':withdrawable', -$4::bigint from e cross join u
  union all
  select e.id, 1, $1::text, $2::integer, $9::text, $4::bigint from e
), b as (
  insert into balance_transactions (id, app, livemode, "user", user_pk, entry_id, amount, available_balance, type, source, description, created)
  select $6::text, $1::text, $2::integer, $3::text, u.pk, e.id, -$4::bigint, u.available_balance, 'withdrawal', $7::text, $10::text, $8::bigint
  from u cross join e
), w as (
  insert into withdrawals (id, app, livemode, order_no, request_hash, description, metadata, created, "user", user_pk, amount, user_fee, fee,
                           channel, extra, status, balance_transaction, request_id, payout_tries, payout_round)
  select $7::text, $1::text, $2::integer, $11::text, $12::text, $10::text, $13::text, $8::bigint, $3::text, u.pk, $4::bigint, $14::bigint, 0,
         $15::text, $16::text, 'created', $6::text, $17::text, 0, 0
  from u
  returning id
), t as (
  insert into withdrawal_totals (app, livemode, status, channel, day_s, shard, count, amount)
  select $1::text, $2::integer, 'created', $15::text, d.day_s, $19::integer, 1, $4::bigint
  from w cross join (values (-1::bigint), ($18::bigint)) as d (day_s)
  order by d.day_s
  on conflict (app, livemode, status, channel, day_s, shard) do update
  set count = withdrawal_totals.count + excluded.count, amount = withdrawal_totals.amount + excluded.amount
)
select pk, available_balance, withdrawable_balance from u`;

/**
 * Creates that queued while createWithdrawalPg's statements were in flight, as ONE statement, of
 * one or several users (createWithdrawalPg below). Per user, one conditional UPDATE debits the
 * total of that user's creates; the users' rows are locked first, in the order of their pk (the
 * order ledger.ts applyMovement takes them in), so two statements that share users cannot
 * deadlock. Every row the single statement writes is written once per create, from the arrays;
 * `ru` numbers each user's creates in queue order and gives each the available balance after its
 * own debit, as if they had run one after the other. The totals are summed per bucket first (an
 * upsert may not touch a row twice) and taken in the order moveWithdrawalTotals sorts its keys in
 * (channel, day, shard, as text). A user that does not match (missing, disabled, or short of the
 * total of its creates) gets nothing written and is missing from the result; any error writes
 * nothing at all.
 */
const COMBINED_SQL = `with r as (
  select * from unnest($4::text[], $5::integer[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[],
                       $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[])
    with ordinality as r (user_id, shard, id, entry_id, line_id, amount, description, order_no, request_hash, metadata, user_fee, channel,
                          extra, request_id, n)
), g as (
  select user_id, sum(amount)::bigint as total from r group by user_id
), l as materialized (
  select users.pk, g.total from users join g on users.id = g.user_id
  where users.app = $1::text and users.livemode = $2::integer and users.disabled = 0 and users.withdrawable_balance >= g.total
  order by users.pk collate "C"
  for update of users
), u as (
  update users
  set available_balance = available_balance - l.total,
      withdrawable_balance = withdrawable_balance - l.total
  from l
  where users.pk = l.pk and users.disabled = 0 and users.withdrawable_balance >= l.total
  returning users.id, users.pk, users.available_balance, users.withdrawable_balance, l.total
), ru as (
  select r.*, u.pk, u.available_balance + u.total - sum(r.amount) over (partition by r.user_id order by r.n) as available_after
  from r join u on u.id = r.user_id
), e as (
  insert into journal_entries (id, app, livemode, type, source, created)
  select ru.entry_id, $1::text, $2::integer, 'withdrawal', ru.id, $3::bigint from ru order by ru.n
  returning id
), p as (
  insert into postings (entry_id, seq, app, livemode, account, amount)
  select e.id, 0, $1::text, $2::integer, 'user:' || ru.pk || ':withdrawable', -ru.amount from e join ru on ru.entry_id = e.id
  union all
  select e.id, 1, $1::text, $2::integer, $18::text, ru.amount from e join ru on ru.entry_id = e.id
), b as (
  insert into balance_transactions (id, app, livemode, "user", user_pk, entry_id, amount, available_balance, type, source, description, created)
  select ru.line_id, $1::text, $2::integer, ru.user_id, ru.pk, e.id, -ru.amount, ru.available_after, 'withdrawal', ru.id, ru.description, $3::bigint
  from e join ru on ru.entry_id = e.id
), w as (
  insert into withdrawals (id, app, livemode, order_no, request_hash, description, metadata, created, "user", user_pk, amount, user_fee, fee,
                           channel, extra, status, balance_transaction, request_id, payout_tries, payout_round)
  select ru.id, $1::text, $2::integer, ru.order_no, ru.request_hash, ru.description, ru.metadata, $3::bigint, ru.user_id, ru.pk, ru.amount,
         ru.user_fee, 0, ru.channel, ru.extra, 'created', ru.line_id, ru.request_id, 0, 0
  from ru order by ru.n
  returning id
), t as (
  insert into withdrawal_totals (app, livemode, status, channel, day_s, shard, count, amount)
  select $1::text, $2::integer, 'created', ru.channel, d.day_s, ru.shard, count(*), sum(ru.amount)::bigint
  from w join ru on ru.id = w.id cross join (values (-1::bigint), ($19::bigint)) as d (day_s)
  group by ru.channel, d.day_s, ru.shard
  order by ru.channel collate "C", d.day_s, ru.shard::text collate "C"
  on conflict (app, livemode, status, channel, day_s, shard) do update
  set count = withdrawal_totals.count + excluded.count, amount = withdrawal_totals.amount + excluded.amount
)
select id, pk, available_balance, withdrawable_balance from u`;

/** Only when the create matched no user row: which refusal it was. */
const DIAGNOSE_SQL = 'select disabled, withdrawable_balance from users where app = $1::text and livemode = $2::integer and id = $3::text';

export interface PgWithdrawalCreate {
  app: string;
  livemode: boolean;
  requestId: string | null;
  user: string;
  amount: number;
  userFee: number;
  channel: string;
  /** Already validated and normalised. */
  extra: Record<string, unknown>;
  orderNo: string;
  requestHash: string;
  description: string | null;
  /** Serialised metadata (services/common.ts metadataText). */
  metadata: string;
}

interface CreatedUser {
  pk: string;
  available_balance: number;
  withdrawable_balance: number;
}

/**
 * At most this many create statements of this module are in flight per process (of the pool's 10
 * connections by default). Fewer lanes make bigger statements and cost PostgreSQL less per create:
 * `withdrawal_create_1k` on PostgreSQL, 2026-11-27, two rounds each, signed / unsigned creates/s and
 * PostgreSQL CPU per signed create: 1 lane 2,010 · 2,081 / 4,336 · 4,352, 187–198 µs; 2 lanes
 * 2,018 · 1,704 · 1,949 · 1,281 / 2,943 · 3,997 · 3,890 · 3,091, 260–307 µs; 4 lanes 1,563 · 1,610 /
 * 2,831 · 3,002, 316–365 µs; 8 lanes 874 · 1,404 / 1,771 · 1,919, 522–608 µs. Two, not one: with
 * one, a statement that waits (for a row another process holds, for a slow disk) holds up every
 * create of the process; with two, the others still go.
 */
export const MAX_STATEMENTS_IN_FLIGHT = 2;
/** At most this many queued creates go into one combined statement. */
export const MAX_COMBINED = 32;
/** At most this many creates wait in this process; more are refused as the database being busy (503). */
export const MAX_WAITING = 10_000;

interface Waiting {
  c: PgWithdrawalCreate;
  /** Its user: app, mode and id. */
  key: string;
  resolve: (row: WithdrawalRow) => void;
  reject: (err: unknown) => void;
}

interface Lanes {
  running: number;
  /** Users with a create in a statement in flight: their next creates wait for it. */
  busy: Set<string>;
  waiting: Waiting[];
}

/** Combined statements that wrote creates, and those creates (tests read it). */
export const combinedStats = { statements: 0, creates: 0 };

/** Per database handle: the statements in flight in this process, and the creates waiting. */
const lanesOf = new WeakMap<Db, Lanes>();

/**
 * Runs the create; returns the withdrawal row as the general path builds it. Throws the API's
 * user_not_found / user_disabled, or the ledger's InsufficientFunds (createOnce maps it), having
 * written nothing. A deadlock or serialization failure is run again, like Store.transaction.
 *
 * Creates are sent as at most MAX_STATEMENTS_IN_FLIGHT (2) statements at a time. A create that finds
 * a lane free (a quiet server) runs at once, alone, as before. Under load the creates that arrive
 * while every lane is busy wait here, and the next free lane sends up to MAX_COMBINED of them as
 * ONE statement (COMBINED_SQL): one round trip, one commit and its WAL flush for all of them.
 * Alone, a create cost PostgreSQL 0.5–0.9 ms of CPU on this machine kind, most of it per
 * statement and per commit; combined, 0.15–0.3 ms (bench README, "2026-11-27, afternoon").
 *
 * A user is in at most one statement in flight: its creates queue behind it, in order. Every
 * create locks its user's row from its UPDATE to its COMMIT, WAL flush included, so before this,
 * the creates of one hot balance ran one after another in PostgreSQL, each waking the next
 * (~700/s here); now they go together.
 *
 * Quiet creates keep a statement of their own (CREATE_SQL), not a combined one of one: measured
 * on one connection, 6,000 creates each way interleaved in blocks of 50 over 1,000 users, 2026-11-27,
 * a combined statement of one cost PostgreSQL 495–563 µs of CPU against 372–428 µs, and its answer
 * came 160–200 µs later (unnest, the grouping, the window and the separate FOR UPDATE step).
 *
 * A user the combined statement could not debit (missing, disabled, or short of the total of its
 * creates in it) has nothing written, and its creates then run alone, one by one in queue order,
 * each with the single statement's own answer: the first ones that fit the balance succeed and
 * the rest are refused, as they would have been. A combined statement that fails (a duplicate
 * order_no, a conflict) writes nothing, and all its creates run alone that way.
 */
export async function createWithdrawalPg(db: Db, nowMs: () => number, c: PgWithdrawalCreate): Promise<WithdrawalRow> {
  assertMoney(Number.isSafeInteger(c.amount) && c.amount > 0, `withdrawal amount must be a positive integer, got ${c.amount}`);
  let lanes = lanesOf.get(db);
  if (!lanes) lanesOf.set(db, (lanes = { running: 0, busy: new Set(), waiting: [] }));
  if (lanes.waiting.length >= MAX_WAITING) throw databaseBusy('too many withdrawal creates waiting for the database');
  const key = JSON.stringify([c.app, c.livemode, c.user]);
  const answer = new Promise<WithdrawalRow>((resolve, reject) => lanes.waiting.push({ c, key, resolve, reject }));
  pump(db, nowMs, lanes);
  return answer;
}

/** Starts statements while a lane is free and a create waits whose user is not in flight. */
function pump(db: Db, nowMs: () => number, lanes: Lanes): void {
  while (lanes.running < MAX_STATEMENTS_IN_FLIGHT) {
    const batch = takeBatch(lanes);
    if (batch.length === 0) return;
    lanes.running++;
    for (const w of batch) lanes.busy.add(w.key);
    void send(db, nowMs, batch).finally(() => {
      lanes.running--;
      for (const w of batch) lanes.busy.delete(w.key);
      pump(db, nowMs, lanes);
    });
  }
}

/**
 * Up to MAX_COMBINED waiting creates, oldest first, of the oldest one's app and mode and of users
 * with nothing in flight (a user's creates keep their order: once one of them is passed over, so
 * are the rest of that user's). The walk stops once the batch is full: with 10,000 creates
 * waiting, a take looks at them up to its 32nd pick and copies the rest unread.
 */
function takeBatch(lanes: Lanes): Waiting[] {
  const { waiting } = lanes;
  const batch: Waiting[] = [];
  const passed: Waiting[] = [];
  const skipped = new Set<string>();
  let i = 0;
  for (; i < waiting.length && batch.length < MAX_COMBINED; i++) {
    const w = waiting[i]!;
    const sameScope = batch.length === 0 || (w.c.app === batch[0]!.c.app && w.c.livemode === batch[0]!.c.livemode);
    if (sameScope && !lanes.busy.has(w.key) && !skipped.has(w.key)) batch.push(w);
    else {
      skipped.add(w.key);
      passed.push(w);
    }
  }
  if (batch.length > 0) lanes.waiting = i === waiting.length ? passed : passed.concat(waiting.slice(i));
  return batch;
}

/** One statement for the batch: alone for one create, combined for more; what it could not write runs alone. */
async function send(db: Db, nowMs: () => number, batch: Waiting[]): Promise<void> {
  let left = batch;
  if (batch.length > 1) {
    let written: Map<number, { user: CreatedUser; row: WithdrawalRow }> | null = null;
    try {
      written = await createCombined(db, nowMs(), batch.map((w) => w.c));
    } catch {
      written = null; // nothing was written: every create runs alone below, and answers for itself
    }
    if (written) {
      // Committed: from here on nothing of the batch runs again (a check that fails is that create's error).
      combinedStats.statements++;
      combinedStats.creates += written.size;
      left = [];
      batch.forEach((w, i) => {
        const done = written.get(i);
        if (!done) return void left.push(w);
        try {
          checkUser(done.user, w.c.user);
          w.resolve(done.row);
        } catch (err) {
          w.reject(err);
        }
      });
    }
  }
  for (const w of left) {
    try {
      w.resolve(await createAlone(db, nowMs, w.c));
    } catch (err) {
      w.reject(err);
    }
  }
}

/** The single statement, run again after a deadlock or serialization failure. */
async function createAlone(db: Db, nowMs: () => number, c: PgWithdrawalCreate): Promise<WithdrawalRow> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createOnce(db, nowMs(), c);
    } catch (err) {
      if (attempt >= TRANSACTION_ATTEMPTS || !isTransientConflict(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}

async function createOnce(db: Db, nowMs: number, c: PgWithdrawalCreate): Promise<WithdrawalRow> {
  const created = Math.floor(nowMs / 1000);
  const id = numericId('withdrawal', nowMs);
  const entryId = numericId('journal_entry', nowMs);
  const lineId = numericId('balance_transaction', nowMs);
  const livemode = c.livemode ? 1 : 0;
  const extra = JSON.stringify(c.extra);
  const { rows } = await db.executeQuery<CreatedUser>(
    CompiledQuery.raw(CREATE_SQL, [
      c.app, livemode, c.user, c.amount, entryId, lineId, id, created, appAccount(c.app, c.livemode, 'withdrawal_hold'),
      c.description, c.orderNo, c.requestHash, c.metadata, c.userFee, c.channel, extra, c.requestId, created - (created % DAY_S),
      totalsShard(c.user, PG_TOTALS_SHARDS),
    ]),
  );
  const user = rows[0];
  if (!user) return refused(db, c, livemode);
  checkUser(user, c.user);
  return withdrawalRow(c, { id, lineId, created, extra, userPk: user.pk });
}

/**
 * Creates (of one app and mode) as one statement (COMBINED_SQL). Returns the rows written, with
 * their user's balances after the statement, by the create's index in `cs`; a create of a user
 * the statement could not debit is not among them. Throws when the statement failed: then
 * nothing was written.
 */
async function createCombined(db: Db, nowMs: number, cs: PgWithdrawalCreate[]): Promise<Map<number, { user: CreatedUser; row: WithdrawalRow }>> {
  const created = Math.floor(nowMs / 1000);
  const first = cs[0]!;
  const made = cs.map((c) => {
    assertMoney(c.app === first.app && c.livemode === first.livemode, 'combined creates must share one app and mode');
    return {
      c, id: numericId('withdrawal', nowMs), entryId: numericId('journal_entry', nowMs), lineId: numericId('balance_transaction', nowMs),
      extra: JSON.stringify(c.extra),
    };
  });
  const column = <T>(f: (m: (typeof made)[number]) => T) => made.map(f);
  const { rows } = await db.executeQuery<CreatedUser & { id: string }>(
    CompiledQuery.raw(COMBINED_SQL, [
      first.app, first.livemode ? 1 : 0, created,
      column((m) => m.c.user), column((m) => totalsShard(m.c.user, PG_TOTALS_SHARDS)), column((m) => m.id), column((m) => m.entryId),
      column((m) => m.lineId), column((m) => m.c.amount), column((m) => m.c.description), column((m) => m.c.orderNo),
      column((m) => m.c.requestHash), column((m) => m.c.metadata), column((m) => m.c.userFee), column((m) => m.c.channel),
      column((m) => m.extra), column((m) => m.c.requestId), appAccount(first.app, first.livemode, 'withdrawal_hold'), created - (created % DAY_S),
    ]),
  );
  const debited = new Map(rows.map((u) => [u.id, u]));
  const written = new Map<number, { user: CreatedUser; row: WithdrawalRow }>();
  made.forEach((m, i) => {
    const user = debited.get(m.c.user);
    if (user) written.set(i, { user, row: withdrawalRow(m.c, { id: m.id, lineId: m.lineId, created, extra: m.extra, userPk: user.pk }) });
  });
  return written;
}

function checkUser(user: CreatedUser, userId: string): void {
  assertMoney(user.available_balance >= 0 && user.withdrawable_balance >= 0, `negative balance for ${userId}`);
  assertMoney(user.withdrawable_balance <= user.available_balance, `withdrawable above available for ${userId}`);
}

/** The withdrawal row as the general path builds it. */
function withdrawalRow(c: PgWithdrawalCreate, w: { id: string; lineId: string; created: number; extra: string; userPk: string }): WithdrawalRow {
  return {
    id: w.id, app: c.app, livemode: c.livemode ? 1 : 0, order_no: c.orderNo, request_hash: c.requestHash,
    description: c.description, metadata: c.metadata, created: w.created,
    user: c.user, user_pk: w.userPk, amount: c.amount, user_fee: c.userFee, fee: 0,
    channel: c.channel, extra: w.extra, status: 'created', failure_msg: null, source: null,
    balance_transaction: w.lineId, settle_account: null, batch_withdrawal: null,
    time_canceled: null, time_succeeded: null, request_id: c.requestId,
    payout_due_ms: null, payout_lease_ms: null, payout_phase: null, payout_tries: 0, payout_round: 0,
  };
}

/** The UPDATE matched no row: the same refusals, in the same order, as activeUser then the balance check. */
async function refused(db: Db, c: PgWithdrawalCreate, livemode: number): Promise<never> {
  const { rows } = await db.executeQuery<{ disabled: number }>(CompiledQuery.raw(DIAGNOSE_SQL, [c.app, livemode, c.user]));
  const user = rows[0];
  if (!user) throw errors.userNotFound(c.user, 'user');
  if (user.disabled) throw errors.userDisabled(c.user, 'user');
  throw new InsufficientFunds(c.user);
}
