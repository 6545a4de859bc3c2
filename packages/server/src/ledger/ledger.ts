import { sql } from 'kysely';
import { isPostgres } from '../store/engine.ts';
import type { Db } from '../store/db.ts';
import { numericId } from '../domain/ids.ts';
import { insertRows, prepared } from '../store/prepared.ts';

/**
 * The double-entry journal. Every balance change is one journal entry whose postings sum to zero.
 *
 * Ledger accounts (names are strings so new kinds need no migration):
 *   user:<pk>:withdrawable   money the user may spend, withdraw or transfer
 *   user:<pk>:bonus          money the user may spend but not withdraw (balance_bonuses)
 *   app:<app>:<mode>:withdrawal_hold     amounts held by withdrawals not yet final
 *   app:<app>:<mode>:payout_clearing     amounts paid out to payees through a channel
 *   app:<app>:<mode>:fee_income          user_fee kept by the merchant
 *   app:<app>:<mode>:bonus_funding       the merchant's side of bonuses (goes negative)
 *   app:<app>:<mode>:settlement_funding  the merchant's side of settlements (goes negative)
 *
 * A user's `withdrawable_balance` is the sum of their withdrawable postings and their
 * `available_balance` the sum of both their accounts; the users row keeps both as a projection
 * updated in the same transaction, so balance checks are one conditional UPDATE of one row.
 * App accounts have no projection row: they are written by every money movement of an app, and
 * a shared row would serialise the whole app on one lock (see LESSONS.md, Formance).
 */
export type Bucket = 'withdrawable' | 'bonus';
export type AppAccount = 'withdrawal_hold' | 'payout_clearing' | 'fee_income' | 'bonus_funding' | 'settlement_funding';

export const userAccount = (userPk: string, bucket: Bucket) => `user:${userPk}:${bucket}`;
export const appAccount = (app: string, livemode: boolean, kind: AppAccount) =>
  `app:${app}:${livemode ? 'live' : 'test'}:${kind}`;

export type BalanceTransactionType =
  | 'withdrawal'
  | 'withdrawal_failed'
  | 'withdrawal_revoked'
  | 'transfer'
  | 'receipts_extra'
  | 'credited';

/** Java and C# SDKs read balances as 32-bit ints: a credit the user may refuse never takes them above this. */
export const MAX_BALANCE = 2_147_483_647;

export interface UserChange {
  userPk: string;
  userId: string;
  bucket: Bucket;
  /** Signed fen: negative takes money from the user. */
  amount: number;
  /**
   * New money coming in (bonus, settlement, transfer received) is refused when it would take the
   * available balance above MAX_BALANCE. Money going back to the user (a failed or canceled
   * withdrawal) is never refused: it was theirs a moment ago.
   */
  capped?: boolean;
  /** The user-facing balance_transaction this change shows as. */
  line: { type: BalanceTransactionType; description: string | null };
  /**
   * Set when the caller already made the conditional balance UPDATE (debitActiveUser): the
   * available balance after it. applyMovement then writes only the journal and the line.
   */
  availableAfter?: number;
}

export interface Movement {
  app: string;
  livemode: boolean;
  createdS: number;
  nowMs: number;
  /** Journal entry type, e.g. `withdrawal`, `withdrawal_succeeded`. */
  type: string;
  /** Id of the object that caused the movement. */
  source: string;
  users: UserChange[];
  apps: { account: AppAccount; amount: number }[];
}

export class InsufficientFunds extends Error {
  constructor(readonly userId: string) {
    super(`insufficient withdrawable balance for user ${userId}`);
  }
}

export class BalanceLimitExceeded extends Error {
  constructor(readonly userId: string) {
    super(`a credit would take the balance of user ${userId} above ${MAX_BALANCE}`);
  }
}

/** Programmer errors on the money path fail loudly (TigerBeetle style), never silently. */
export function assertMoney(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`ledger invariant violated: ${message}`);
}

