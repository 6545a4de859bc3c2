import { sql } from 'kysely';
import type { Db, Engine } from '../store/db.ts';
import { observeLedgerVerification } from '../observability/metrics.ts';
import { verifyWithdrawalTotals } from '../store/withdrawal_totals.ts';
import { isPostgres } from '../store/engine.ts';

export interface Drift {
  kind:
    | 'entry_unbalanced'
    | 'user_balance'
    | 'negative_balance'
    | 'withdrawable_above_available'
    | 'line_mismatch'
    | 'hold_mismatch'
    | 'withdrawal_totals';
  subject: string;
  detail: string;
}

export interface VerifyReport {
  ok: boolean;
  entries: number;
  postings: number;
  users: number;
  drift: Drift[];
}

export const MAX_REPORTED = 100;

/**
 * Recomputes every balance from the journal: each entry sums to zero, each user's projection
 * equals the sum of their postings, no balance is negative, withdrawable never exceeds available,
 * the balance_transactions (the user-facing lines) add up to the same amounts, and each app's
 * withdrawal hold equals its open (created or pending) withdrawals, and the kept withdrawal totals
 * equal the withdrawals they sum.
 *
 * Reads one snapshot (a read-only transaction), so it can run against a live server without
 * reporting the money that moved between two of its queries as drift.
 */
export async function verifyLedger(store: { db: Db; engine: Engine }): Promise<VerifyReport> {
  return inSnapshot(store, verifySnapshot);
}

/**
 * Runs fn in one read-only snapshot of the database (what every verification reads). On
 * PostgreSQL without the pool's statement timeout (30 s, store/db.ts: it bounds requests): summing a
 * big journal takes longer, and a verify cut short verifies nothing. SET LOCAL ends with the snapshot.
 */
export async function inSnapshot<T>(store: { db: Db; engine: Engine }, fn: (db: Db) => Promise<T>): Promise<T> {
  return store.db.connection().execute(async (conn) => {
    await sql.raw(store.engine === 'postgres' ? 'begin isolation level repeatable read read only' : 'begin deferred').execute(conn);
    if (store.engine === 'postgres') await sql.raw('set local statement_timeout = 0').execute(conn);
    try {
      return await fn(conn);
    } finally {
      await sql.raw('commit').execute(conn);
    }
  });
}

export async function verifySnapshot(db: Db): Promise<VerifyReport> {
  const drift: Drift[] = [];
  const add = (d: Drift) => {
    if (drift.length < MAX_REPORTED) drift.push(d);
  };

  const { entries, postings } = await checkEntries(db, null, add);
  // A page of users at a time, each page's postings and balance lines through their indexes: the
  // users part holds one page in memory, however many users there are (not a map of every account).
  let users = 0;
  const pageSize = 1000;
  let after = '';
  for (;;) {
    const rows = await db
      .selectFrom('users')
      .select(['pk', 'app', 'livemode', 'id', 'available_balance', 'withdrawable_balance'])
      .where('pk', '>', after)
      .orderBy('pk')
      .limit(pageSize)
      .execute();
    users += rows.length;
    await checkUserRows(db, rows, add);
    if (rows.length < pageSize) break;
    after = rows[rows.length - 1]!.pk;
  }
  for (const o of await unownedUserAccounts(db)) {
    add({ kind: 'user_balance', subject: o.account, detail: `postings of ${Number(o.total)} to an account with no user` });
  }

  const holds = await db
    .selectFrom('postings')
    .select(['account', sql<number>`sum(amount)`.as('total')])
    .where('account', 'like', 'app:%:withdrawal_hold')
    .groupBy('account')
    .execute();
  const open = await db
    .selectFrom('withdrawals')
    .select(['app', 'livemode', sql<number>`sum(amount)`.as('total')])
    .where('status', 'in', ['created', 'pending'])
    .groupBy(['app', 'livemode'])
    .execute();
  const openByAccount = new Map(open.map((o) => [`app:${o.app}:${o.livemode ? 'live' : 'test'}:withdrawal_hold`, Number(o.total)]));
  for (const account of new Set([...holds.map((h) => h.account), ...openByAccount.keys()])) {
    const held = Number(holds.find((h) => h.account === account)?.total ?? 0);
    const owed = openByAccount.get(account) ?? 0;
    if (held !== owed) add({ kind: 'hold_mismatch', subject: account, detail: `holds ${held} but open withdrawals total ${owed}` });
  }

  // The kept sums behind total_withdrawals_amount must equal the rows they sum.
  for (const d of await verifyWithdrawalTotals(db, MAX_REPORTED)) add({ kind: 'withdrawal_totals', ...d });

  observeLedgerVerification(drift.length);
  return { ok: drift.length === 0, entries, postings, users, drift };
}

/** A range of journal entries (after, through], or null for the whole journal. */
export type EntryRange = { after: string; through: string } | null;

/** The postings of a range of entries (all when null). Their primary key starts with entry_id: a range reads only its own rows. */
export function postingsIn(db: Db, range: EntryRange) {
  const q = db.selectFrom('postings');
  return range ? q.where('entry_id', '>', range.after).where('entry_id', '<=', range.through) : q;
}

/**
 * Each entry of the range sums to zero, and every entry has postings: the journal's own rule,
 * checked by the full and the incremental verify alike. Returns the range's counts.
 */
