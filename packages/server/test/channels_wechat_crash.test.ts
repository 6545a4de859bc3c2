import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, expect, it } from 'vitest';
import pino from 'pino';
import { request } from 'undici';
import { defaults } from '../src/config.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { setCredentials } from '../src/channels/credentials.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { startServer, TIXIAN_BIN, type ServerProcess } from './helpers/process.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * SIGKILL the server while 50 confirmed live wx_lite withdrawals are being paid through the fake
 * WeChat Pay gateway (payees with 免确认 authorization, so bills are paid at submit); after a restart
 * every withdrawal ends exactly once, WeChat saw no bill paid twice and `tixian ledger verify` is clean.
 */
describeEngines('live WeChat Pay payouts survive SIGKILL', (engine) => {
  const COUNT = 50;
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let merchant: CreatedApp;
  let fake: FakeWechat;
  let server: ServerProcess | undefined;
  const outputs: string[] = [];
  const args = () => (storage.databaseUrl ? ['--database-url', storage.databaseUrl] : ['--data-dir', storage.dataDir]);
  const env = { TIXIAN_PAYOUT_LEASE_MS: '2000', TIXIAN_DATA_DIR: '', TIXIAN_LOG_LEVEL: 'info' };

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    // Every bill is paid at once but answered late: the kill catches answers on the wire.
    fake.answerDelayMs = 150;
    storage = await freshStorage(engine);
    const rt = await open();
    try {
      merchant = await createApp(rt, { name: 'live wx crash' });
      await setCredentials(rt, merchant.id, true, fake.credentials());
    } finally {
      await rt.close();
    }
    env.TIXIAN_DATA_DIR = storage.dataDir; // the master key lives there for both engines
  });
  afterAll(async () => {
    await server?.kill();
    await fake?.close();
    await storage?.drop();
  });

  function open(): Promise<Runtime> {
    return openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
  }

  async function call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) {
    const res = await request(`${server!.url}/v1/apps/${merchant.id}${path}`, {
      method,
      headers: { authorization: `Bearer ${merchant.secret_key_live}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.body.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode} ${JSON.stringify(json)}`);
    return json;
  }

  it('every confirmed withdrawal settles exactly once across a crash, paid at most once at WeChat', async () => {
    server = await startServer(args(), env);
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
    let paid = 0;
    while (paid < 5) {
      await once(fake, 'bill');
      paid++;
    }
    expect(await server.kill('SIGKILL')).toBe(null);
    outputs.push(server.output());
    const atCrash = await open();
    try {
      const inFlight = await atCrash.store.db.selectFrom('withdrawals').select('id').where('status', '=', 'pending').where('payout_phase', '=', 'query').execute();
      // The crash must have caught payouts already handed to WeChat, or this test proves nothing.
      expect(inFlight.length).toBeGreaterThan(0);
    } finally {
      await atCrash.close();
    }

    server = await startServer(args(), env);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const list = await call('GET', '/withdrawals?per_page=100&user=crash_user');
      if (list.data.every((w: { status: string }) => w.status === 'succeeded' || w.status === 'failed')) break;
      await new Promise((r) => setTimeout(r, 200)); // polling the API the way a merchant would
    }
    await server.kill('SIGTERM');
    outputs.push(server.output());
    server = undefined;

    expect(fake.doublePaid()).toEqual([]);
    const rt = await open();
    try {
      const rows = await rt.store.db.selectFrom('withdrawals').select(['id', 'status']).execute();
      const byId = new Map(rows.map((r) => [r.id, r.status]));
      for (const w of ids) {
        expect(byId.get(w.id)).toBe(w.fails ? 'failed' : 'succeeded');
        expect(fake.debits.get(w.id) ?? 0).toBe(w.fails ? 0 : 1);
        if (!w.fails) expect(fake.bills.get(w.id)!.transfer_amount).toBe(w.amount);
      }
      // Exactly one final event per withdrawal.
      const events = await rt.store.db.selectFrom('events').select(['type', 'body']).where('type', 'in', ['balance.withdrawal.succeeded', 'balance.withdrawal.failed']).execute();
      const eventFor = events.map((e) => (JSON.parse(e.body) as { data: { object: { id: string } } }).data.object.id).sort();
      expect(eventFor).toEqual(ids.map((w) => w.id).sort());
    } finally {
      await rt.close();
    }

    const verify = spawn(process.execPath, [TIXIAN_BIN, 'ledger', 'verify', ...args()], { env: { ...process.env, TIXIAN_DATA_DIR: storage.dataDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    verify.stdout.on('data', (c: Buffer) => (out += c.toString()));
    verify.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(verify, 'exit')) as [number | null];
    expect(code, out).toBe(0);
    expect(out).toMatch(/no drift/);

    // The credentials never reach the logs.
    const keyBody = fake.merchantPrivateKey.split('\n').slice(1, -2).join('');
    const all = outputs.join('\n');
    for (const line of fake.merchantPrivateKey.split('\n').slice(1, -2)) expect(all.includes(line)).toBe(false);
    expect(all.includes(keyBody.slice(0, 40))).toBe(false);
  });
});
