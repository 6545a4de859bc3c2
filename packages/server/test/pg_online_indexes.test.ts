import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Store } from '../src/store/db.ts';
import { PG_ONLINE_INDEXES } from '../src/store/pg/online-indexes.ts';
import { freshStorage } from './helpers/harness.ts';

/**
 * The PostgreSQL indexes of migrations 0011 and 0012 are built CONCURRENTLY after the migrations'
 * transaction (store/pg/online-indexes.ts), so an upgrade does not stop writes to `withdrawals`
 * while they build. SQLite builds them in the migrations (growth_plans checks them on both engines).
 */
// As describeEngines: in CI a missing URL is an error, never a silent skip.
if (process.env.CI && !process.env.TIXIAN_TEST_DATABASE_URL) throw new Error('CI must set TIXIAN_TEST_DATABASE_URL: the PostgreSQL suites must run');
describe.skipIf(!process.env.TIXIAN_TEST_DATABASE_URL)('PostgreSQL: indexes built without stopping writes', () => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let store: Store;
  /** A connection of the test's own, and one standing for a request in flight elsewhere. */
  let admin: pg.Client;
  let inFlight: pg.Client;

  beforeAll(async () => {
    storage = await freshStorage('postgres');
    store = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir });
    admin = new pg.Client({ connectionString: storage.databaseUrl });
    inFlight = new pg.Client({ connectionString: storage.databaseUrl });
    await admin.connect();
    await inFlight.connect();
  });
  afterEach(async () => {
    await inFlight.query('ROLLBACK').catch(() => {});
  });
  afterAll(async () => {
    await admin?.end();
    await inFlight?.end();
    await store?.close();
    await storage?.drop();
  });

  async function indexes(): Promise<Record<string, string>> {
    const { rows } = await admin.query<{ name: string; valid: boolean; def: string }>(
      `SELECT c.relname AS name, i.indisvalid AS valid, pg_get_indexdef(c.oid) AS def
       FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
       WHERE c.relname LIKE 'withdrawals_batch%' OR c.relname LIKE 'withdrawals_payout_due%' OR c.relname LIKE 'withdrawal_totals_day%'`,
    );
    return Object.fromEntries(rows.map((r) => [r.name, `${r.valid ? 'valid' : 'INVALID'} ${r.def.replace(/^.* USING btree /, '')}`]));
  }
  const expected = {
    withdrawals_batch: 'valid (batch_withdrawal) WHERE (batch_withdrawal IS NOT NULL)',
    withdrawals_payout_due: 'valid (payout_due_ms) WHERE (payout_due_ms IS NOT NULL)',
    withdrawal_totals_day: 'valid (app, livemode, day_s, status, channel)',
  };

  /** Until one backend in pg_stat_activity matches `where`. */
  async function waitingOn(where: string): Promise<void> {
    await vi.waitFor(
      async () => expect((await admin.query(`SELECT 1 FROM pg_stat_activity WHERE ${where}`)).rows).toHaveLength(1),
      { timeout: 10_000, interval: 20 },
    );
  }

  it('a new database gets each index once, and a second run builds nothing', async () => {
    const applied = await store.migrate();
    expect(applied).toContain('0012_withdrawal_totals_by_day');
    expect(await indexes()).toEqual(expected);
    expect(await store.migrate()).toEqual([]);
    expect(PG_ONLINE_INDEXES.map((i) => i.name).sort()).toEqual(Object.keys(expected).sort());
  });

  it('replaces an earlier full index while another transaction writes to the table, and writes from others go on', async () => {
    // The shape before 0011: a full index on the column.
    await admin.query('DROP INDEX withdrawals_batch');
    await admin.query('CREATE INDEX withdrawals_batch ON withdrawals (batch_withdrawal)');
    // A request elsewhere holds its write lock on the table (ROW EXCLUSIVE) until it commits.
    await inFlight.query('BEGIN');
    await inFlight.query('UPDATE withdrawals SET amount = amount WHERE false');
    const migrating = store.migrate();
    // The build waits for that transaction (a plain CREATE INDEX would too, holding a lock that
    // queues every later write behind it)…
    await waitingOn(`query LIKE 'CREATE INDEX%withdrawals_batch__new%' AND wait_event_type = 'Lock'`);
    // …while a new write to the same table goes through at once.
    await admin.query(`SET lock_timeout = '2s'`);
    await admin.query('UPDATE withdrawals SET amount = amount WHERE false');
    await admin.query('RESET lock_timeout');
    await inFlight.query('COMMIT');
    expect(await migrating).toEqual(['index withdrawals_batch (concurrently)']);
    expect(await indexes()).toEqual(expected);
  });

  it('drops a build that died half-way (an INVALID index) and builds it again', async () => {
    await admin.query('DROP INDEX withdrawals_payout_due');
    // A build cancelled while it waited (here by its statement timeout) leaves its index INVALID.
    await inFlight.query('BEGIN');
    await inFlight.query('UPDATE withdrawals SET amount = amount WHERE false');
    await admin.query(`SET statement_timeout = '300ms'`);
    await expect(admin.query('CREATE INDEX CONCURRENTLY withdrawals_payout_due__new ON withdrawals (payout_due_ms)')).rejects.toThrow(/statement timeout/);
    await admin.query('RESET statement_timeout');
    await inFlight.query('COMMIT');
    expect((await indexes()).withdrawals_payout_due__new).toMatch(/^INVALID/);
    expect(await store.migrate()).toEqual(['index withdrawals_payout_due (concurrently)']);
    expect(await indexes()).toEqual(expected);
  });

  it('a build that died after its index was built (before the drop, or between drop and rename) ends with a rename, not a second build', async () => {
    const oid = async (name: string) => (await admin.query<{ oid: string }>(`SELECT to_regclass($1)::oid AS oid`, [name])).rows[0]!.oid;
    // Died between "drop old" and "rename new": only the new index is there, under its temporary name.
    await admin.query('DROP INDEX withdrawals_payout_due');
    await admin.query('CREATE INDEX CONCURRENTLY withdrawals_payout_due__new ON withdrawals (payout_due_ms) WHERE payout_due_ms IS NOT NULL');
    // Died after the build, before the drop: the earlier full index and the new one side by side.
    await admin.query('DROP INDEX withdrawals_batch');
    await admin.query('CREATE INDEX withdrawals_batch ON withdrawals (batch_withdrawal)');
    await admin.query('CREATE INDEX CONCURRENTLY withdrawals_batch__new ON withdrawals (batch_withdrawal) WHERE batch_withdrawal IS NOT NULL');
    const builtBefore = { payoutDue: await oid('withdrawals_payout_due__new'), batch: await oid('withdrawals_batch__new') };

    expect((await store.migrate()).sort()).toEqual(['index withdrawals_batch (concurrently)', 'index withdrawals_payout_due (concurrently)']);
    expect(await indexes()).toEqual(expected);
    // The indexes now in place are the ones the dead builds made (same relation), renamed.
    expect({ payoutDue: await oid('withdrawals_payout_due'), batch: await oid('withdrawals_batch') }).toEqual(builtBefore);
  });

  it('two processes migrating at once build each index once', async () => {
    await admin.query('DROP INDEX withdrawal_totals_day');
    const other = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir });
    try {
      // The first build waits on a transaction in flight; the second process starts meanwhile
      // and waits for the first to finish rather than building beside it.
      await inFlight.query('BEGIN');
      await inFlight.query('UPDATE withdrawal_totals SET count = count WHERE false');
      const first = store.migrate();
      await waitingOn(`query LIKE 'CREATE INDEX CONCURRENTLY withdrawal_totals_day__new%'`);
      const second = other.migrate();
      // Its connection tries the lock, between tries idle (a waiting call would deadlock with the build).
      await waitingOn(`query LIKE '%pg_try_advisory_lock%' AND state = 'idle'`);
      await inFlight.query('COMMIT');
      expect(await first).toEqual(['index withdrawal_totals_day (concurrently)']);
      expect(await second).toEqual([]);
    } finally {
      await other.close();
    }
    expect(await indexes()).toEqual(expected);
  });
});
