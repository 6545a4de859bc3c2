import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, fdatasync, mkdirSync, mkdtempSync, open, openSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Store } from '../src/store/db.ts';
import { FINISH_HOLD_AFTER_SLOW_MS, FINISH_HOLD_MAX_MS, WalCheckpointer } from '../src/store/checkpointer.ts';
import { WalSyncThread } from '../src/store/wal-sync.ts';
import { heldWalSync, type SyncCallback } from './helpers/wal-sync.ts';

/**
 * The group commit's WAL sync, held or failed by a test through `syncs.hook` (otherwise
 * fs.fdatasync on the main thread's pool); the default, a thread of its own, has its own tests below.
 */
const fake = heldWalSync();
const syncs = fake.state;
const testSync = fake.factory;

/** A few event-loop turns (the loop is not blocked: these come back). */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tixian-bgio-'));
  syncs.hook = null;
  syncs.count = 0;
  syncs.files = [];
});
afterEach(() => {
  syncs.hook = null;
  rmSync(dir, { recursive: true, force: true });
});

describe('SQLite group commit: the WAL sync runs off the event loop', () => {
  let store: Store;
  beforeEach(async () => {
    store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 't.db')}`, dataDir: dir , sqliteWalSync: testSync });
    await sql`create table probe (id integer primary key)`.execute(store.db);
  });
  /** Syncs a test holds back; whatever it left is let go before the store closes (close waits for it). */
  const held: (() => void)[] = [];
  afterEach(async () => {
    syncs.hook = null;
    for (const release of held.splice(0)) release();
    await store.close();
  });
  const insert = (id: number) => store.transaction(async (trx) => void (await sql`insert into probe (id) values (${id})`.execute(trx)));
  const count = async () => Number((await sql<{ n: number }>`select count(*) as n from probe`.execute(store.db)).rows[0]!.n);

  it('answers a batch, and any read that could see it, only after the sync that follows its COMMIT', async () => {
    syncs.hook = (fd, done) => held.push(() => fdatasync(fd, done));
    const settled: string[] = [];
    const first = insert(1).then(() => settled.push('write'));
    await vi.waitFor(() => expect(held).toHaveLength(1));
    // Committed (the connection sees it) but not yet durable: neither its caller nor a reader hears of it.
    const read = count().then((n) => (settled.push('read'), n));
    const second = insert(2).then(() => settled.push('second'));
    await turns(20);
    expect(settled).toEqual([]);
    // The second batch gathers while the first one's sync is in flight: no second COMMIT, no second sync.
    expect(held).toHaveLength(1);
    expect(store.groupCommit!.stats.batches).toBe(1);

    syncs.hook = null;
    held.shift()!();
    await Promise.all([first, second]);
    expect(await read).toBe(1);
    expect(settled.slice(0, 2).sort()).toEqual(['read', 'write']);
    expect(await count()).toBe(2);
    expect(store.groupCommit!.stats.batches).toBe(2);
  });

  it('a streamed read yields nothing until the commits it could see are durable', async () => {
    await insert(1);
    syncs.hook = (fd, done) => held.push(() => fdatasync(fd, done));
    const write = insert(2);
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const rows: number[] = [];
    const streamed = (async () => {
      for await (const row of store.db.selectFrom('probe' as never).select('id' as never).stream()) rows.push((row as { id: number }).id);
    })();
    await turns(20);
    expect(rows).toEqual([]);
    syncs.hook = null;
    held.shift()!();
    await Promise.all([write, streamed]);
    expect(rows).toEqual([1, 2]);
  });

  it('a batch whose callbacks ran while an earlier sync failed is rolled back and its callers told, not left waiting', async () => {
    await store.close();
    store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'one.db')}`, dataDir: dir, sqliteGroupCommitMax: 1, sqliteWalSync: testSync });
    await sql`create table probe (id integer primary key)`.execute(store.db);
    const pending: SyncCallback[] = [];
    syncs.hook = (_fd, done) => pending.push(done);
    const first = insert(1);
    await vi.waitFor(() => expect(pending).toHaveLength(1));
    // A full queue (here: batches of one) starts the next batch while the first one's sync is in flight.
    let inside!: () => void;
    const entered = new Promise<void>((resolve) => (inside = resolve));
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const second = store.transaction(async (trx) => {
      await sql`insert into probe (id) values (2)`.execute(trx);
      inside();
      await gate;
    });
    await entered;
    pending.shift()!(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(first).rejects.toThrow(/could not make a commit durable/);
    letGo();
    await expect(second).rejects.toThrow(/could not make a commit durable/);
    syncs.hook = null;
    // Its row was never committed.
    const check = new BetterSqlite3(path.join(dir, 'one.db'), { readonly: true });
    try {
      expect(check.prepare('select id from probe').pluck().all()).toEqual([1]);
    } finally {
      check.close();
    }
  });

  it('close waits for the sync a returning sync starts for the batches committed meanwhile', async () => {
    await store.close();
    store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'one.db')}`, dataDir: dir, sqliteGroupCommitMax: 1, sqliteWalSync: testSync });
    await sql`create table probe (id integer primary key)`.execute(store.db);
    const pending: (() => void)[] = [];
    syncs.hook = (fd, done) => pending.push(() => fdatasync(fd, done));
    const first = insert(1);
    await vi.waitFor(() => expect(pending).toHaveLength(1));
    const second = insert(2);
    await vi.waitFor(() => expect(store.groupCommit!.stats.batches).toBe(2));
    let closed = false;
    const closing = store.close().then(() => (closed = true));
    pending.shift()!(); // the first sync returns and starts the second's
    await first;
    await vi.waitFor(() => expect(pending).toHaveLength(1));
    await turns(20);
    expect(closed).toBe(false); // the WAL is still owed a sync: not let go of yet
    pending.shift()!();
    await second;
    await closing;
    store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'one.db')}`, dataDir: dir, sqliteWalSync: testSync });
    expect(await count()).toBe(2);
  });

  it('a BEGIN refused for a lock held elsewhere fails its batch and leaves the connection at FULL for the next', async () => {
    await insert(1);
    const connection = (store.groupCommit as unknown as { sqlite: BetterSqlite3.Database }).sqlite;
    connection.pragma('busy_timeout = 50');
    const other = new BetterSqlite3(path.join(dir, 't.db'));
    other.exec('BEGIN IMMEDIATE');
    try {
      await expect(insert(2)).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      // The batch switched the connection to NORMAL for its COMMIT (the sync is its own); a BEGIN
      // that failed must not leave it there, or every writer outside group commit would lose FULL.
      expect(connection.pragma('synchronous', { simple: true })).toBe(2);
      expect(connection.inTransaction).toBe(false);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    const before = syncs.count;
    await insert(3);
    expect(syncs.count).toBe(before + 1);
    expect(await count()).toBe(2);
  });

  it('a failed sync fails its batch and every transaction and read after it, until a restart', async () => {
    syncs.hook = (_fd, done) => done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(insert(1)).rejects.toThrow(/could not make a commit durable \(EIO: i\/o error, fdatasync\); restart the server/);
    syncs.hook = null;
    await expect(insert(2)).rejects.toThrow(/could not make a commit durable/);
    await expect(count()).rejects.toThrow(/could not make a commit durable/);
  });

  it('syncs the WAL SQLite writes when the database file is a symbolic link (SQLite names the WAL after its target)', async () => {
    await store.close();
    mkdirSync(path.join(dir, 'real'));
    writeFileSync(path.join(dir, 'real', 's.db'), '');
    symlinkSync(path.join(dir, 'real', 's.db'), path.join(dir, 'link.db'));
    store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'link.db')}`, dataDir: dir , sqliteWalSync: testSync });
    await sql`create table probe (id integer primary key)`.execute(store.db);
    const before = syncs.count;
    await insert(1);
    expect(syncs.count).toBe(before + 1);
    expect(await count()).toBe(1);
    expect(existsSync(path.join(dir, 'real', 's.db-wal'))).toBe(true);
    expect(syncs.files.at(-1)).toBe(path.join(realpathSync(dir), 'real', 's.db-wal'));
  });

  it('leaves the sync to COMMIT when the store runs at synchronous=NORMAL', async () => {
    await store.close();
    store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'n.db')}`, dataDir: dir, sqliteSynchronous: 'NORMAL' , sqliteWalSync: testSync });
    await sql`create table probe (id integer primary key)`.execute(store.db);
    await insert(1);
    expect(syncs.count).toBe(0);
    expect(await count()).toBe(1);
  });
});

