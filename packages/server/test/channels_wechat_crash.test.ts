import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { setCredentials } from '../src/channels/credentials.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { startServer, type ServerProcess } from './helpers/process.ts';
import {
  callApp, emitted, expectNoKeyIn, finalEventWithdrawals, ledgerVerify, payoutsInFlight, pollUntilFinal, statusById, storageArgs, withStorage,
  type ApiMethod, type Storage,
} from './helpers/crash.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * SIGKILL the server while 50 confirmed live wx_lite withdrawals are being paid through the fake
 * WeChat Pay gateway (payees with 免确认 authorization, so bills are paid at submit); after a restart
 * every withdrawal ends exactly once, WeChat saw no bill paid twice and `tixian ledger verify` is clean.
 */
describeEngines('live WeChat Pay payouts survive SIGKILL', (engine) => {
  const COUNT = 50;
  let storage: Storage;
  let merchant: CreatedApp;
  let fake: FakeWechat;
  let server: ServerProcess | undefined;
  const outputs: string[] = [];
  const env = { TIXIAN_PAYOUT_LEASE_MS: '2000', TIXIAN_DATA_DIR: '', TIXIAN_LOG_LEVEL: 'info' };

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    // Every bill is paid at once but answered late: the kill catches answers on the wire.
    fake.answerDelayMs = 150;
    storage = await freshStorage(engine);
    merchant = await withStorage(storage, async (rt) => {
      const created = await createApp(rt, { name: 'live wx crash' });
      await setCredentials(rt, created.id, true, fake.credentials());
      return created;
    });
    env.TIXIAN_DATA_DIR = storage.dataDir; // the master key lives there for both engines
  });
  afterAll(async () => {
    await server?.kill();
    await fake?.close();
    await storage?.drop();
  });

  const call = (method: ApiMethod, path: string, body?: unknown) => callApp({ url: server!.url, app: merchant.id, key: merchant.secret_key_live }, method, path, body);

  it('every confirmed withdrawal settles exactly once across a crash, paid at most once at WeChat', async () => {
    server = await startServer(storageArgs(storage), env);
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
    expect(await server.kill('SIGKILL')).toBe(null);
    outputs.push(server.output());
    // The crash must have caught payouts already handed to WeChat, or this test proves nothing.
    expect(await payoutsInFlight(storage)).toBeGreaterThan(0);

    server = await startServer(storageArgs(storage), env);
    await pollUntilFinal(call, 'crash_user', { timeoutMs: 60_000, pollMs: 200 });
    await server.kill('SIGTERM');
    outputs.push(server.output());
    server = undefined;

    expect(fake.doublePaid()).toEqual([]);
    await withStorage(storage, async (rt) => {
      const byId = await statusById(rt);
      for (const w of ids) {
        expect(byId.get(w.id)).toBe(w.fails ? 'failed' : 'succeeded');
        expect(fake.debits.get(w.id) ?? 0).toBe(w.fails ? 0 : 1);
        if (!w.fails) expect(fake.bills.get(w.id)!.transfer_amount).toBe(w.amount);
      }
      // Exactly one final event per withdrawal.
      expect(await finalEventWithdrawals(rt)).toEqual(ids.map((w) => w.id).sort());
    });

    const { code, out } = await ledgerVerify(storage);
    expect(code, out).toBe(0);
    expect(out).toMatch(/no drift/);

    // The credentials never reach the logs.
    expectNoKeyIn(outputs.join('\n'), fake.merchantPrivateKey);
  });
});
