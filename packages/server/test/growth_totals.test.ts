import { afterAll, beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { Migrator, sql } from 'kysely';
import type { WithdrawalChannel, WithdrawalStatus } from '@tixian/sdk';
import { PayoutWorker } from '../src/channels/worker.ts';
import { ManualClock } from '../src/clock.ts';
import { ApiError } from '../src/domain/errors.ts';
import { createBatchWithdrawal } from '../src/services/batch_withdrawals.ts';
import { cancelWithdrawal, confirmWithdrawal, createWithdrawal, listWithdrawals, type WithdrawalListParams } from '../src/services/withdrawals.ts';
import type { Scope } from '../src/services/common.ts';
import { DAY_S, verifyWithdrawalTotals, withdrawalTotal } from '../src/store/withdrawal_totals.ts';
import { Store } from '../src/store/db.ts';
import { migrationProvider } from '../src/store/migrations.ts';
import { describeEngines, freshStorage, Harness } from './helpers/harness.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/**
 * `total_withdrawals_amount` comes from totals kept in the transactions that move withdrawals
 * (store/withdrawal_totals.ts). Random creates, confirms, cancels, batch confirms and cancels and
 * payout rounds (succeeding, failing for the user, failing for the merchant), spread over several
 * UTC days, must leave every list total equal to a SUM recomputed from the rows, for every status
 * and channel filter and for `created` ranges that cut days in the middle or fall on their edges;
 * `tixian ledger verify` must find no drift in the kept totals.
 */

const CHANNELS: WithdrawalChannel[] = ['alipay', 'wx_pub', 'unionpay'];
const STATUSES: WithdrawalStatus[] = ['created', 'pending', 'succeeded', 'failed', 'canceled'];
const START_MS = Date.UTC(2026, 0, 1, 20);

type Op =
  | { kind: 'create'; user: number; channel: WithdrawalChannel; amount: number; ending: '' | '0002' | '0003' }
  | { kind: 'confirm' | 'cancel'; pick: number }
  | { kind: 'batch'; picks: number[]; status: 'pending' | 'canceled' }
  | { kind: 'work' }
  | { kind: 'later'; minutes: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('create' as const), user: fc.nat(2), channel: fc.constantFrom(...CHANNELS), amount: fc.integer({ min: 1, max: 50_000 }), ending: fc.constantFrom('' as const, '0002' as const, '0003' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('confirm' as const, 'cancel' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('batch' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), status: fc.constantFrom('pending' as const, 'canceled' as const) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'work' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('later' as const), minutes: fc.integer({ min: 1, max: 36 * 60 }) }) },
);

/** A `created` filter: bounds anywhere in the days the run covers, on day edges and around them. */
const createdFilter = fc.record(
  {
    created: fc.integer({ min: 0, max: 5 * DAY_S }),
    'created[gt]': fc.integer({ min: 0, max: 5 * DAY_S }),
    'created[gte]': fc.oneof(fc.integer({ min: 0, max: 5 * DAY_S }), fc.constantFrom(DAY_S - 1, DAY_S, DAY_S + 1, 2 * DAY_S)),
    'created[lt]': fc.oneof(fc.integer({ min: 0, max: 5 * DAY_S }), fc.constantFrom(2 * DAY_S - 1, 2 * DAY_S, 3 * DAY_S)),
    'created[lte]': fc.integer({ min: 0, max: 5 * DAY_S }),
  },
  { requiredKeys: [] },
);

