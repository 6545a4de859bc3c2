import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kysely, PostgresDialect, sql, type KyselyPlugin, type QueryResult, type UnknownRow } from 'kysely';
import pg from 'pg';
import type { PayoutWorker } from '../src/channels/worker.ts';
import type { Database } from '../src/store/schema.ts';
import { inSnapshot, verifyLedger } from '../src/ledger/verify.ts';
import { describeEngines, freshStorage, Harness } from './helpers/harness.ts';
import { startLivePayouts } from './helpers/channels.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * Review of inbound WeChat notifications and of `tixian ledger verify`: each case here failed
 * before its fix.
 */
describeEngines('review: WeChat notifications naming a bill tixian never made', (engine) => {
  let h: Harness;
  let fake: FakeWechat;
  let worker: PayoutWorker;
  const user = 'rn_user';

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    ({ h, worker } = await startLivePayouts(engine, fake.credentials({ apiv3_key: fake.apiv3Key })));
    await h.request('POST', h.appPath('/users'), { key: h.liveKey, body: { id: user } });
    await h.fund(user, 100_000, h.liveKey);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  const post = (n: { headers: Record<string, string>; body: string }) =>
    h.request('POST', `/channels/wechat/notify/${h.appId}/live`, { key: null, headers: n.headers, rawBody: n.body });

  /** A validly signed notification of a bill number WeChat holds but tixian never submitted. */
  function foreignBill(outBillNo: string) {
    fake.bills.set(outBillNo, {
      out_bill_no: outBillNo, transfer_bill_no: `tb${outBillNo}`, appid: 'wxlite0000000001', openid: 'o_other', transfer_amount: 100,
      state: 'SUCCESS', body: '{}',
    });
    return fake.notification(outBillNo);
  }

  it('accepts (204) and ignores a signed notification whose round suffix is no round of ours, never a 500 WeChat would resend for a day', async () => {
    const w = (await h.request('POST', h.appPath('/withdrawals'), { key: h.liveKey, body: { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: 'o_rn' } } })).json;
    expect((await h.request('PUT', h.appPath(`/withdrawals/${w.id}`), { key: h.liveKey, body: { status: 'pending' } })).status).toBe(200);
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', w.id).execute();
    expect(await worker.runOnce()).toBe(1);
    const due = (await h.rt.store.db.selectFrom('withdrawals').select('payout_due_ms').where('id', '=', w.id).executeTakeFirstOrThrow()).payout_due_ms;
    // Another system's numbers on the same merchant (alnum ≤ 32, as WeChat allows): not `<id>` nor `<id>R<round>`.
    for (const no of [`${w.id}R99999999999`, `${w.id}Rx`, '1Rabc']) {
      const res = await post(foreignBill(no));
      expect(res.status, no).toBe(204);
    }
    expect((await h.rt.store.db.selectFrom('withdrawals').select(['status', 'payout_due_ms']).where('id', '=', w.id).executeTakeFirstOrThrow()))
      .toEqual({ status: 'pending', payout_due_ms: due });
  });
});

describe.skipIf(!process.env.TIXIAN_TEST_DATABASE_URL)('review: ledger verify on PostgreSQL outlasts the pool\'s statement timeout', () => {
  it('runs its snapshot without the 30 s per-statement limit of request traffic (a big journal takes longer to sum)', async () => {
    const storage = await freshStorage('postgres');
    // The server's pool bounds statements at 30 s (store/db.ts); here at 100 ms, to stand for a journal too big to sum in 30 s.
    const pool = new pg.Pool({ connectionString: storage.databaseUrl, max: 1, statement_timeout: 100 });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      await expect(sql`select pg_sleep(0.3)`.execute(db)).rejects.toThrow(/statement timeout/);
      const slept = await inSnapshot({ db, engine: 'postgres' }, async (conn) => (await sql<{ ok: number }>`select 1 as ok from pg_sleep(0.3)`.execute(conn)).rows);
      expect(slept).toEqual([{ ok: 1 }]);
      // The pool's bound is back for the next user of the connection.
      await expect(sql`select pg_sleep(0.3)`.execute(db)).rejects.toThrow(/statement timeout/);
    } finally {
      await db.destroy();
      await storage.drop();
    }
  });
});

/** Records the most rows any one query answered (what a verify holds in memory at once). */
class LargestResult implements KyselyPlugin {
  largest = 0;
  transformQuery: KyselyPlugin['transformQuery'] = (args) => args.node;
  async transformResult(args: { result: QueryResult<UnknownRow> }): Promise<QueryResult<UnknownRow>> {
    this.largest = Math.max(this.largest, args.result.rows.length);
    return args.result;
  }
}

