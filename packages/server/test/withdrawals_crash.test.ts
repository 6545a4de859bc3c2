import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyLedger } from '../src/ledger/verify.ts';
import { describeEngines } from './helpers/harness.ts';
import { CrashRig, payoutsInFlight, pollUntilFinal, statusById, withStorage } from './helpers/crash.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/**
 * Kill -9 the server while confirmed withdrawals are in flight at the (sandbox) channel, start it
 * again, and check every withdrawal reaches its final state exactly once: one channel payout per
 * withdrawal, one event, ledger clean.
 */
describeEngines('payout worker survives SIGKILL', (engine) => {
  let rig: CrashRig;

  beforeAll(async () => {
    rig = await CrashRig.create(engine, { appName: 'crash', mode: 'test', env: { TIXIAN_PAYOUT_LEASE_MS: '300', TIXIAN_SANDBOX_DELAY_MS: '400' } });
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('every confirmed withdrawal settles exactly once across a crash', async () => {
    const { call } = rig;
    await rig.start();
    await call('POST', '/users', { id: 'crash_user' });
    await call('POST', '/balance_settlements', { user: 'crash_user', amount: 1_000_000, order_no: 'crashfund' });
    const endings = ['', '0002', '0004'] as const;
    const ids: { id: string; ending: string; amount: number }[] = [];
    for (let i = 0; i < 30; i++) {
      const ending = endings[i % 3]!;
      const amount = 1000 + i;
      const w = await call('POST', '/withdrawals', {
        user: 'crash_user', amount, user_fee: 1, channel: 'jdpay', order_no: `crash${i}`, extra: seedExtra('jdpay', sandboxPayee('jdpay', ending)),
      });
      ids.push({ id: w.id, ending, amount });
    }
    for (const w of ids) await call('PUT', `/withdrawals/${w.id}`, { status: 'pending' });
    // The sandbox answers 400 ms after a submit: right now the payouts are at the channel.
    expect(await rig.stop('SIGKILL')).toBe(null);
    // The crash must have caught payouts already handed to the channel, or this test proves nothing.
    expect(await payoutsInFlight(rig.storage)).toBeGreaterThan(0);

    await rig.start();
    await pollUntilFinal(call, 'crash_user', { timeoutMs: 30_000, pollMs: 100 });
    await rig.stop('SIGTERM');

    await withStorage(rig.storage, async (rt) => {
      const byId = await statusById(rt);
      for (const w of ids) expect(byId.get(w.id)).toBe(w.ending === '0002' ? 'failed' : 'succeeded');
      const payouts = await rt.store.db.selectFrom('sandbox_payouts').select(['withdrawal_id']).execute();
      expect(payouts.map((p) => p.withdrawal_id).sort()).toEqual(ids.map((w) => w.id).sort());
      const events = await rt.store.db.selectFrom('events').select(['body']).execute();
      const eventFor = events.map((e) => (JSON.parse(e.body) as { data: { object: { id: string } } }).data.object.id).sort();
      expect(eventFor).toEqual(ids.map((w) => w.id).sort());
      const user = await rt.store.db.selectFrom('users').select(['withdrawable_balance']).where('id', '=', 'crash_user').executeTakeFirstOrThrow();
      const paid = ids.filter((w) => w.ending !== '0002').reduce((s, w) => s + w.amount, 0);
      expect(user.withdrawable_balance).toBe(1_000_000 - paid);
      const report = await verifyLedger(rt.store);
      expect(report.drift).toEqual([]);
    });
  });
});