describe('two processes on one SQLite file: a read waits until the other\'s commit it saw is durable', () => {
  /** A WAL sync of one store's own, which the test holds or lets through. */
  const a = heldWalSync();
  const b = heldWalSync();
  let writer: Store;
  let reader: Store;
  beforeEach(async () => {
    for (const s of [a, b]) Object.assign(s.state, { hold: false, held: [], count: 0 });
    // Two stores, two connections: as two processes, one SQLite file.
    writer = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'shared.db')}`, dataDir: dir, sqliteWalSync: a.factory });
    reader = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'shared.db')}`, dataDir: dir, sqliteWalSync: b.factory });
    await sql`create table probe (id integer primary key)`.execute(writer.db);
  });
  afterEach(async () => {
    a.release();
    b.release();
    await reader.close();
    await writer.close();
  });
  const ids = async (store: Store) => (await sql<{ id: number }>`select id from probe order by id`.execute(store.db)).rows.map((r) => r.id);

  it('the reader answers another process\'s commit only after a sync of its own, and looks once per change', async () => {
    expect(await ids(reader)).toEqual([]); // the reader saw the table made: one sync
    const before = b.state.count;
    expect(await ids(reader)).toEqual([]);
    expect(b.state.count).toBe(before); // nothing committed elsewhere since: no sync

    // The writer's batch is committed (visible to others) and its sync held: not yet durable.
    a.state.hold = true;
    const written = writer.transaction(async (trx) => void (await sql`insert into probe (id) values (1)`.execute(trx)));
    await vi.waitFor(() => expect(a.state.held).toHaveLength(1));

    b.state.hold = true;
    const settled: string[] = [];
    const read = ids(reader).then((rows) => (settled.push('read'), rows));
    void written.then(() => settled.push('write'));
    await vi.waitFor(() => expect(b.state.held).toHaveLength(1));
    await turns(20);
    expect(settled).toEqual([]);
    // The reader's own sync is of the same file: it makes the writer's commit durable too.
    b.state.hold = false;
    b.release();
    expect(await read).toEqual([1]);
    expect(settled).toEqual(['read']);

    // A stream waits the same way, and one left early gives the connection back.
    a.state.hold = false;
    a.release();
    await written;
    await writer.transaction(async (trx) => void (await sql`insert into probe (id) values (2)`.execute(trx)));
    const syncsBefore = b.state.count;
    for await (const row of reader.db.selectFrom('probe' as never).select('id' as never).stream()) {
      expect((row as { id: number }).id).toBe(1);
      break;
    }
    expect(b.state.count).toBe(syncsBefore + 1);
    expect(await ids(reader)).toEqual([1, 2]);
  });
});