function assertAmount(amount: number): void {
  assertMoney(Number.isSafeInteger(amount) && amount !== 0, `posting amount must be a non-zero integer, got ${amount}`);
}

/**
 * Applies one movement inside the caller's transaction: user projections (conditional on
 * sufficient funds), the journal entry with its postings, and one balance_transaction per user
 * change. Returns the balance_transaction ids in the order of `users`.
 * Throws InsufficientFunds (the caller's transaction then rolls back) when a debit would overdraw.
 */
export async function applyMovement(trx: Db, m: Movement): Promise<string[]> {
  const sum = m.users.reduce((s, u) => s + u.amount, 0) + m.apps.reduce((s, a) => s + a.amount, 0);
  assertMoney(sum === 0, `postings of ${m.type} ${m.source} sum to ${sum}`);
  for (const u of m.users) assertAmount(u.amount);
  for (const a of m.apps) assertAmount(a.amount);

  if (m.users.length === 1 && m.users[0]!.availableAfter === undefined && isPostgres(trx)) return [await applyOneUserMovementPg(trx, m, m.users[0]!)];

  // Touch user rows in one global order so concurrent transfers A→B and B→A cannot deadlock.
  const order = m.users.map((u, i) => i).sort((a, b) => (m.users[a]!.userPk < m.users[b]!.userPk ? -1 : 1));
  const after: number[] = new Array(m.users.length);
  for (const i of order) {
    const u = m.users[i]!;
    after[i] = u.availableAfter ?? (await changeUserBalance(trx, u));
  }

  const entryId = numericId('journal_entry', m.nowMs);
  const livemode = m.livemode ? 1 : 0;
  await insertRows(trx, 'journal_entries', [{ id: entryId, app: m.app, livemode, type: m.type, source: m.source, created: m.createdS }]);
  const postings = [
    ...m.users.map((u) => ({ account: userAccount(u.userPk, u.bucket), amount: u.amount })),
    ...m.apps.map((a) => ({ account: appAccount(m.app, m.livemode, a.account), amount: a.amount })),
  ];
  await insertRows(
    trx,
    'postings',
    postings.map((p, seq) => ({ entry_id: entryId, seq, app: m.app, livemode, account: p.account, amount: p.amount })),
  );

  const lineIds = m.users.map(() => numericId('balance_transaction', m.nowMs));
  // Movements between app accounts only (a payout settling) show no user-facing line.
  if (lineIds.length === 0) return lineIds;
  await insertRows(
    trx,
    'balance_transactions',
    m.users.map((u, i) => ({
      id: lineIds[i]!,
      app: m.app,
      livemode,
      user: u.userId,
      user_pk: u.userPk,
      entry_id: entryId,
      amount: u.amount,
      available_balance: after[i]!,
      type: u.line.type,
      source: m.source,
      description: u.line.description,
      created: m.createdS,
    })),
  );
  return lineIds;
}

/**
 * What the user's withdrawals still hold (`created`, `pending`): money that comes back to the
 * available balance when one is canceled or fails, and that return is never refused. So a capped
 * credit counts it: otherwise a credit let in below the cap, then a cancel, would take the balance
 * above MAX_BALANCE. Only capped credits (bonuses, settlements, transfers received) pay for it:
 * a walk of the user's withdrawals on the (app, livemode, user, created, id) index. A create moves
 * money from available to held and a cancel or failure moves it back, so the sum checked does not
 * change under a concurrent one (PostgreSQL re-checks the locked row with the subquery's older
 * snapshot); a success lowers it, so an older snapshot only refuses more.
 */
const heldByWithdrawals = sql<number>`(select coalesce(sum(w.amount), 0) from withdrawals w
  where w.app = users.app and w.livemode = users.livemode and w."user" = users.id and w.status in ('created', 'pending'))`;

type BalanceUpdate = { amount: number; withdrawableDelta: number; pk: string; bound: number };
type Balances = { available_balance: number; withdrawable_balance: number };

