import { setTimeout } from 'node:timers/promises';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

/**
 * PostgreSQL indexes built with CONCURRENTLY, after the migrations' transaction: a plain CREATE
 * INDEX holds a lock that stops every write to its table until the build ends, which on a large
 * `withdrawals` table would stop withdrawal creates for the whole upgrade, on the processes still
 * serving too. Kysely runs all pending migrations in one transaction on PostgreSQL, where
 * CONCURRENTLY cannot run, so these builds live here instead of in their migrations (0011, 0012
 * build them on SQLite, where a file has one writer anyway).
 *
 * Each index is built under a temporary name, the one it replaces dropped, the new one renamed:
 * queries find an index under one of the two names throughout. A build that died half-way leaves
 * an INVALID index, which the next run drops and builds again. One process at a time (an advisory
 * lock, released if its holder dies); the others wait, then find the work done. A build waits for
 * the transactions in flight when it starts, so it runs alongside requests, never ahead of them.
 */
export interface OnlineIndex {
  name: string;
  /** What follows `ON`: the table, the columns, an optional WHERE. */
  on: string;
  /** A partial index: one of the same name without a WHERE is an earlier version, to be replaced. */
  partial: boolean;
}

export const PG_ONLINE_INDEXES: readonly OnlineIndex[] = [
  // 0011: null for almost every withdrawal, never looked up as null.
  { name: 'withdrawals_batch', on: 'withdrawals (batch_withdrawal) WHERE batch_withdrawal IS NOT NULL', partial: true },
  { name: 'withdrawals_payout_due', on: 'withdrawals (payout_due_ms) WHERE payout_due_ms IS NOT NULL', partial: true },
  // 0012: the kept totals by day first.
  { name: 'withdrawal_totals_day', on: 'withdrawal_totals (app, livemode, day_s, status, channel)', partial: false },
];

const LOCK_KEY = 'tixian.online_indexes';
const NEW = '__new';
/** How often a process waiting for another's builds tries the lock again. */
const LOCK_POLL_MS = 250;

interface Found {
  name: string;
  valid: boolean;
  partial: boolean;
}

/** Builds what is missing or out of date; returns the names it built. */
export async function buildOnlineIndexes<DB>(db: Kysely<DB>, indexes: readonly OnlineIndex[] = PG_ONLINE_INDEXES): Promise<string[]> {
  // One pooled connection, outside any transaction, for the whole run (the lock is the session's).
  return db.connection().execute(async (conn) => {
    // Every start after the first: one look at the catalog, no lock taken.
    const found = await lookUp(conn, indexes);
    const pending = indexes.filter((index) => !current(index, found.get(index.name)) || found.has(index.name + NEW));
    if (pending.length === 0) return [];
    // Waiting in pg_advisory_lock would deadlock: a concurrent build waits for every transaction
    // older than its own snapshot to end, the waiting lock call's included. Short tries do not.
    while (!(await sql<{ locked: boolean }>`SELECT pg_try_advisory_lock(hashtext(${LOCK_KEY})) AS locked`.execute(conn)).rows[0]!.locked) {
      await setTimeout(LOCK_POLL_MS);
    }
    // The pool's 30 s statement timeout bounds requests; a build takes as long as the table needs.
    await sql`SET statement_timeout = 0`.execute(conn);
    try {
      const built: string[] = [];
      for (const index of pending) if (await buildOne(conn, index)) built.push(index.name);
      return built;
    } finally {
      await sql`RESET statement_timeout`.execute(conn);
      await sql`SELECT pg_advisory_unlock(hashtext(${LOCK_KEY}))`.execute(conn);
    }
  });
}

/** The indexes under their own names and their temporary ones, as the catalog has them now. */
async function lookUp<DB>(db: Kysely<DB>, indexes: readonly OnlineIndex[]): Promise<Map<string, Found>> {
  const names = indexes.flatMap((index) => [index.name, index.name + NEW]);
  const found = await sql<Found>`
    SELECT c.relname AS name, i.indisvalid AS valid, i.indpred IS NOT NULL AS partial
    FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(${names}::text[])`.execute(db);
  return new Map(found.rows.map((f) => [f.name, f]));
}

const current = (index: OnlineIndex, f: Found | undefined) => f !== undefined && f.valid && f.partial === index.partial;

/** Under the lock: looks again (another process may have built it meanwhile), then builds and swaps. */
async function buildOne<DB>(db: Kysely<DB>, index: OnlineIndex): Promise<boolean> {
  const found = await lookUp(db, [index]);
  const old = found.get(index.name);
  const fresh = found.get(index.name + NEW);
  const drop = (name: string) => sql.raw(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`).execute(db);
  if (current(index, old)) {
    if (fresh) await drop(index.name + NEW);
    return false;
  }
  if (!current(index, fresh)) {
    if (fresh) await drop(index.name + NEW); // a build that died half-way (INVALID)
    await sql.raw(`CREATE INDEX CONCURRENTLY ${index.name + NEW} ON ${index.on}`).execute(db);
  }
  if (old) await drop(index.name);
  await sql.raw(`ALTER INDEX ${index.name + NEW} RENAME TO ${index.name}`).execute(db);
  return true;
}
