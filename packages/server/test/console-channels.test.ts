import { Writable } from 'node:stream';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { defaults } from '../src/config.ts';
import { createLogger } from '../src/logging.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { buildApp } from '../src/http/app.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { createOperator } from '../src/admin/operators.ts';
import { CREDENTIAL_FIELDS, loadCredentials } from '../src/channels/credentials.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { FakeAlipay } from './fakes/alipay.ts';
import { FakeWechat } from './fakes/wechat.ts';
import { registry } from '../src/observability/metrics.ts';

/**
 * The console's live payout channels: credentials set, replaced, removed and checked over the
 * admin API with a session and its CSRF token, audited without key material, never answered back
 * and never logged.
 */
describeEngines('console payout channels', (engine) => {
  const lines: string[] = [];
  let rt: Runtime;
  let app: FastifyInstance;
  let drop: () => Promise<void>;
  let merchant: CreatedApp;
  let fake: FakeAlipay;
  const PASSWORD = 'correct horse battery';
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  /** Lines of key material that must appear in no answer, log line or audit line. */
  const secretLines = () => [...fake.appPrivateKey.split('\n'), ...otherKey.split('\n')].filter((l) => l && !l.startsWith('-----'));

  beforeAll(async () => {
    fake = await new FakeAlipay().start();
    const storage = await freshStorage(engine);
    drop = storage.drop;
    const sink = new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) });
    rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, rateLimit: 0 }, { log: createLogger('debug', sink) });
    app = await buildApp(rt);
    merchant = await createApp(rt, { name: 'channels shop', account: 'shop' });
    await createOperator(rt, { email: 'ops@example.com', password: PASSWORD, account: 'shop' });
    await createApp(rt, { name: 'another shop', account: 'another' });
    await createOperator(rt, { email: 'other@example.com', password: PASSWORD, account: 'another' });
  });
  afterAll(async () => {
    await app?.close();
    await rt?.close();
    await drop?.();
    await fake?.close();
  });

  async function session(email = 'ops@example.com') {
    const res = await app.inject({ method: 'POST', url: '/admin/session', payload: { email, password: PASSWORD } });
    expect(res.statusCode, res.body).toBe(200);
    return { cookie: String(res.headers['set-cookie']).split(';')[0]!, csrf: res.json().csrf_token as string };
  }
  const answers: string[] = [];
  async function call(s: { cookie: string; csrf: string } | null, method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown, csrf = true) {
    const headers: Record<string, string> = {};
    if (s) headers.cookie = s.cookie;
    if (s && csrf) headers['x-csrf-token'] = s.csrf;
    const res = await app.inject({ method, url, headers, ...(body !== undefined ? { payload: body as Record<string, unknown> } : {}) });
    answers.push(res.body);
    return { status: res.statusCode, body: res.body, json: res.json() as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }
  const alipay = (privateKey = fake.appPrivateKey) => ({ ...fake.credentials(), private_key: privateKey });
  const base = () => `/admin/apps/${merchant.id}/channel_credentials`;
  const checks = async (result: 'ok' | 'failed') =>
    (await registry.getSingleMetric('tixian_channel_checks_total')!.get()).values.find((v) => v.labels.channel === 'alipay' && v.labels.result === result)?.value ?? 0;
  const auditActions = async () => (await rt.store.db.selectFrom('audit_log').select(['action', 'detail']).where('app', '=', merchant.id).orderBy('created').orderBy('id').execute());

  it('needs a session for every route and the CSRF token for every change, changing nothing without them', async () => {
    const s = await session();
    const routes: ['GET' | 'POST' | 'DELETE', string, unknown][] = [
      ['GET', base(), undefined],
      ['GET', `${base()}/fields`, undefined],
      ['POST', base(), { mode: 'live', credentials: alipay() }],
      ['DELETE', `${base()}/alipay?mode=live`, undefined],
      ['POST', `${base()}/alipay/check`, { mode: 'live' }],
    ];
    for (const [method, url, body] of routes) {
      const anon = await call(null, method, url, body);
      expect(anon.status, `${method} ${url}`).toBe(401);
      expect(anon.json.error.code).toBe('session_required');
      if (method !== 'GET') {
        const noCsrf = await call(s, method, url, body, false);
        expect(noCsrf.status, `${method} ${url} without CSRF`).toBe(403);
        expect(noCsrf.json.error.code).toBe('csrf_token_invalid');
      }
    }
    expect(await rt.store.db.selectFrom('channel_credentials').selectAll().execute()).toEqual([]);
    expect(await auditActions()).toEqual([]);
  });

  it('serves the field descriptions of credentials.ts, per channel, for the form: names and kinds, no values', async () => {
    const s = await session();
    const res = await call(s, 'GET', `${base()}/fields`);
    expect(res.status, res.body).toBe(200);
    expect(res.json).toEqual({ data: Object.entries(CREDENTIAL_FIELDS).map(([channel, fields]) => ({ channel, fields: JSON.parse(JSON.stringify(fields)) })) });
    expect(res.json.data.map((c: { channel: string }) => c.channel)).toEqual(['alipay', 'wechat']);
    const names = (channel: string) => (res.json.data as { channel: string; fields: { name: string }[] }[]).find((c) => c.channel === channel)!.fields.map((f) => f.name);
    expect(names('alipay')).toEqual(['app_id', 'private_key', 'alipay_public_key', 'app_cert', 'alipay_public_cert', 'alipay_root_cert', 'endpoint', 'order_title']);
    expect(names('wechat')).toEqual(['mchid', 'merchant_serial', 'private_key', 'wechatpay_public_key', 'wechatpay_public_key_id', 'appids', 'transfer_scene_id', 'report_infos', 'remark', 'apiv3_key', 'endpoint']);
    const described = new Set(['name', 'kind', 'required', 'secret', 'max_length', 'group', 'keys', 'items', 'min_items', 'max_items', 'default', 'example']);
    for (const c of res.json.data as { fields: Record<string, unknown>[] }[]) {
      for (const f of c.fields) expect(Object.keys(f).filter((k) => !described.has(k)), String(f.name)).toEqual([]);
    }
    expect(res.json.data[0].fields.find((f: { name: string }) => f.name === 'private_key')).toEqual(expect.objectContaining({ kind: 'pem', secret: true, required: true }));
    // Nothing is stored or audited by reading it, and another account's app stays hidden.
    expect(await auditActions()).toEqual([]);
    expect((await call(await session('other@example.com'), 'GET', `${base()}/fields`)).status).toBe(404);
  });

  it('sets Alipay credentials: only a fingerprint and summary come back; the list shows the same', async () => {
    const s = await session();
    const set = await call(s, 'POST', base(), { mode: 'live', credentials: alipay() });
    expect(set.status, set.body).toBe(200);
    expect(set.json).toEqual(expect.objectContaining({ channel: 'alipay', mode: 'live', fingerprint: expect.stringMatching(/^sha256:[0-9a-f]{16}$/) }));
    expect(set.json.summary).toEqual({ channel_app_id: fake.appId, key_mode: 'public_key', endpoint: fake.endpoint });
    expect(set.body).not.toContain('PRIVATE KEY');
    const list = await call(s, 'GET', base());
    expect(list.json.data).toEqual([expect.objectContaining({ channel: 'alipay', mode: 'live', fingerprint: set.json.fingerprint })]);
    expect((await auditActions()).map((a) => a.action)).toEqual(['channel_credentials.set']);
    // The channels table now says alipay can pay live for this app; WeChat still cannot.
    const channels = (await call(s, 'GET', `/admin/apps/${merchant.id}/channels`)).json.data as { channel: string; live: boolean }[];
    expect(channels.find((c) => c.channel === 'alipay')?.live).toBe(true);
    expect(channels.find((c) => c.channel === 'wx')?.live).toBe(false);
  });

  it('refuses a broken key with a 400 naming the problem, not the key, and keeps what was there', async () => {
    const s = await session();
    const before = await call(s, 'GET', base());
    const broken = await call(s, 'POST', base(), { mode: 'live', credentials: alipay('-----BEGIN PRIVATE KEY-----\nTOPSECRETJUNK\n-----END PRIVATE KEY-----\n') });
    expect(broken.status).toBe(400);
    expect(broken.json.error).toEqual(expect.objectContaining({ type: 'invalid_request_error', param: 'credentials' }));
    expect(broken.body).not.toContain('TOPSECRETJUNK');
    const extra = await call(s, 'POST', base(), { mode: 'live', credentials: { ...alipay(), password: 'x' } });
    expect(extra.status).toBe(400);
    expect((await call(s, 'GET', base())).json).toEqual(before.json);
  });

  it('checks the credentials with a signed call the fake gateway verifies', async () => {
    const s = await session();
    const okBefore = await checks('ok');
    const check = await call(s, 'POST', `${base()}/alipay/check`, { mode: 'live' });
    expect(check.status, check.body).toBe(200);
    expect(check.json).toEqual(expect.objectContaining({ channel: 'alipay', mode: 'live', ok: true }));
    expect(await checks('ok')).toBe(okBefore + 1);
    expect(check.json.message).toMatch(/verified/);
    const none = await call(s, 'POST', `${base()}/alipay/check`, { mode: 'test' });
    expect(none.status).toBe(404);
  });

  it('replaces them with a wrong key: the check fails with a clear message', async () => {
    const s = await session();
    const old = (await call(s, 'GET', base())).json.data[0].fingerprint as string;
    const replaced = await call(s, 'POST', base(), { mode: 'live', credentials: alipay(otherKey) });
    expect(replaced.status, replaced.body).toBe(200);
    expect(replaced.json.fingerprint).not.toBe(old);
    const failedBefore = await checks('failed');
    const check = await call(s, 'POST', `${base()}/alipay/check`, { mode: 'live' });
    expect(check.status, check.body).toBe(200);
    expect(check.json.ok).toBe(false);
    expect(await checks('failed')).toBe(failedBefore + 1);
    expect(check.json.message).toMatch(/^alipay answered 40002 isv\.invalid-signature/);
  });

  it('hides the app from an operator of another account: 404 on every route, nothing changed', async () => {
    const other = await session('other@example.com');
    const before = await rt.store.db.selectFrom('channel_credentials').select(['fingerprint', 'updated']).execute();
    expect((await call(other, 'GET', base())).status).toBe(404);
    expect((await call(other, 'POST', base(), { mode: 'live', credentials: alipay() })).status).toBe(404);
    expect((await call(other, 'POST', `${base()}/alipay/check`, { mode: 'live' })).status).toBe(404);
    expect((await call(other, 'DELETE', `${base()}/alipay?mode=live`)).status).toBe(404);
    expect(await rt.store.db.selectFrom('channel_credentials').select(['fingerprint', 'updated']).execute()).toEqual(before);
  });

  it('removes them, audited; a second remove is 404', async () => {
    const s = await session();
    const removed = await call(s, 'DELETE', `${base()}/alipay?mode=live`);
    expect(removed.status, removed.body).toBe(200);
    expect((await call(s, 'GET', base())).json.data).toEqual([]);
    expect((await call(s, 'DELETE', `${base()}/alipay?mode=live`)).status).toBe(404);
    const audit = await auditActions();
    expect(audit.map((a) => a.action)).toEqual([
      'channel_credentials.set', 'channel_credentials.check', 'channel_credentials.replace', 'channel_credentials.check', 'channel_credentials.remove',
    ]);
    expect(JSON.parse(audit[1]!.detail)).toEqual(expect.objectContaining({ ok: true }));
    expect(JSON.parse(audit[2]!.detail)).toEqual(expect.objectContaining({ previous_fingerprint: expect.stringMatching(/^sha256:/) }));
    expect(JSON.parse(audit[3]!.detail)).toEqual(expect.objectContaining({ ok: false }));
  });

  it('sets WeChat Pay credentials in test mode (one merchant for wx/wx_pub/wx_lite) and checks them against the fake gateway', async () => {
    const wx = await new FakeWechat().start();
    try {
      const s = await session();
      const credentials = wx.credentials();
      const noScene = await call(s, 'POST', base(), { mode: 'test', credentials: { ...credentials, report_infos: [] } });
      expect(noScene.status).toBe(400);
      const set = await call(s, 'POST', base(), { mode: 'test', credentials });
      expect(set.status, set.body).toBe(200);
      expect(set.json.summary).toEqual(expect.objectContaining({ mchid: wx.mchid, appids: 'wx_lite=wxlite0000000001' }));
      const check = await call(s, 'POST', `${base()}/wechat/check`, { mode: 'test' });
      expect(check.status, check.body).toBe(200);
      expect(check.json.ok, check.json.message).toBe(true);
      expect(wx.calls.at(-1)).toMatch(/^GET \/v3\/fund-app\/mch-transfer\/transfer-bills\/out-bill-no\/tixiancheck/);
      expect(wx.rejectedSignatures).toBe(0);
      for (const line of wx.merchantPrivateKey.split('\n').filter((l) => l && !l.startsWith('-----'))) {
        expect(set.body.includes(line) || check.body.includes(line)).toBe(false);
        expect(lines.join('').includes(line), 'merchant key logged').toBe(false);
      }
      expect((await call(s, 'DELETE', `${base()}/wechat?mode=test`)).status).toBe(200);
    } finally {
      await wx.close();
    }
  });

  it('sets the WeChat Pay APIv3 key (notifications) from the console: kept sealed, never answered, a bad one refused', async () => {
    const wx = await new FakeWechat().start();
    try {
      const s = await session();
      const credentials = wx.credentials();
      const short = await call(s, 'POST', base(), { mode: 'test', credentials: { ...credentials, apiv3_key: 'k'.repeat(31) } });
      expect(short.status).toBe(400);
      expect(short.body).not.toContain('k'.repeat(31));
      expect(await loadCredentials(rt, merchant.id, false, 'wechat')).toBeNull();
      const set = await call(s, 'POST', base(), { mode: 'test', credentials: { ...credentials, apiv3_key: wx.apiv3Key } });
      expect(set.status, set.body).toBe(200);
      expect(set.body).not.toContain(wx.apiv3Key);
      expect((await call(s, 'GET', base())).body).not.toContain(wx.apiv3Key);
      expect(lines.join('').includes(wx.apiv3Key), 'APIv3 key logged').toBe(false);
      expect((await loadCredentials(rt, merchant.id, false, 'wechat'))?.credentials).toEqual(expect.objectContaining({ apiv3_key: wx.apiv3Key }));
      expect((await call(s, 'DELETE', `${base()}/wechat?mode=test`)).status).toBe(200);
    } finally {
      await wx.close();
    }
  });

  it('never puts key material in an answer, a log line or the audit log', async () => {
    rt.log.flush?.();
    const log = lines.join('');
    expect(log).toContain('channel_credentials');
    const audit = JSON.stringify(await rt.store.db.selectFrom('audit_log').selectAll().execute());
    for (const line of secretLines()) {
      expect(log.includes(line), 'key material logged').toBe(false);
      expect(audit.includes(line), 'key material audited').toBe(false);
      expect(answers.some((a) => a.includes(line)), 'key material answered').toBe(false);
    }
    expect(log).not.toContain('TOPSECRETJUNK');
  });
});