describe('the WAL sync on a thread of its own (the default)', () => {
  it('answers commits and reads while every thread of libuv\'s pool is held by other work', async () => {
    const store = Store.open({ databaseUrl: `sqlite:${path.join(dir, 'd.db')}`, dataDir: dir });
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Opening a FIFO for reading blocks until a writer opens it: each holds one pool thread (4 by
    // default; more asked for than there are, so all are taken whatever UV_THREADPOOL_SIZE is).
    const holders = Array.from({ length: 16 }, () => new Promise<number>((resolve, reject) => open(fifo, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))));
    try {
      await sql`create table probe (id integer primary key)`.execute(store.db);
      await store.transaction(async (trx) => void (await sql`insert into probe (id) values (1)`.execute(trx)));
      const n = (await sql<{ n: number }>`select count(*) as n from probe`.execute(store.db)).rows[0]!.n;
      expect(n).toBe(1);
    } finally {
      const writer = openSync(fifo, 'w'); // lets every reader's open return
      for (const fd of await Promise.all(holders)) closeSync(fd);
      closeSync(writer);
      await store.close();
    }
  });

  it('reports a sync that could not be done with its cause (the group commit then stops: above)', async () => {
    const walSync = new WalSyncThread(path.join(dir, 'missing-wal'));
    await expect(walSync.sync()).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('missing-wal') });
    await walSync.close();
  });
});

