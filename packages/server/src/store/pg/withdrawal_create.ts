import { CompiledQuery } from 'kysely';
import type { Db } from '../db.ts';
import { isTransientConflict, TRANSACTION_ATTEMPTS } from '../db.ts';
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
 * Runs the create; returns the withdrawal row as the general path builds it. Throws the API's
 * user_not_found / user_disabled, or the ledger's InsufficientFunds (createOnce maps it), having
 * written nothing. A deadlock or serialization failure is run again, like Store.transaction.
 */
export async function createWithdrawalPg(db: Db, nowMs: () => number, c: PgWithdrawalCreate): Promise<WithdrawalRow> {
  assertMoney(Number.isSafeInteger(c.amount) && c.amount > 0, `withdrawal amount must be a positive integer, got ${c.amount}`);
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
  assertMoney(user.available_balance >= 0 && user.withdrawable_balance >= 0, `negative balance for ${c.user}`);
  assertMoney(user.withdrawable_balance <= user.available_balance, `withdrawable above available for ${c.user}`);
  return {
    id, app: c.app, livemode, order_no: c.orderNo, request_hash: c.requestHash,
    description: c.description, metadata: c.metadata, created,
    user: c.user, user_pk: user.pk, amount: c.amount, user_fee: c.userFee, fee: 0,
    channel: c.channel, extra, status: 'created', failure_msg: null, source: null,
    balance_transaction: lineId, settle_account: null, batch_withdrawal: null,
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