describeEngines('growth: kept withdrawal totals', (engine) => {
  let h: Harness;
  let clock: ManualClock;
  let worker: PayoutWorker;
  let scope: Scope;
  const ids: string[] = [];
  let seq = 0;
  const dayZero = START_MS / 1000 - ((START_MS / 1000) % DAY_S);

  beforeAll(async () => {
    clock = new ManualClock(START_MS);
    h = await Harness.start(engine, { clock, config: { sandboxDelayMs: 0 } });
    worker = new PayoutWorker(h.rt, { batchSize: 200 });
    scope = { accountId: h.merchant.account, app: h.appId, livemode: false, requestId: null };
    for (const u of ['g0', 'g1', 'g2']) {
      await h.createUser(u);
      await h.fund(u, 1_000_000_000);
    }
  });
  afterAll(async () => h?.close());

  async function run(o: Op): Promise<void> {
    clock.advance(1);
    const pick = (n: number) => ids[n % ids.length]!;
    try {
      switch (o.kind) {
        case 'create': {
          const w = await createWithdrawal(h.rt, scope, {
            user: `g${o.user}`, amount: o.amount, channel: o.channel, order_no: String(1_000_000 + seq++), extra: seedExtra(o.channel, sandboxPayee(o.channel, o.ending)),
          });
          ids.push(w.id);
          return;
        }
        case 'confirm':
          if (ids.length) await confirmWithdrawal(h.rt, scope, pick(o.pick));
          return;
        case 'cancel':
          if (ids.length) await cancelWithdrawal(h.rt, scope, pick(o.pick));
          return;
        case 'batch':
          if (ids.length) await createBatchWithdrawal(h.rt, scope, { withdrawals: [...new Set(o.picks.map(pick))], status: o.status });
          return;
        case 'work':
          clock.advance(2_000);
          await worker.runOnce();
          return;
        case 'later':
          clock.advance(o.minutes * 60_000);
          return;
      }
    } catch (err) {
      // Refusals (wrong status, already in a batch) are part of the game: they must change nothing.
      if (!(err instanceof ApiError)) throw err;
    }
  }

  /** The sum the list must report, recomputed from the rows with the filter written out again. */
  async function recomputed(p: WithdrawalListParams): Promise<number> {
    let q = h.rt.store.db.selectFrom('withdrawals').select(sql<number>`coalesce(sum(amount), 0)`.as('t')).where('app', '=', h.appId).where('livemode', '=', 0);
    if (p.status) q = q.where('status', '=', p.status);
    if (p.channel) q = q.where('channel', '=', p.channel);
    if (p.user) q = q.where('user', '=', p.user);
    if (p.created !== undefined) q = q.where('created', '=', p.created);
    if (p['created[gt]'] !== undefined) q = q.where('created', '>', p['created[gt]']);
    if (p['created[gte]'] !== undefined) q = q.where('created', '>=', p['created[gte]']);
    if (p['created[lt]'] !== undefined) q = q.where('created', '<', p['created[lt]']);
    if (p['created[lte]'] !== undefined) q = q.where('created', '<=', p['created[lte]']);
    return Number((await q.executeTakeFirstOrThrow()).t);
  }

  async function expectExact(p: WithdrawalListParams): Promise<void> {
    const listed = await listWithdrawals(h.rt, scope, { ...p, per_page: 1 });
    expect(listed.total_withdrawals_amount, JSON.stringify(p)).toBe(await recomputed(p));
  }

  it('every list total equals the recomputed SUM after random operations, and verify agrees', async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 5, maxLength: 30 }),
        fc.array(fc.record({ status: fc.option(fc.constantFrom(...STATUSES), { nil: undefined }), channel: fc.option(fc.constantFrom(...CHANNELS), { nil: undefined }), created: createdFilter }), { minLength: 4, maxLength: 8 }),
        async (ops, filters) => {
          for (const o of ops) await run(o);
          for (const status of [undefined, ...STATUSES]) {
            for (const channel of [undefined, ...CHANNELS]) await expectExact({ ...(status ? { status } : {}), ...(channel ? { channel } : {}) });
          }
          await expectExact({ user: 'g1' });
          for (const f of filters) {
            const created = Object.fromEntries(Object.entries(f.created).map(([k, v]) => [k, dayZero + v]));
            await expectExact({ ...(f.status ? { status: f.status } : {}), ...(f.channel ? { channel: f.channel } : {}), ...created });
          }
          const report = await h.verify();
          expect(report.drift).toEqual([]);
          const present = await h.rt.store.db.selectFrom('withdrawals').select('status').distinct().execute();
          for (const r of present) seen.add(r.status);
        },
      ),
      {
        numRuns: engine === 'sqlite' ? 30 : 15,
        // Run first, then the random runs: it ends with a withdrawal in each status (failed,
        // succeeded, canceled, pending, created), so every status is reached whatever the random
        // runs do (15 runs on PostgreSQL once reached no failed payout, and once no succeeded one).
        examples: [
          [
            [
              { kind: 'create', user: 0, channel: CHANNELS[0]!, amount: 100, ending: '0002' }, { kind: 'confirm', pick: 0 },
              { kind: 'create', user: 1, channel: CHANNELS[0]!, amount: 200, ending: '' }, { kind: 'confirm', pick: 1 },
              { kind: 'work' }, { kind: 'later', minutes: 60 }, { kind: 'work' },
              { kind: 'create', user: 2, channel: CHANNELS[0]!, amount: 300, ending: '' }, { kind: 'cancel', pick: 2 },
              { kind: 'create', user: 0, channel: CHANNELS[0]!, amount: 400, ending: '' }, { kind: 'confirm', pick: 3 },
              { kind: 'create', user: 1, channel: CHANNELS[0]!, amount: 500, ending: '' },
            ],
            Array.from({ length: 4 }, () => ({ status: undefined, channel: undefined, created: {} })),
          ],
        ],
      },
    );
    // The runs did reach every status, so each kind of move was exercised.
    expect([...seen].sort()).toEqual([...STATUSES].sort());
  });

  it('concurrent creates, cancels, confirms and batch cancels share the total rows without deadlock or loss', async () => {
    const users = ['g0', 'g1', 'g2'];
    const create = (i: number) =>
      h.request('POST', h.appPath('/withdrawals'), {
        body: { user: users[i % 3], amount: 10 + i, channel: 'alipay', order_no: String(5_000_000 + seq++), extra: seedExtra('alipay') },
      });
    const first = await Promise.all(Array.from({ length: 12 }, (_, i) => create(i)));
    const made = first.map((r) => r.json.id as string);
    const results = await Promise.all([
      ...Array.from({ length: 12 }, (_, i) => create(100 + i)),
      ...made.slice(0, 4).map((id) => h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'canceled' } })),
      ...made.slice(4, 6).map((id) => h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })),
      h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: made.slice(6, 9), status: 'canceled' } }),
      h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: made.slice(9, 12), status: 'pending' } }),
    ]);
    expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
    expect((await h.verify()).drift).toEqual([]);
    await expectExact({ status: 'canceled', channel: 'alipay' });
  });

  it('verify names a kept total that no longer matches its withdrawals', async () => {
    await run({ kind: 'create', user: 0, channel: 'alipay', amount: 777, ending: '' });
    await h.rt.store.db.updateTable('withdrawal_totals').set((eb) => ({ amount: eb('amount', '+', 1) })).where('app', '=', h.appId).where('status', '=', 'created').execute();
    const report = await h.verify();
    expect(report.ok).toBe(false);
    expect(report.drift.some((d) => d.kind === 'withdrawal_totals')).toBe(true);
  });
});