describe('SQLite checkpoints on a thread of their own', () => {
  let sqlite: BetterSqlite3.Database;
  let checkpointer: WalCheckpointer;
  const errors: Error[] = [];
  beforeEach(() => {
    errors.length = 0;
    const file = path.join(dir, 'c.db');
    sqlite = new BetterSqlite3(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.exec('create table blobs (id integer primary key, b blob not null)');
    checkpointer = new WalCheckpointer(sqlite, file, 'FULL', (err) => errors.push(err), 10);
  });
  afterEach(async () => {
    await checkpointer.close();
    sqlite.close();
  });

  it('copies the WAL back while the connection writes, and the WAL starts over instead of growing', async () => {
    const insert = sqlite.prepare('insert into blobs (b) values (?)');
    const payload = Buffer.alloc(4000, 7);
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      sqlite.transaction(() => {
        for (let i = 0; i < 250; i++) insert.run(payload);
      })();
      const cycles = checkpointer.stats.cycles;
      await vi.waitFor(() => expect(checkpointer.stats.cycles).toBeGreaterThan(cycles));
      // The event loop's connection runs no checkpoint of its own meanwhile.
      expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    }
    expect(checkpointer.active).toBe(true);
    // ~20 MB written; without checkpoints the WAL would hold all of it. One round is ~1 MB.
    expect(statSync(path.join(dir, 'c.db-wal')).size).toBeLessThan(4 * 1024 * 1024);
    expect(sqlite.prepare('select count(*) from blobs').pluck().get()).toBe(rounds * 250);
    expect(sqlite.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(errors).toEqual([]);
  });

  it('under writes that never pause, copies what the thread left on the connection, so the WAL still starts over', async () => {
    const insert = sqlite.prepare('insert into blobs (b) values (?)');
    const payload = Buffer.alloc(4000, 9);
    let largest = 0;
    // ~20 MB at ~15 MB/s (a busy server's rate), a small transaction every millisecond: every pass
    // of the thread ends with frames committed during it, so only the copy on the connection
    // (the cycle's last step) lets the next write start the WAL over.
    for (let t = 0; t < 1_000; t++) {
      sqlite.transaction(() => {
        for (let i = 0; i < 5; i++) insert.run(payload);
      })();
      largest = Math.max(largest, statSync(path.join(dir, 'c.db-wal')).size);
      await sleep(1);
    }
    expect(checkpointer.stats.finishes).toBeGreaterThan(0);
    // Without that copy the WAL held everything written (~20 MB).
    expect(largest).toBeLessThan(8 * 1024 * 1024);
    expect(sqlite.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(errors).toEqual([]);
  });

  it('a thread that cannot open the database gives checkpoints back, and is stopped rather than left running', async () => {
    const own: Error[] = [];
    const broken = new WalCheckpointer(sqlite, path.join(dir, 'not-there.db'), 'FULL', (err) => own.push(err), 10);
    try {
      sqlite.prepare('insert into blobs (b) values (?)').run(Buffer.alloc(10));
      await vi.waitFor(() => expect(own).toHaveLength(1));
      expect(own[0]!.message).toMatch(/^checkpoint thread: .*; the connection checkpoints for itself again$/);
      // Its thread exits (threadId becomes -1 once it has).
      await vi.waitFor(() => expect(broken.worker!.threadId).toBe(-1));
      expect(broken.active).toBe(false);
    } finally {
      await broken.close();
    }
  });

  it('gives checkpoints back to the connection when the thread dies', async () => {
    sqlite.prepare('insert into blobs (b) values (?)').run(Buffer.alloc(10));
    await vi.waitFor(() => expect(checkpointer.stats.cycles).toBeGreaterThan(0));
    expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    await checkpointer.worker!.terminate();
    await vi.waitFor(() => expect(checkpointer.active).toBe(false));
    expect(sqlite.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(errors.map((e) => e.message)).toEqual(['the checkpoint thread exited; the connection checkpoints for itself again']);
  });

  it('starts no thread until something was written, and stops it on close', async () => {
    await turns(50);
    expect(checkpointer.worker).toBeNull();
    sqlite.prepare('insert into blobs (b) values (?)').run(Buffer.alloc(10));
    await vi.waitFor(() => expect(checkpointer.stats.cycles).toBe(1));
    const worker = checkpointer.worker!;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await checkpointer.close();
    await exited;
    expect(checkpointer.active).toBe(false);
    expect(errors).toEqual([]);
  });
});

describe('SQLite checkpoints with the group commit: the thread makes the finishing copy while batches wait', () => {
  let store: Store;
  beforeEach(async () => {
    store = Store.open({ dataDir: dir, sqliteCheckpointIntervalMs: 10 });
    await sql`create table blobs (id integer primary key, b blob not null)`.execute(store.db);
  });
  afterEach(async () => {
    await store.close();
  });
  const insert = (payload: Buffer) => store.transaction((trx) => sql`insert into blobs (b) values (${payload})`.execute(trx));

  it('copies nothing on the event loop, and the WAL still starts over under writes that never pause', async () => {
    const checkpointer = store.checkpointer!;
    expect(checkpointer.holdWrites).toBe(true);
    const wal = path.join(realpathSync(dir), 'tixian.db-wal');
    let largest = 0;
    // ~24 MB through the group commit from four writers that never pause, over many 10 ms cycles:
    // without the finishing copy the WAL would hold all of it.
    const writer = async () => {
      for (let i = 0; i < 300; i++) {
        await insert(Buffer.alloc(20_000, i % 251));
        largest = Math.max(largest, statSync(wal).size);
      }
    };
    await Promise.all([writer(), writer(), writer(), writer()]);
    expect(checkpointer.stats.cycles).toBeGreaterThan(2);
    expect(checkpointer.stats.threadFinishes).toBeGreaterThan(0);
    expect(checkpointer.stats.finishes).toBe(0); // the event loop's connection copied nothing
    // 0.6–3.9 MB measured; 15–20 MB with the finishing copy made but writes not held for it.
    expect(largest).toBeLessThan(8 * 1024 * 1024);
    expect(await sql<{ n: number }>`select count(*) as n from blobs`.execute(store.db)).toMatchObject({ rows: [{ n: 1200 }] });
    expect(await sql<{ integrity_check: string }>`pragma integrity_check`.execute(store.db)).toMatchObject({ rows: [{ integrity_check: 'ok' }] });
  });

  it('begins no batch while writes are held, and the hold of a thread that never answers ends by itself', async () => {
    const checkpointer = store.checkpointer!;
    await insert(Buffer.alloc(10)); // the thread starts at the first cycle after a write
    await vi.waitFor(() => expect(checkpointer.worker).not.toBeNull(), 5_000);
    const worker = checkpointer.worker!;
    // The thread takes its cycles but never hears of a finishing copy. When the first is asked
    // for (writes are held from just before), a write is queued.
    const post = worker.postMessage.bind(worker);
    let heldAt = 0;
    let endedAt = 0;
    let ranAt = 0;
    let write: Promise<unknown> | null = null;
    let hold: Promise<void> | null = null;
    worker.postMessage = (m: unknown) => {
      if (m !== 'finish') return post(m);
      if (write) return;
      heldAt = performance.now();
      hold = checkpointer.holding!.then(() => void (endedAt = performance.now()));
      write = store.transaction(async (trx) => {
        ranAt = performance.now();
        return sql`insert into blobs (b) values (${Buffer.alloc(10)})`.execute(trx);
      });
    };
    await insert(Buffer.alloc(10)); // something written since the last cycle: the next one runs
    await vi.waitFor(() => expect(write).not.toBeNull(), 5_000);
    await write;
    await hold;
    expect(ranAt).toBeGreaterThanOrEqual(endedAt); // the write began only once the hold was over
    // Bounded: the hold ended FINISH_HOLD_MAX_MS after it began, though no answer came.
    expect(endedAt - heldAt).toBeGreaterThanOrEqual(FINISH_HOLD_MAX_MS - 2);
    expect(endedAt - heldAt).toBeLessThan(FINISH_HOLD_MAX_MS + 1_000);
    expect(checkpointer.holding).toBeNull();
  });

  it('after a finishing copy that outlasted its hold, the next hold waits for the copy, and the one after is short again', async () => {
    const checkpointer = store.checkpointer!;
    await insert(Buffer.alloc(10));
    await vi.waitFor(() => expect(checkpointer.worker).not.toBeNull(), 5_000);
    const worker = checkpointer.worker!;
    const post = worker.postMessage.bind(worker);
    const COPY_MS = 300; // every finishing copy takes this long (a slow disk)
    const holds: { startedAt: number; endedAt: number }[] = [];
    worker.postMessage = (m: unknown) => {
      if (m !== 'finish') return post(m);
      const hold = { startedAt: performance.now(), endedAt: 0 };
      holds.push(hold);
      void checkpointer.holding!.then(() => void (hold.endedAt = performance.now()));
      setTimeout(() => post(m), COPY_MS);
    };
    // Writes keep the cycles coming (each waits out a hold it meets).
    const deadline = performance.now() + 20_000;
    while (!(holds.length >= 3 && holds[2]!.endedAt > 0) && performance.now() < deadline) {
      await insert(Buffer.alloc(1_000));
      await sleep(5);
    }
    const lasted = holds.slice(0, 3).map((h) => h.endedAt - h.startedAt);
    expect(lasted).toHaveLength(3);
    expect(lasted[0]).toBeGreaterThanOrEqual(FINISH_HOLD_MAX_MS - 2); // cut short: the copy went on
    expect(lasted[0]).toBeLessThan(COPY_MS);
    expect(lasted[1]).toBeGreaterThanOrEqual(COPY_MS - 2); // waited for the copy, after the slow one
    expect(lasted[1]).toBeLessThan(FINISH_HOLD_AFTER_SLOW_MS);
    expect(lasted[2]).toBeLessThan(COPY_MS); // the copy before it ended within its hold: short again
    expect(checkpointer.stats.threadFinishes).toBeGreaterThanOrEqual(2);
  });

  it('a thread that dies during a finishing copy lets writes go at once, and the connection checkpoints for itself again', async () => {
    const errors: Error[] = [];
    await store.close();
    store = Store.open({ dataDir: dir, sqliteCheckpointIntervalMs: 10, onCheckpointError: (err) => errors.push(err) });
    const checkpointer = store.checkpointer!;
    await insert(Buffer.alloc(10));
    await vi.waitFor(() => expect(checkpointer.worker).not.toBeNull(), 5_000);
    const worker = checkpointer.worker!;
    let holdAtExit: Promise<void> | null | undefined;
    let write: Promise<unknown> | null = null;
    worker.postMessage = (m: unknown) => {
      if (m !== 'finish' || write) return;
      // Writes are held: one is queued, and the thread dies before it copies anything.
      write = insert(Buffer.alloc(10));
      // Runs after the checkpointer's own exit listener: what it left the hold as.
      worker.once('exit', () => (holdAtExit = checkpointer.holding));
      void worker.terminate();
    };
    await insert(Buffer.alloc(10));
    await vi.waitFor(() => expect(holdAtExit).not.toBeUndefined(), 5_000);
    expect(holdAtExit).toBeNull(); // ended with the thread, not by the hold's timer
    await write;
    expect(checkpointer.active).toBe(false);
    expect(await sql`pragma wal_autocheckpoint`.execute(store.db)).toMatchObject({ rows: [{ wal_autocheckpoint: 1000 }] });
    expect(errors.map((e) => e.message)).toEqual(['the checkpoint thread exited; the connection checkpoints for itself again']);
  });
});