describeEngines('review: ledger verify stays bounded in memory', (engine) => {
  let h: Harness;
  const USERS = 2_600;
  beforeAll(async () => {
    h = await Harness.start(engine);
    // USERS users with 1 fen each, straight into the tables (HTTP would take minutes): one
    // balanced entry, one posting and one balance line per user.
    const app = h.appId;
    const pk = (i: number) => `u${String(1_000_000_000_000_000_000n + BigInt(i))}`;
    const entry = (i: number) => String(1_100_000_000_000_000_000n + BigInt(i));
    for (let from = 0; from < USERS; from += 500) {
      const n = Array.from({ length: Math.min(500, USERS - from) }, (_, k) => from + k);
      await h.rt.store.transaction(async (trx) => {
        await trx.insertInto('users').values(n.map((i) => ({
          pk: pk(i), app, livemode: 0, id: `mem${i}`, type: 'customer', related_app: null, address: null, avatar: null, email: null, gender: null,
          mobile: null, name: null, parent_user_id: null, metadata: '{}', disabled: 0, identified: 0, available_balance: 1, withdrawable_balance: 1, created: 1_700_000_000,
        }))).execute();
        await trx.insertInto('journal_entries').values(n.map((i) => ({ id: entry(i), app, livemode: 0, type: 'settlement', source: `s${i}`, created: 1_700_000_000 }))).execute();
        await trx.insertInto('postings').values(n.flatMap((i) => [
          { entry_id: entry(i), seq: 0, app, livemode: 0, account: `user:${pk(i)}:withdrawable`, amount: 1 },
          { entry_id: entry(i), seq: 1, app, livemode: 0, account: `app:${app}:test:settlement_funding`, amount: -1 },
        ])).execute();
        await trx.insertInto('balance_transactions').values(n.map((i) => ({
          id: `txn_${entry(i)}`, app, livemode: 0, user: `mem${i}`, user_pk: pk(i), entry_id: entry(i), amount: 1, available_balance: 1,
          type: 'credited', source: `s${i}`, description: null, created: 1_700_000_000,
        }))).execute();
      });
    }
  });
  afterAll(async () => h?.close());

  it('reads users, their postings and their balance lines a page at a time, not one row per user at once', async () => {
    const plugin = new LargestResult();
    const report = await verifyLedger({ db: h.rt.store.db.withPlugin(plugin), engine });
    expect(report).toMatchObject({ ok: true, users: USERS + 2 }); // and the app's system user "0" of each mode
    expect(plugin.largest).toBeLessThanOrEqual(1_000);
  });

  it('still finds every kind of user drift: a projection, a balance line, postings to an account no user has', async () => {
    await h.rt.store.db.updateTable('users').set({ available_balance: 2 }).where('id', '=', 'mem7').execute();
    await h.rt.store.db.updateTable('balance_transactions').set({ amount: 3 }).where('user', '=', 'mem2001').execute();
    await h.rt.store.transaction(async (trx) => {
      await trx.insertInto('journal_entries').values({ id: '1200000000000000000', app: h.appId, livemode: 0, type: 'settlement', source: 'orphan', created: 1_700_000_000 }).execute();
      await trx.insertInto('postings').values([
        { entry_id: '1200000000000000000', seq: 0, app: h.appId, livemode: 0, account: 'user:u1999999999999999999:withdrawable', amount: 5 },
        { entry_id: '1200000000000000000', seq: 1, app: h.appId, livemode: 0, account: `user:u${String(1_000_000_000_000_000_000n + 5n)}:other`, amount: 4 },
        { entry_id: '1200000000000000000', seq: 2, app: h.appId, livemode: 0, account: `app:${h.appId}:test:settlement_funding`, amount: -9 },
      ]).execute();
    });
    const report = await verifyLedger(h.rt.store);
    expect(report.ok).toBe(false);
    expect(report.drift).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'user_balance', subject: expect.stringMatching(/\/user mem7$/) }),
      expect.objectContaining({ kind: 'line_mismatch', subject: expect.stringMatching(/\/user mem2001$/) }),
      expect.objectContaining({ kind: 'user_balance', subject: 'user:u1999999999999999999:withdrawable' }),
      expect.objectContaining({ kind: 'user_balance', subject: `user:u${String(1_000_000_000_000_000_000n + 5n)}:other` }),
    ]));
    expect(report.drift).toHaveLength(4);
  });
});
