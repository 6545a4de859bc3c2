import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Store } from '../src/store/db.ts';
import { defaults } from '../src/config.ts';
import { openRuntime } from '../src/runtime.ts';

/** SQLite failures surface with their own cause, not with what a clean-up step made of them. */
describe('SQLite store [sqlite]', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-sqlite-'));
    store = Store.open({ dataDir: dir });
    await store.migrate();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a full disk reports SQLITE_FULL, not the failed ROLLBACK after SQLite rolled back itself', async () => {
    // A full disk, simulated: the database may not grow by more than a page or two.
    const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(store.db);
    await sql.raw(`pragma max_page_count = ${rows[0]!.page_count + 1}`).execute(store.db);
    const big = 'x'.repeat(64 * 1024);
    const err = await store
      .transaction(async (trx) => {
        for (let i = 0; i < 20; i++) await trx.insertInto('settings').values({ key: `full_${i}`, value: big }).execute();
      })
      .then(() => null, (e: unknown) => e as { code?: string; message?: string });
    expect(err).not.toBeNull();
    expect(err!.code).toBe('SQLITE_FULL');
    expect(err!.message).toMatch(/full/i);
    // Nothing of it was kept, and the store still works.
    const kept = await store.db.selectFrom('settings').select('key').where('key', 'like', 'full_%').execute();
    expect(kept).toEqual([]);
    await sql.raw('pragma max_page_count = 1073741823').execute(store.db);
    await store.transaction((trx) => trx.insertInto('settings').values({ key: 'after_full', value: 'ok' }).execute());
    expect(await store.db.selectFrom('settings').select('value').where('key', '=', 'after_full').executeTakeFirst()).toEqual({ value: 'ok' });
  });
});

describe('SQLite data at rest [sqlite]', () => {
  let dir: string;
  let umask: number;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tixian-perm-'));
    umask = process.umask(0o022); // the usual umask, which leaves new files world-readable
  });
  afterEach(() => {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  });

  const mode = (p: string) => statSync(p).mode & 0o777;

  it('keeps the data directory 0700 and the database, -wal, -shm and master.key 0600', async () => {
    const dataDir = path.join(dir, 'data');
    const rt = await openRuntime({ ...defaults, dataDir, workers: false }, { log: pino({ level: 'silent' }) });
    try {
      const files = readdirSync(dataDir).sort();
      expect(files).toEqual(['master.key', 'tixian.db', 'tixian.db-shm', 'tixian.db-wal']);
      expect(mode(dataDir).toString(8)).toBe('700');
      for (const f of files) expect([f, mode(path.join(dataDir, f)).toString(8)]).toEqual([f, '600']);
    } finally {
      await rt.close();
    }
  });

  it('tightens a data directory and database left readable by an earlier version', async () => {
    const dataDir = path.join(dir, 'old');
    mkdirSync(dataDir, { mode: 0o755 });
    writeFileSync(path.join(dataDir, 'tixian.db'), '', { mode: 0o644 });
    const store = Store.open({ dataDir });
    try {
      await store.migrate();
      expect(mode(dataDir).toString(8)).toBe('700');
      expect(mode(path.join(dataDir, 'tixian.db')).toString(8)).toBe('600');
      expect(mode(path.join(dataDir, 'tixian.db-wal')).toString(8)).toBe('600');
    } finally {
      await store.close();
    }
  });
});
