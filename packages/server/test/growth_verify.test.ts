import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { SETTLE_MARGIN_MS, verifyLedgerIncremental } from '../src/ledger/verify_incremental.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra } from './helpers/withdrawals.ts';

/**
 * `tixian ledger verify --incremental`: the first run is a full one and sets a checkpoint; later
 * runs read only the entries since it (and the users they touch), still catch drift in what
 * changed, and leave the checkpoint where it was when they find drift.
 */
describeEngines('growth: incremental ledger verify', (engine) => {
  let h: Harness;
  let clock: ManualClock;
  beforeAll(async () => {
    // Ids never go back in time within a process (domain/ids.ts): the second engine's suite starts
    // its clock after the first one's, or its ids would run ahead of its clock.
    clock = new ManualClock(Date.UTC(2026, engine === 'sqlite' ? 2 : 3, 1));
    h = await Harness.start(engine, { clock });
  });
  afterAll(async () => h?.close());

  const withdraw = async (user: string, order: string) =>
    h.request('POST', h.appPath('/withdrawals'), { body: { user, amount: 100, channel: 'alipay', order_no: order, extra: seedExtra('alipay') } });
  const later = () => clock.advance(SETTLE_MARGIN_MS + 60_000);
  const entryCount = async () => Number((await h.rt.store.db.selectFrom('journal_entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  it('reads only what changed since the checkpoint and still finds drift there', async () => {
    for (const u of ['iv_a', 'iv_b']) {
      await h.createUser(u);
      await h.fund(u, 10_000);
    }
    expect((await withdraw('iv_a', '801')).status).toBe(200);
    later();
    const first = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect(first).toMatchObject({ mode: 'full', ok: true, entries: await entryCount() });

    // Two entries more (a settlement and a withdrawal of iv_b), old enough to be covered.
    await h.fund('iv_b', 500);
    expect((await withdraw('iv_b', '802')).status).toBe(200);
    later();
    const second = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect(second).toMatchObject({ mode: 'incremental', ok: true, entries: 2, users: 1 });
    expect(second.through > first.through).toBe(true);

    // Nothing new: nothing read, checkpoint unchanged.
    later();
    expect(await verifyLedgerIncremental(h.rt.store, clock.nowMs())).toMatchObject({ mode: 'incremental', ok: true, entries: 0, users: 0, through: second.through });

    // A user touched since the checkpoint whose balance no longer matches the journal is found…
    await h.fund('iv_a', 1);
    await h.rt.store.db.updateTable('users').set((eb) => ({ available_balance: eb('available_balance', '+', 5) })).where('id', '=', 'iv_a').execute();
    later();
    const drifted = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect(drifted.ok).toBe(false);
    expect(drifted.drift.map((d) => d.kind)).toContain('user_balance');
    // …and the checkpoint stays before it, so the next run looks again.
    expect(drifted.through).toBe(second.through);
    expect((await verifyLedgerIncremental(h.rt.store, clock.nowMs())).ok).toBe(false);
    await h.rt.store.db.updateTable('users').set((eb) => ({ available_balance: eb('available_balance', '-', 5) })).where('id', '=', 'iv_a').execute();
    expect((await verifyLedgerIncremental(h.rt.store, clock.nowMs())).ok).toBe(true);
  });

  it('finds a touched user\'s balance lines that no longer add up to the journal, and which user', async () => {
    for (const u of ['iv_l1', 'iv_l2', 'iv_l3']) {
      await h.createUser(u);
      await h.fund(u, 1_000);
    }
    later();
    expect((await verifyLedgerIncremental(h.rt.store, clock.nowMs())).ok).toBe(true);
    // Three users touched since the checkpoint; one of their lines changed behind the ledger's back.
    for (const u of ['iv_l1', 'iv_l2', 'iv_l3']) await h.fund(u, 7);
    const line = await h.rt.store.db.selectFrom('balance_transactions').select(['id', 'amount']).where('user', '=', 'iv_l2').orderBy('created').limit(1).executeTakeFirstOrThrow();
    await h.rt.store.db.updateTable('balance_transactions').set({ amount: Number(line.amount) + 3 }).where('id', '=', line.id).execute();
    later();
    const report = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect(report).toMatchObject({ mode: 'incremental', ok: false, users: 3 });
    expect(report.drift.filter((d) => d.kind === 'line_mismatch').map((d) => d.subject)).toEqual([expect.stringMatching(/\/user iv_l2$/)]);
    await h.rt.store.db.updateTable('balance_transactions').set({ amount: Number(line.amount) }).where('id', '=', line.id).execute();
    expect((await verifyLedgerIncremental(h.rt.store, clock.nowMs())).ok).toBe(true);
  });

  it('an entry newer than the margin waits for the next run; holds count it at once', async () => {
    later();
    const before = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect((await withdraw('iv_b', '803')).status).toBe(200);
    const now = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect(now).toMatchObject({ ok: true, entries: 0, through: before.through });
    later();
    expect(await verifyLedgerIncremental(h.rt.store, clock.nowMs())).toMatchObject({ ok: true, entries: 1 });
  });

  it('an old entry tampered with is found by --full only; a hold that no longer matches the open withdrawals is found at once', async () => {
    // An old entry tampered with: the incremental run does not read it, a full run does.
    const oldest = await h.rt.store.db.selectFrom('postings').select(['entry_id', 'seq']).orderBy('entry_id').limit(1).executeTakeFirstOrThrow();
    await h.rt.store.db.updateTable('postings').set((eb) => ({ amount: eb('amount', '+', 1) })).where('entry_id', '=', oldest.entry_id).where('seq', '=', oldest.seq).execute();
    later();
    expect((await verifyLedgerIncremental(h.rt.store, clock.nowMs())).ok).toBe(true);
    const full = await verifyLedgerIncremental(h.rt.store, clock.nowMs(), { full: true });
    expect(full).toMatchObject({ mode: 'full', ok: false });
    expect(full.drift.map((d) => d.kind)).toContain('entry_unbalanced');
    await h.rt.store.db.updateTable('postings').set((eb) => ({ amount: eb('amount', '-', 1) })).where('entry_id', '=', oldest.entry_id).where('seq', '=', oldest.seq).execute();

    // The kept totals of open withdrawals lose one: the hold no longer matches them.
    const open = await h.rt.store.db.selectFrom('withdrawals').select(['id', 'amount', 'channel', 'created']).where('status', '=', 'created').executeTakeFirstOrThrow();
    await h.rt.store.db.updateTable('withdrawal_totals').set((eb) => ({ amount: eb('amount', '-', open.amount) })).where('status', '=', 'created').where('channel', '=', open.channel).execute();
    const hold = await verifyLedgerIncremental(h.rt.store, clock.nowMs());
    expect(hold.drift.map((d) => d.kind)).toContain('hold_mismatch');
  });
});
