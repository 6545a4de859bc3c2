import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CompiledQuery } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import BetterSqlite3 from 'better-sqlite3';
import { Store } from '../src/store/db.ts';

/**
 * An operator's `ANALYZE` (or `PRAGMA optimize`) leaves `sqlite_stat4` samples, and with them
 * loaded SQLite plans a join or a ranged statement again on every run (store/db.ts
 * prepareSqliteStatistics; the cost is measured in the bench README, not here). The store removes them
 * before its serving connection opens, and keeps `sqlite_stat1`.
 */
describe('sqlite_stat4 samples are removed when the store opens [sqlite]', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-stat4-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const count = async (store: Store, table: string) => {
    const { rows } = await store.db.executeQuery<{ n: number }>(CompiledQuery.raw(`select count(*) as n from ${table}`));
    return rows[0]!.n;
  };

  it('an analyzed database opens without its stat4 samples, with its stat1 rows, and says so once', async () => {
    const first = Store.open({ dataDir: dir });
    await first.migrate();
    // Users of three apps: the (app, livemode, …) indexes get samples worth keeping for SQLite.
    await first.transaction(async (trx) => {
      for (let i = 0; i < 300; i++) {
        await trx.executeQuery(
          CompiledQuery.raw(
            `insert into users (pk, app, livemode, id, type, metadata, disabled, identified, available_balance, withdrawable_balance, created)
             values (?, ?, 0, ?, 'customer', '{}', 0, 0, 0, 0, ?)`,
            [`pk_${i}`, `app_${i % 3}`, `u_${i}`, 1_700_000_000 + i],
          ),
        );
      }
    });
    await first.db.executeQuery(CompiledQuery.raw('analyze'));
    const samples = await count(first, 'sqlite_stat4');
    const stat1 = await count(first, 'sqlite_stat1');
    expect(samples).toBeGreaterThan(0);
    expect(stat1).toBeGreaterThan(0);
    await first.close();

    const dropped: number[] = [];
    const second = Store.open({ dataDir: dir, onStat4Dropped: (rows) => dropped.push(rows) });
    try {
      expect(dropped).toEqual([samples]);
      expect(await count(second, 'sqlite_stat4')).toBe(0);
      expect(await count(second, 'sqlite_stat1')).toBe(stat1);
      // The data is untouched.
      expect(await count(second, 'users')).toBe(300);
    } finally {
      await second.close();
    }

    const third = Store.open({ dataDir: dir, onStat4Dropped: (rows) => dropped.push(rows) });
    await third.close();
    expect(dropped).toEqual([samples]); // nothing to remove: no write, no notice
  });

  it('a new database gets the statistics tables, empty, so a later ANALYZE does not change the schema a running server has loaded', async () => {
    const dropped: number[] = [];
    const store = Store.open({ dataDir: dir, onStat4Dropped: (rows) => dropped.push(rows) });
    try {
      await store.migrate();
      expect(await count(store, 'sqlite_stat1')).toBe(0);
      expect(await count(store, 'sqlite_stat4')).toBe(0);
      const version = async () => (await store.db.executeQuery<{ schema_version: number }>(CompiledQuery.raw('pragma schema_version'))).rows[0]!.schema_version;
      const before = await version();
      // An operator analyzes the file while the server runs (another connection, as the sqlite3 shell would be).
      const operator = new BetterSqlite3(path.join(dir, 'tixian.db'));
      try {
        operator.pragma('busy_timeout = 5000');
        operator.exec('analyze');
      } finally {
        operator.close();
      }
      // Rows changed, not the schema: the server's connection keeps what it loaded (no samples).
      expect(await version()).toBe(before);
    } finally {
      await store.close();
    }
    expect(dropped).toEqual([]);
  });
});
