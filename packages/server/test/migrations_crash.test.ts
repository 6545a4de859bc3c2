import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Migrator, sql } from 'kysely';
import { Store } from '../src/store/db.ts';
import { migrationProvider, migrations } from '../src/store/migrations.ts';
import { freshStorage } from './helpers/harness.ts';

/**
 * Kysely runs SQLite migrations outside a transaction and records each one after it returned. A
 * crash midway through one, or between its end and its record, must not leave a file the next
 * start cannot migrate (store/migrations.ts atomicOnSqlite).
 */
describe('SQLite migrations after a crash', () => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let store: Store;
  beforeEach(async () => {
    storage = await freshStorage('sqlite');
    store = Store.open({ dataDir: storage.dataDir });
  });
  afterEach(async () => {
    await store?.close();
    await storage?.drop();
  });

  const schema = async () =>
    (await sql<{ name: string; sql: string | null }>`SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'kysely_%' ORDER BY name`.execute(store.db)).rows;
  const recorded = async () =>
    (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(store.db)).rows.map((r) => r.name);
  const columns = async (table: string) =>
    (await sql<{ name: string }>`SELECT name FROM pragma_table_info(${table})`.execute(store.db)).rows.map((r) => r.name);

  it('a migration that ran to its end but was not recorded is recorded on the next start, not run again', async () => {
    await store.migrate();
    const before = await schema();
    await sql`INSERT INTO withdrawal_totals (app, livemode, status, channel, day_s, count, amount, shard) VALUES ('app_x', 0, 'created', 'alipay', -1, 1, 5, 0)`.execute(store.db);
    // Every migration done, none recorded: a crash after each one's last statement.
    await sql`DELETE FROM kysely_migration`.execute(store.db);

    const applied = await store.migrate();
    expect(applied).toEqual(Object.keys(migrations));
    expect(await recorded()).toEqual(Object.keys(migrations));
    expect(await schema()).toEqual(before);
    // Nothing was done twice (0004's backfill would have summed the totals again).
    expect((await sql`SELECT count, amount FROM withdrawal_totals`.execute(store.db)).rows).toEqual([{ count: 1, amount: 5 }]);
  });

  it('a migration that stops midway leaves none of its changes, and the next start runs it whole', async () => {
    const migrator = new Migrator({ db: store.db, provider: migrationProvider });
    expect((await migrator.migrateTo('0007_scale_out')).error).toBeUndefined();
    // 0009 adds three columns; its second one is made to fail, as a crash would stop it there.
    await sql`ALTER TABLE withdrawals ADD COLUMN payout_answer_ms bigint`.execute(store.db);
    await expect(store.migrate()).rejects.toThrow(/payout_answer_ms/);
    expect(await columns('withdrawals')).not.toContain('payout_answer');
    expect(await recorded()).not.toContain('0009_payout_last_answer');

    await sql`ALTER TABLE withdrawals DROP COLUMN payout_answer_ms`.execute(store.db);
    expect(await store.migrate()).toContain('0009_payout_last_answer');
    expect(await columns('withdrawals')).toEqual(expect.arrayContaining(['payout_answer', 'payout_answer_ms', 'confirmed_ms']));
    expect(await recorded()).toEqual(Object.keys(migrations));
  });
});
