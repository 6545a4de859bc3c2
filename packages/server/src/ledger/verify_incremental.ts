import { sql } from 'kysely';
import type { Db, Engine } from '../store/db.ts';
import { ID_EPOCH_MS } from '../domain/ids.ts';
import { ALL_TIME } from '../store/withdrawal_totals.ts';
import { checkEntries, checkUserRows, inSnapshot, postingsIn, MAX_REPORTED, verifySnapshot, type Drift, type VerifyReport } from './verify.ts';

/**
 * `tixian ledger verify --incremental`: checks only what changed since the last verified
 * checkpoint, so a daily verify costs the day's entries, not the whole journal.
 *
 * The checkpoint (settings `ledger_verify_checkpoint`) names the last journal entry verified and
 * the sum of every app account (hold, clearing, fee income …) through it. An incremental run:
 * - every entry after the checkpoint sums to zero and has postings;
 * - every user with a posting after it is checked in full (balances = their postings = their
 *   balance lines; nothing negative; withdrawable ≤ available), through the account index;
 * - each app's withdrawal hold (checkpoint + postings since) equals its open withdrawals, read
 *   from the kept withdrawal totals.
 * Users not touched since the checkpoint were verified then and, as long as money only moves
 * through journal entries, cannot have drifted; the full run (`tixian ledger verify`, or
 * --incremental on a database without a checkpoint) re-reads everything and sets a new checkpoint.
 *
 * Entry ids are time-ordered (Snowflake, domain/ids.ts) but commit out of order across processes:
 * the checkpoint only advances to entries older than SETTLE_MARGIN_MS, far longer than any
 * transaction can stay open (statements time out after 30 s), so an entry with a smaller id can
 * no longer commit behind it. Hosts' clocks must agree within that margin.
 */

const CHECKPOINT_KEY = 'ledger_verify_checkpoint';
export const SETTLE_MARGIN_MS = 10 * 60_000;
/** Users checked per round trip batch. */
const USER_BATCH = 500;

interface Checkpoint {
  /** the last verified journal entry id (inclusive); '' before any entry */
  through: string;
  /** app account → sum of its postings through `through` */
  apps: Record<string, number>;
}

export interface IncrementalReport extends VerifyReport {
  mode: 'full' | 'incremental';
  /** the checkpoint after this run (unchanged when drift was found) */
  through: string;
}

/** The smallest entry id a process could make at this time: ids below it are older. */
function idFloor(ms: number): string {
  return (10n ** 18n + (BigInt(Math.max(0, ms - ID_EPOCH_MS)) << 22n)).toString();
}

export async function verifyLedgerIncremental(store: { db: Db; engine: Engine }, nowMs: number, o: { full?: boolean } = {}): Promise<IncrementalReport> {
  const bound = idFloor(nowMs - SETTLE_MARGIN_MS);
  const stored = await store.db.selectFrom('settings').select('value').where('key', '=', CHECKPOINT_KEY).executeTakeFirst();
  const previous = stored && !o.full ? (JSON.parse(stored.value) as Checkpoint) : null;
  const { report, next } = await inSnapshot(store, async (db) => {
    if (!previous) {
      const report = await verifySnapshot(db);
      const through = await lastEntryThrough(db, '', bound);
      return { report: { ...report, mode: 'full' as const }, next: { through, apps: await appSums(db, '', through, {}) } };
    }
    return incremental(db, previous, bound);
  });
  if (!report.ok) return { ...report, through: previous?.through ?? '' };
  // Compare-and-set: a concurrent verify that moved the checkpoint first wins; both were right.
  const value = JSON.stringify(next);
  if (stored) await store.db.updateTable('settings').set({ value }).where('key', '=', CHECKPOINT_KEY).where('value', '=', stored.value).execute();
  else await store.db.insertInto('settings').values({ key: CHECKPOINT_KEY, value }).onConflict((oc) => oc.column('key').doNothing()).execute();
  return { ...report, through: next.through };
}

async function lastEntryThrough(db: Db, after: string, bound: string): Promise<string> {
  const r = await db.selectFrom('journal_entries').select(sql<string | null>`max(id)`.as('id')).where('id', '>', after).where('id', '<', bound).executeTakeFirst();
  return r?.id ?? after;
}

/** App accounts' sums: `base` plus the postings of entries in (after, through]. */
async function appSums(db: Db, after: string, through: string, base: Record<string, number>): Promise<Record<string, number>> {
  const out = { ...base };
  if (through <= after) return out;
  const rows = await db
    .selectFrom('postings')
    .select(['account', sql<number>`sum(amount)`.as('total')])
    .where('entry_id', '>', after)
    .where('entry_id', '<=', through)
    .where('account', 'like', 'app:%')
    .groupBy('account')
    .execute();
  for (const r of rows) out[r.account] = (out[r.account] ?? 0) + Number(r.total);
  return out;
}

async function incremental(db: Db, cp: Checkpoint, bound: string): Promise<{ report: Omit<IncrementalReport, 'through'>; next: Checkpoint }> {
  const drift: Drift[] = [];
  const add = (d: Drift) => {
    if (drift.length < MAX_REPORTED) drift.push(d);
  };
  const through = await lastEntryThrough(db, cp.through, bound);
  const range = { after: cp.through, through };
  const { entries, postings } = await checkEntries(db, range, add);

  // Every user with a posting since the checkpoint, in full.
  const touched = await postingsIn(db, range).select('account').distinct().where('account', 'like', 'user:%').execute();
  const pks = [...new Set(touched.map((t) => t.account.split(':')[1]!))];
  for (let i = 0; i < pks.length; i += USER_BATCH) await checkUsers(db, pks.slice(i, i + USER_BATCH), add);

  // Holds as of this snapshot (entries after `through` too) against the open withdrawals now.
  const apps = await appSums(db, cp.through, through, cp.apps);
  const latest = await lastEntryThrough(db, through, '9'.repeat(19));
  const now = await appSums(db, through, latest, apps);
  const open = await db
    .selectFrom('withdrawal_totals')
    .select(['app', 'livemode', sql<number>`sum(amount)`.as('total')])
    .where('status', 'in', ['created', 'pending'])
    .where('day_s', '=', ALL_TIME)
    .groupBy(['app', 'livemode'])
    .execute();
  const owed = new Map(open.map((o) => [`app:${o.app}:${Number(o.livemode) ? 'live' : 'test'}:withdrawal_hold`, Number(o.total)]));
  for (const account of new Set([...Object.keys(now).filter((a) => a.endsWith(':withdrawal_hold')), ...owed.keys()])) {
    const held = now[account] ?? 0;
    const due = owed.get(account) ?? 0;
    if (held !== due) add({ kind: 'hold_mismatch', subject: account, detail: `holds ${held} but open withdrawals total ${due}` });
  }
  return {
    report: { mode: 'incremental', ok: drift.length === 0, entries, postings, users: pks.length, drift },
    next: { through, apps },
  };
}

async function checkUsers(db: Db, pks: string[], add: (d: Drift) => void): Promise<void> {
  const users = await db.selectFrom('users').select(['pk', 'app', 'livemode', 'id', 'available_balance', 'withdrawable_balance']).where('pk', 'in', pks).execute();
  await checkUserRows(db, users, add);
  const found = new Set(users.map((u) => u.pk));
  for (const pk of pks) if (!found.has(pk)) add({ kind: 'user_balance', subject: `user:${pk}`, detail: 'postings to an account with no user' });
}