export async function checkEntries(db: Db, range: EntryRange, add: (d: Drift) => void): Promise<{ entries: number; postings: number }> {
  const unbalanced = await postingsIn(db, range)
    .select(['entry_id', sql<number>`sum(amount)`.as('total')])
    .groupBy('entry_id')
    .having(sql`sum(amount)`, '<>', 0)
    .limit(MAX_REPORTED)
    .execute();
  for (const e of unbalanced) add({ kind: 'entry_unbalanced', subject: e.entry_id, detail: `postings sum to ${e.total}` });
  const counts = await postingsIn(db, range)
    .select([sql<number>`count(*)`.as('postings'), sql<number>`count(distinct entry_id)`.as('entries')])
    .executeTakeFirstOrThrow();
  let journal = db.selectFrom('journal_entries').select(sql<number>`count(*)`.as('n'));
  if (range) journal = journal.where('id', '>', range.after).where('id', '<=', range.through);
  const entries = Number((await journal.executeTakeFirstOrThrow()).n);
  if (entries !== Number(counts.entries)) {
    add({ kind: 'entry_unbalanced', subject: 'journal', detail: `${entries} ${range ? 'new ' : ''}entries but ${counts.entries} have postings` });
  }
  return { entries, postings: Number(counts.postings) };
}

/** One user's projection against the journal (w, b: their postings) and their balance lines. */
export function checkUser(
  u: { app: string; livemode: number; id: string; available_balance: number; withdrawable_balance: number },
  w: number,
  b: number,
  lines: number,
  add: (d: Drift) => void,
): void {
  const subject = `${u.app}/${u.livemode ? 'live' : 'test'}/user ${u.id}`;
  if (u.withdrawable_balance !== w) add({ kind: 'user_balance', subject, detail: `withdrawable_balance ${u.withdrawable_balance} but journal says ${w}` });
  if (u.available_balance !== w + b) add({ kind: 'user_balance', subject, detail: `available_balance ${u.available_balance} but journal says ${w + b}` });
  if (w < 0 || b < 0) add({ kind: 'negative_balance', subject, detail: `withdrawable ${w}, bonus ${b}` });
  if (u.withdrawable_balance > u.available_balance) {
    add({ kind: 'withdrawable_above_available', subject, detail: `${u.withdrawable_balance} > ${u.available_balance}` });
  }
  if (lines !== w + b) add({ kind: 'line_mismatch', subject, detail: `balance_transactions sum to ${lines}, journal to ${w + b}` });
}

type UserRow = { pk: string; app: string; livemode: number; id: string; available_balance: number; withdrawable_balance: number };

/** These users (a bounded page) against their postings and their balance lines, each read through its index. */
export async function checkUserRows(db: Db, users: readonly UserRow[], add: (d: Drift) => void): Promise<void> {
  if (users.length === 0) return;
  const accounts = users.flatMap((u) => [`user:${u.pk}:withdrawable`, `user:${u.pk}:bonus`]);
  const sums = await db.selectFrom('postings').select(['account', sql<number>`sum(amount)`.as('total')]).where('account', 'in', accounts).groupBy('account').execute();
  const byAccount = new Map(sums.map((s) => [s.account, Number(s.total)]));
  // Every user's balance lines in one statement: a probe of the (app, livemode, user, …) index per user.
  const keys = users.map((u) => sql`(cast(${u.pk} as text), cast(${u.app} as text), cast(${u.livemode} as integer), cast(${u.id} as text))`);
  const { rows } = await sql<{ pk: string; total: number }>`
    with v(pk, app, livemode, uid) as (values ${sql.join(keys)})
    select v.pk as pk, sum(bt.amount) as total
      from v join balance_transactions bt on bt.app = v.app and bt.livemode = v.livemode and bt."user" = v.uid
     group by v.pk`.execute(db);
  const lines = new Map(rows.map((r) => [r.pk, Number(r.total)]));
  for (const u of users) {
    const w = byAccount.get(`user:${u.pk}:withdrawable`) ?? 0;
    const b = byAccount.get(`user:${u.pk}:bonus`) ?? 0;
    checkUser(u, w, b, lines.get(u.pk) ?? 0, add);
  }
}

/**
 * User accounts with postings that are no user's withdrawable or bonus account (the user row is
 * gone, or the bucket is unknown): at most MAX_REPORTED. The grouping and the look-up of each
 * account's user run in the database, so nothing here grows with the number of users.
 */
async function unownedUserAccounts(db: Db): Promise<{ account: string; total: number }[]> {
  // The pk between `user:` and the next `:` (pks are `u` + digits).
  const pk = isPostgres(db) ? sql`split_part(g.account, ':', 2)` : sql`substr(g.account, 6, instr(substr(g.account, 6), ':') - 1)`;
  const { rows } = await sql<{ account: string; total: number }>`
    select g.account as account, g.total as total
      from (select account, sum(amount) as total from postings where account like 'user:%' group by account) g
     where not exists (select 1 from users u where u.pk = ${pk} and g.account in ('user:' || u.pk || ':withdrawable', 'user:' || u.pk || ':bonus'))
     limit ${MAX_REPORTED}`.execute(db);
  return rows;
}
