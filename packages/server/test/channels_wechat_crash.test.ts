import { afterAll, beforeAll, expect, it } from 'vitest';
import { setCredentials } from '../src/channels/credentials.ts';
import { describeEngines } from './helpers/harness.ts';
import { CrashRig, emitted, expectNoKeyIn, finalEventWithdrawals, ledgerVerify, payoutsInFlight, pollUntilFinal, statusById, withStorage } from './helpers/crash.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * SIGKILL the server while 50 confirmed live wx_lite withdrawals are being paid through the fake
 * WeChat Pay gateway (payees with 免确认 authorization, so bills are paid at submit); after a restart
 * every withdrawal ends exactly once, WeChat saw no bill paid twice and `tixian ledger verify` is clean.
 */
describeEngines('live WeChat Pay payouts survive SIGKILL', (engine) => {
  const COUNT = 50;
  let fake: FakeWechat;
  let rig: CrashRig;

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    // Every bill is paid at once but answered late: the kill catches answers on the wire.
    fake.answerDelayMs = 150;
    rig = await CrashRig.create(engine, {
      appName: 'live wx crash',
      mode: 'live',
      env: { TIXIAN_PAYOUT_LEASE_MS: '2000', TIXIAN_LOG_LEVEL: 'info' },
      prepare: (rt, app) => setCredentials(rt, app.id, true, fake.credentials()),
    });
  });
  afterAll(async () => {
    await rig?.close();
    await fake?.close();
  });

  it('every confirmed withdrawal settles exactly once across a crash, paid at most once at WeChat', async () => {
    const { call } = rig;
    await rig.start();
    await call('POST', '/users', { id: 'crash_user' });
    await call('POST', '/balance_settlements', { user: 'crash_user', amount: 10_000_000, order_no: 'crashfund' });
    fake.invalidOpenids.add('o_nobody');
    const ids: { id: string; fails: boolean; amount: number }[] = [];
    for (let i = 0; i < COUNT; i++) {
      const fails = i % 5 === 4;
      const amount = 1000 + i;
      const w = await call('POST', '/withdrawals', {
        user: 'crash_user', amount, channel: 'wx_lite', order_no: `crash${i}`, extra: { open_id: fails ? 'o_nobody' : `o_payee${i}`, name: '张三' },
      });
      if (!fails) fake.preAuthorized.add(`o_payee${i}`);
      ids.push({ id: w.id, fails, amount });
    }
    const batch = await call('POST', '/batch_withdrawals', { withdrawals: ids.map((w) => w.id), status: 'pending' });
    expect(batch.status).toBe('pending');
    // Kill once WeChat has paid some bills whose answers are still on their way.
    await emitted(fake, 'bill', 5);
    expect(await rig.stop('SIGKILL')).toBe(null);
    // The crash must have caught payouts already handed to WeChat, or this test proves nothing.
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
        if (!w.fails) expect(fake.bills.get(w.id)!.transfer_amount).toBe(w.amount);
      }
      // Exactly one final event per withdrawal.
      expect(await finalEventWithdrawals(rt)).toEqual(ids.map((w) => w.id).sort());
    });

    const { code, out } = await ledgerVerify(rig.storage);
    expect(code, out).toBe(0);
    expect(out).toMatch(/no drift/);

    // The credentials never reach the logs.
    expectNoKeyIn(rig.outputs.join('\n'), fake.merchantPrivateKey);
  });
});
