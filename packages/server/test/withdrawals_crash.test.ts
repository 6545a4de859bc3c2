import { afterAll, beforeAll, expect, it } from 'vitest';
import pino from 'pino';
import { request } from 'undici';
import { defaults } from '../src/config.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { verifyLedger } from '../src/ledger/verify.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { startServer, type ServerProcess } from './helpers/process.ts';
import { sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/**
 * Kill -9 the server while confirmed withdrawals are in flight at the (sandbox) channel, start it
 * again, and check every withdrawal reaches its final state exactly once: one channel payout per
 * withdrawal, one event, ledger clean.
 */
describeEngines('payout worker survives SIGKILL', (engine) => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let merchant: CreatedApp;
  let server: ServerProcess | undefined;
  const args = () => (storage.databaseUrl ? ['--database-url', storage.databaseUrl] : ['--data-dir', storage.dataDir]);
  const env = { TIXIAN_PAYOUT_LEASE_MS: '300', TIXIAN_SANDBOX_DELAY_MS: '400', TIXIAN_DATA_DIR: '' };

  beforeAll(async () => {
    storage = await freshStorage(engine);
    const rt = await open();
    merchant = await createApp(rt, { name: 'crash' });
    await rt.close();
    env.TIXIAN_DATA_DIR = storage.dataDir; // the master key lives there for both engines
  });
  afterAll(async () => {
    await server?.kill();
    await storage?.drop();
  });

  function open(): Promise<Runtime> {
    return openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
  }

  async function call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) {
    const res = await request(`${server!.url}/v1/apps/${merchant.id}${path}`, {
      method,
      headers: { authorization: `Bearer ${merchant.secret_key_test}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.body.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode} ${JSON.stringify(json)}`);
    return json;
  }

  it('every confirmed withdrawal settles exactly once across a crash', async () => {
    server = await startServer(args(), env);
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
    expect(await server.kill('SIGKILL')).toBe(null);
    const atCrash = await open();
    try {
      const inFlight = await atCrash.store.db.selectFrom('withdrawals').select('id').where('status', '=', 'pending').where('payout_phase', '=', 'query').execute();
      // The crash must have caught payouts already handed to the channel, or this test proves nothing.
      expect(inFlight.length).toBeGreaterThan(0);
    } finally {
      await atCrash.close();
    }

    server = await startServer(args(), env);
    const deadline = Date.now() + 30_000;
    let statuses: string[] = [];
    while (Date.now() < deadline) {
      const list = await call('GET', '/withdrawals?per_page=100&user=crash_user');
      statuses = list.data.map((w: { status: string }) => w.status);
      if (statuses.every((s) => s === 'succeeded' || s === 'failed')) break;
      await new Promise((r) => setTimeout(r, 100)); // polling the API the way a merchant would
    }
    await server.kill('SIGTERM');
    server = undefined;

    const rt = await open();
    try {
      const rows = await rt.store.db.selectFrom('withdrawals').select(['id', 'status']).execute();
      const byId = new Map(rows.map((r) => [r.id, r.status]));
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
    } finally {
      await rt.close();
    }
  });
});