/** The four shapes of a balance change, each compiled once (store/prepared.ts). */
function balanceUpdate(condition: 'withdrawable_debit' | 'bonus_debit' | 'capped_credit' | 'credit') {
  return prepared<BalanceUpdate, Balances>((db, p) => {
    let query = db
      .updateTable('users')
      .set({
        available_balance: sql`available_balance + ${p.amount}`,
        withdrawable_balance: sql`withdrawable_balance + ${p.withdrawableDelta}`,
      })
      .where('pk', '=', p.pk);
    // The check and the debit are one statement: no read-then-write race on any engine.
    if (condition === 'withdrawable_debit') query = query.where('withdrawable_balance', '>=', p.bound);
    else if (condition === 'bonus_debit') query = query.where(sql<boolean>`available_balance - withdrawable_balance >= ${p.bound}`);
    else if (condition === 'capped_credit') query = query.where(sql<boolean>`available_balance + ${heldByWithdrawals} <= ${p.bound}`);
    return query.returning(['available_balance', 'withdrawable_balance']);
  });
}
const BALANCE_UPDATES = {
  withdrawable_debit: balanceUpdate('withdrawable_debit'),
  bonus_debit: balanceUpdate('bonus_debit'),
  capped_credit: balanceUpdate('capped_credit'),
  credit: balanceUpdate('credit'),
};

/**
 * A withdrawable debit of a user named by id, who must exist and not be disabled: the lookup and
 * the conditional UPDATE as one statement, where the general path reads the user, then updates
 * it by pk (one statement fewer of ~9 per withdrawal create, issue #12). Returns null when no row
 * matched: the caller then reads the user to say why (unknown, disabled, or short of funds).
 * Exported for its query plan's test (test/point_lookup_plans.test.ts).
 */
export const ACTIVE_USER_DEBIT = prepared<{ app: string; livemode: number; id: string; amount: number }, Balances & { pk: string }>((db, p) =>
  db
    .updateTable('users')
    .set({
      available_balance: sql`available_balance - ${p.amount}`,
      withdrawable_balance: sql`withdrawable_balance - ${p.amount}`,
    })
    .where('app', '=', p.app)
    .where('livemode', '=', p.livemode)
    .where('id', '=', p.id)
    .where('disabled', '=', 0)
    .where('withdrawable_balance', '>=', p.amount)
    .returning(['pk', 'available_balance', 'withdrawable_balance']),
);

export async function debitActiveUser(
  trx: Db,
  d: { app: string; livemode: boolean; userId: string; amount: number },
): Promise<{ userPk: string; availableAfter: number } | null> {
  assertMoney(Number.isSafeInteger(d.amount) && d.amount > 0, `debit must be a positive integer, got ${d.amount}`);
  const row = (await ACTIVE_USER_DEBIT.execute(trx, { app: d.app, livemode: d.livemode ? 1 : 0, id: d.userId, amount: d.amount })).rows[0];
  if (!row) return null;
  checkBalances(row, d.userId);
  return { userPk: row.pk, availableAfter: row.available_balance };
}

function checkBalances(row: Balances, userId: string): void {
  assertMoney(row.available_balance >= 0 && row.withdrawable_balance >= 0, `negative balance for ${userId}`);
  assertMoney(row.withdrawable_balance <= row.available_balance, `withdrawable above available for ${userId}`);
}

/** One conditional UPDATE per change; returns the user's available balance after it. */
async function changeUserBalance(trx: Db, u: UserChange): Promise<number> {
  const withdrawableDelta = u.bucket === 'withdrawable' ? u.amount : 0;
  const [statement, bound] =
    u.amount < 0
      ? u.bucket === 'withdrawable'
        ? [BALANCE_UPDATES.withdrawable_debit, -u.amount]
        : [BALANCE_UPDATES.bonus_debit, -u.amount]
      : u.capped
        ? [BALANCE_UPDATES.capped_credit, MAX_BALANCE - u.amount]
        : [BALANCE_UPDATES.credit, 0];
  const row = (await statement.execute(trx, { amount: u.amount, withdrawableDelta, pk: u.userPk, bound })).rows[0];
  if (!row) throw u.amount < 0 ? new InsufficientFunds(u.userId) : new BalanceLimitExceeded(u.userId);
  checkBalances(row, u.userId);
  return row.available_balance;
}

