import { afterAll, beforeAll, expect, it } from 'vitest';
import { setCredentials } from '../src/channels/credentials.ts';
import { describeEngines } from './helpers/harness.ts';
import { CrashRig, emitted, expectNoKeyIn, finalEventWithdrawals, ledgerVerify, payoutsInFlight, pollUntilFinal, statusById, withStorage } from './helpers/crash.ts';
import { FakeAlipay } from './fakes/alipay.ts';

/**
 * SIGKILL the server while 50 confirmed live withdrawals are being paid through the fake Alipay
 * gateway; after a restart every withdrawal ends exactly once, Alipay saw no order paid twice and
 * `tixian ledger verify` is clean.
 */
describeEngines('live Alipay payouts survive SIGKILL', (engine) => {
  const COUNT = 50;
  let fake: FakeAlipay;
  let rig: CrashRig;

  beforeAll(async () => {
    fake = await new FakeAlipay().start();
    // Every transfer is paid at once but answered late: the kill catches answers on the wire.
    fake.answerDelayMs = 150;
    rig = await CrashRig.create(engine, {
      appName: 'live crash',
      mode: 'live',
      env: { TIXIAN_PAYOUT_LEASE_MS: '2000', TIXIAN_LOG_LEVEL: 'info' },
      prepare: (rt, app) => setCredentials(rt, app.id, true, fake.credentials()),
    });
  });
  afterAll(async () => {
    await rig?.close();
    await fake?.close();
  });

  it('every confirmed withdrawal settles exactly once across a crash, paid at most once at Alipay', async () => {
    const { call } = rig;
    await rig.start();
    await call('POST', '/users', { id: 'crash_user' });
    await call('POST', '/balance_settlements', { user: 'crash_user', amount: 10_000_000, order_no: 'crashfund' });
    fake.unknownPayees.add('nobody@example.com');
    const ids: { id: string; fails: boolean; amount: number }[] = [];
    for (let i = 0; i < COUNT; i++) {
      const fails = i % 5 === 4;
      const amount = 1000 + i;
      const w = await call('POST', '/withdrawals', {
        user: 'crash_user', amount, channel: 'alipay', order_no: `crash${i}`, extra: { account: fails ? 'nobody@example.com' : `payee${i}@example.com`, name: '张三' },
      });
      ids.push({ id: w.id, fails, amount });
    }
    const batch = await call('POST', '/batch_withdrawals', { withdrawals: ids.map((w) => w.id), status: 'pending' });
    expect(batch.status).toBe('pending');
    // Kill once Alipay has paid some orders whose answers are still on their way.
    await emitted(fake, 'order', 5);
    expect(await rig.stop('SIGKILL')).toBe(null);
    // The crash must have caught payouts already handed to Alipay, or this test proves nothing.
    expect(await payoutsInFlight(rig.storage)).toBeGreaterThan(0);

    await rig.start();
    await pollUntilFinal(call, 'crash_user', { timeoutMs: 60_000, pollMs: 200 });
    await rig.stop('SIGTERM');

    expect(fake.doublePaid()).toEqual([]);
    await withStorage(rig.storage, async (rt) => {
      const byId = await statusById(rt);
      for (const w of ids) {
        expect(byId.get(w.id)).toBe(w.fails ? 'failed' : 'succeeded');
        expect(fake.debits.get(w.id) ?? 0).toBe(w.fails ? 0 : 1);
      }
      // Exactly one final event per withdrawal.
      expect(await finalEventWithdrawals(rt)).toEqual(ids.map((w) => w.id).sort());
    });

    const { code, out } = await ledgerVerify(rig.storage);
    expect(code, out).toBe(0);
    expect(out).toMatch(/no drift/);

    // The credentials never reach the logs.
    expectNoKeyIn(rig.outputs.join('\n'), fake.appPrivateKey);
  });
});
