import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaults } from '../src/config.ts';
import { openRuntime } from '../src/runtime.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { TIXIAN_BIN } from './helpers/process.ts';
import { FakeAlipay } from './fakes/alipay.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * `tixian channels set|list|check|remove` as an operator runs them: key material goes in from
 * files, is sealed at rest, and never comes back out of the CLI, not even in an error.
 */
describeEngines('tixian channels', (engine) => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let merchant: CreatedApp;
  let fake: FakeAlipay;
  let files: { priv: string; pub: string; junk: string };
  const flags = () => ['--data-dir', storage.dataDir, ...(storage.databaseUrl ? ['--database-url', storage.databaseUrl] : [])];
  /** Lines of key material that must never be printed or stored in the clear. */
  const secretLines = () => fake.appPrivateKey.split('\n').filter((l) => l && !l.startsWith('-----'));

  beforeAll(async () => {
    fake = await new FakeAlipay().start();
    storage = await freshStorage(engine);
    const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
    try {
      merchant = await createApp(rt, { name: 'channels cli' });
    } finally {
      await rt.close();
    }
    files = { priv: path.join(storage.dataDir, 'app_private.pem'), pub: path.join(storage.dataDir, 'alipay_public.pem'), junk: path.join(storage.dataDir, 'junk.pem') };
    writeFileSync(files.priv, fake.appPrivateKey);
    writeFileSync(files.pub, fake.alipayPublicKey);
    writeFileSync(files.junk, 'not-a-key TOPSECRETVALUE123\n');
  });
  afterAll(async () => {
    await fake?.close();
    await storage?.drop();
  });

  async function run(args: string[]) {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TIXIAN_') && k !== 'NODE_OPTIONS') env[k] = v;
    const child = spawn(process.execPath, [TIXIAN_BIN, ...args, ...flags()], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    for (const line of secretLines()) expect(out.includes(line), 'key material printed').toBe(false);
    return { code, out };
  }

  const setArgs = (priv: string) => ['channels', 'set', merchant.id, '--channel', 'alipay', '--mode', 'live', '--app-id', fake.appId,
    '--private-key-file', priv, '--alipay-public-key-file', files.pub, '--endpoint', fake.endpoint];

  it('set seals the credentials and prints only a fingerprint; list shows the same; the database holds no key in the clear', async () => {
    const set = await run(setArgs(files.priv));
    expect(set.code, set.out).toBe(0);
    const fp = /sha256:[0-9a-f]{16}/.exec(set.out)?.[0];
    expect(fp).toBeDefined();
    const list = await run(['channels', 'list', merchant.id, '--json']);
    expect(list.code, list.out).toBe(0);
    expect(JSON.parse(list.out)).toEqual([expect.objectContaining({ channel: 'alipay', mode: 'live', fingerprint: fp, summary: expect.objectContaining({ channel_app_id: fake.appId, key_mode: 'public_key' }) })]);

    const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
    try {
      const rows = await rt.store.db.selectFrom('channel_credentials').selectAll().execute();
      const text = JSON.stringify(rows);
      for (const line of secretLines()) expect(text.includes(line)).toBe(false);
    } finally {
      await rt.close();
    }
  });

  it('check makes a signed call the gateway accepts; exit 1 when the gateway refuses the signature', async () => {
    const before = fake.calls.length;
    const ok = await run(['channels', 'check', merchant.id, '--channel', 'alipay']);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/^ok: live alipay sha256:/);
    expect(fake.calls.slice(before)).toEqual(['alipay.fund.trans.common.query']);

    // Another key pair than the one the gateway knows: the same check must fail.
    const other = new FakeAlipay();
    const otherFile = path.join(storage.dataDir, 'other.pem');
    writeFileSync(otherFile, other.appPrivateKey);
    expect((await run(setArgs(otherFile))).code).toBe(0);
    const rejected = fake.rejectedSignatures;
    const bad = await run(['channels', 'check', merchant.id, '--channel', 'alipay']);
    expect(bad.code, bad.out).toBe(1);
    expect(bad.out).toMatch(/^FAILED: /);
    expect(fake.rejectedSignatures).toBe(rejected + 1);
    for (const line of other.appPrivateKey.split('\n').filter((l) => l && !l.startsWith('-----'))) expect(bad.out.includes(line)).toBe(false);
  });

  it('a file that is not a key is refused (exit 2) without echoing its content; nothing changes', async () => {
    const rows = async () => {
      const rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
      try {
        return await rt.store.db.selectFrom('channel_credentials').select(['channel', 'fingerprint', 'updated']).orderBy('channel').execute();
      } finally {
        await rt.close();
      }
    };
    const before = await rows();
    const res = await run(setArgs(files.junk));
    expect(res.code).toBe(2);
    expect(res.out).toContain('private key');
    expect(res.out).not.toContain('TOPSECRETVALUE123');
    expect(await rows()).toEqual(before);
  });

  it('wechat: set prints a fingerprint only, check proves the merchant key with a signed query', async () => {
    const wx = await new FakeWechat().start();
    try {
      const priv = path.join(storage.dataDir, 'apiclient_key.pem');
      const pub = path.join(storage.dataDir, 'wechatpay_pub.pem');
      writeFileSync(priv, wx.merchantPrivateKey);
      writeFileSync(pub, wx.wechatpayPublicKey);
      const apiv3 = path.join(storage.dataDir, 'apiv3.key');
      writeFileSync(apiv3, 'short' + wx.apiv3Key.slice(0, 20) + '\n');
      const wechatSet = (keyFile: string) => run(['channels', 'set', merchant.id, '--channel', 'wechat', '--mchid', wx.mchid, '--merchant-serial', wx.merchantSerial,
        '--private-key-file', priv, '--wechatpay-public-key-file', pub, '--wechatpay-public-key-id', wx.publicKeyId, '--appid-wx-lite', 'wxlite0000000001',
        '--transfer-scene-id', '1000', '--report-info', '活动名称=余额提现', '--endpoint', wx.endpoint, '--apiv3-key-file', keyFile]);
      // An APIv3 key that is not 32 characters is refused without being echoed.
      const bad = await wechatSet(apiv3);
      expect(bad.code, bad.out).not.toBe(0);
      expect(bad.out).toContain('APIv3 key');
      expect(bad.out).not.toContain(wx.apiv3Key.slice(0, 20));
      writeFileSync(apiv3, wx.apiv3Key + '\n');
      const set = await wechatSet(apiv3);
      expect(set.code, set.out).toBe(0);
      expect(set.out).not.toContain(wx.apiv3Key);
      expect(set.out).toMatch(/sha256:[0-9a-f]{16}/);
      for (const line of wx.merchantPrivateKey.split('\n').filter((l) => l && !l.startsWith('-----'))) expect(set.out.includes(line)).toBe(false);
      const check = await run(['channels', 'check', merchant.id, '--channel', 'wechat']);
      expect(check.code, check.out).toBe(0);
      expect(wx.calls.at(-1)).toMatch(/^GET \/v3\/fund-app\/mch-transfer\/transfer-bills\/out-bill-no\/tixiancheck/);
      expect(wx.rejectedSignatures).toBe(0);
    } finally {
      await wx.close();
    }
  });

  it('remove deletes them; a second remove is a usage error', async () => {
    expect((await run(['channels', 'remove', merchant.id, '--channel', 'alipay', '--mode', 'live'])).code).toBe(0);
    expect((await run(['channels', 'list', merchant.id])).out).not.toContain('alipay');
    expect((await run(['channels', 'remove', merchant.id, '--channel', 'alipay', '--mode', 'live'])).code).toBe(2);
  });
});