/**
 * PostgreSQL: a one-user movement (a withdrawal, a bonus, a settlement) as ONE statement, with
 * data-modifying CTEs: the conditional balance UPDATE, the journal entry, its postings and the
 * balance_transaction. Each statement is a network round trip, and the user's row lock is held
 * from the UPDATE until COMMIT, so four round trips under the lock become one (issue #12).
 * Same rules as the general path: the inserts select FROM the UPDATE's RETURNING, so when the
 * conditional UPDATE matches no row (insufficient funds, the balance cap) nothing is written and
 * the caller's transaction rolls back on the error thrown here.
 */
async function applyOneUserMovementPg(trx: Db, m: Movement, u: UserChange): Promise<string> {
  const entryId = numericId('journal_entry', m.nowMs);
  const lineId = numericId('balance_transaction', m.nowMs);
  const livemode = m.livemode ? 1 : 0;
  const withdrawableDelta = u.bucket === 'withdrawable' ? u.amount : 0;
  const condition =
    u.amount < 0
      ? u.bucket === 'withdrawable'
        ? sql`and withdrawable_balance >= ${-u.amount}::bigint`
        : sql`and available_balance - withdrawable_balance >= ${-u.amount}::bigint`
      : u.capped
        ? sql`and available_balance + ${heldByWithdrawals} <= ${MAX_BALANCE - u.amount}::bigint`
        : sql``;
  const postings = [
    { account: userAccount(u.userPk, u.bucket), amount: u.amount },
    ...m.apps.map((a) => ({ account: appAccount(m.app, m.livemode, a.account), amount: a.amount })),
  ];
  const values = sql.join(postings.map((p, seq) => sql`(${seq}::integer, ${p.account}::text, ${p.amount}::bigint)`));
  const { rows } = await sql<{ available_balance: number; withdrawable_balance: number }>`
    with u as (
      update users
      set available_balance = available_balance + ${u.amount}::bigint,
          withdrawable_balance = withdrawable_balance + ${withdrawableDelta}::bigint
      where pk = ${u.userPk}::text ${condition}
      returning available_balance, withdrawable_balance
    ), e as (
      insert into journal_entries (id, app, livemode, type, source, created)
      select ${entryId}::text, ${m.app}::text, ${livemode}::integer, ${m.type}::text, ${m.source}::text, ${m.createdS}::bigint from u
      returning id
    ), p as (
      insert into postings (entry_id, seq, app, livemode, account, amount)
      select e.id, v.seq, ${m.app}::text, ${livemode}::integer, v.account, v.amount
      from e cross join (values ${values}) as v (seq, account, amount)
    ), b as (
      insert into balance_transactions (id, app, livemode, "user", user_pk, entry_id, amount, available_balance, type, source, description, created)
      select ${lineId}::text, ${m.app}::text, ${livemode}::integer, ${u.userId}::text, ${u.userPk}::text, e.id, ${u.amount}::bigint,
             u.available_balance, ${u.line.type}::text, ${m.source}::text, ${u.line.description}::text, ${m.createdS}::bigint
      from u cross join e
    )
    select available_balance, withdrawable_balance from u`.execute(trx);
  const row = rows[0];
  if (!row) throw u.amount < 0 ? new InsufficientFunds(u.userId) : new BalanceLimitExceeded(u.userId);
  assertMoney(row.available_balance >= 0 && row.withdrawable_balance >= 0, `negative balance for ${u.userId}`);
  assertMoney(row.withdrawable_balance <= row.available_balance, `withdrawable above available for ${u.userId}`);
  return lineId;
}