describeEngines('growth: migration 0004 backfills the kept totals', (engine) => {
  it('sums withdrawals that existed before the migration, per status, channel and day', async () => {
    const storage = await freshStorage(engine);
    const store = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir });
    try {
      const migrator = new Migrator({ db: store.db, provider: migrationProvider });
      expect((await migrator.migrateTo('0001_initial')).error).toBeUndefined();
      const day = 20_000 * DAY_S;
      const rows = [
        { status: 'succeeded', channel: 'alipay', created: day + 5, amount: 100 },
        { status: 'succeeded', channel: 'alipay', created: day + DAY_S - 1, amount: 250 },
        { status: 'succeeded', channel: 'alipay', created: day + DAY_S, amount: 7 },
        { status: 'created', channel: 'wx_pub', created: day + 10, amount: 40 },
      ];
      await store.db.insertInto('withdrawals').values(rows.map((r, i) => ({
        id: `w${i}`, app: 'app_x', livemode: 0, order_no: `o${i}`, request_hash: 'h', description: null, metadata: '{}', created: r.created,
        user: 'u', user_pk: 'upk', amount: r.amount, user_fee: 0, fee: 0, channel: r.channel, extra: '{}', status: r.status,
        failure_msg: null, source: null, balance_transaction: null, settle_account: null, batch_withdrawal: null, time_canceled: null,
        time_succeeded: null, request_id: null, payout_due_ms: null, payout_lease_ms: null, payout_phase: null, payout_tries: 0, payout_round: 0,
      }))).execute();
      await store.migrate();
      const kept = await store.db.selectFrom('withdrawal_totals').select(['status', 'channel', 'day_s', 'count', 'amount']).orderBy('day_s').orderBy('status').execute();
      expect(kept.map((k) => ({ ...k, day_s: Number(k.day_s), count: Number(k.count), amount: Number(k.amount) }))).toEqual([
        { status: 'created', channel: 'wx_pub', day_s: -1, count: 1, amount: 40 },
        { status: 'succeeded', channel: 'alipay', day_s: -1, count: 3, amount: 357 },
        { status: 'created', channel: 'wx_pub', day_s: day, count: 1, amount: 40 },
        { status: 'succeeded', channel: 'alipay', day_s: day, count: 2, amount: 350 },
        { status: 'succeeded', channel: 'alipay', day_s: day + DAY_S, count: 1, amount: 7 },
      ]);
      expect(await verifyWithdrawalTotals(store.db, 10)).toEqual([]);
      expect(await withdrawalTotal(store.db, { app: 'app_x', livemode: 0, status: 'succeeded', fromS: day + 6, untilS: day + DAY_S + 1 })).toBe(257);
    } finally {
      await store.close();
      await storage.drop();
    }
  });
});
