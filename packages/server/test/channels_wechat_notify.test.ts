import { once } from 'node:events';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { wechatNotifyUrl } from '../src/channels/live.ts';
import type { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { startLivePayouts } from './helpers/channels.ts';
import { orderNo } from './helpers/withdrawals.ts';
import { FakeWechat } from './fakes/wechat.ts';
import { registry } from '../src/observability/metrics.ts';

const notifications = async (result: string) =>
  (await registry.getSingleMetric('tixian_channel_notifications_total')!.get()).values.find((v) => v.labels.channel === 'wechat' && v.labels.result === result)?.value ?? 0;

/** A port free right now, for a public URL the server is then started on. */
async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * WeChat Pay transfer notifications: bills carry `notify_url` from `--public-url`; a notification
 * POSTed there without an API key is verified (WeChat Pay signature headers, 5-minute timestamp),
 * decrypted with the APIv3 key and only makes the withdrawal queried now.
 */
describeEngines('WeChat Pay transfer notifications', (engine) => {
  let h: Harness;
  let fake: FakeWechat;
  let worker: PayoutWorker;
  let publicUrl: string;
  const user = 'notify_user';

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    // 12 key requests per hour (this suite makes 10): notifications carry no key and are never counted.
    ({ h, worker } = await startLivePayouts(engine, fake.credentials({ apiv3_key: fake.apiv3Key }), {
      config: { publicUrl, rateLimit: 12, rateLimitWindowMs: 3_600_000 },
    }));
    await h.app.listen({ port, host: '127.0.0.1' });
    await h.request('POST', h.appPath('/users'), { key: h.liveKey, body: { id: user } });
    await h.fund(user, 1_000_000, h.liveKey);
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  const row = (id: string) => h.rt.store.db.selectFrom('withdrawals').select(['status', 'payout_due_ms', 'extra']).where('id', '=', id).executeTakeFirstOrThrow();
  const path = (mode = 'live') => `/channels/wechat/notify/${h.appId}/${mode}`;
  const post = (n: { headers: Record<string, string>; body: string }, mode = 'live') => h.request('POST', path(mode), { key: null, headers: n.headers, rawBody: n.body });

  /** A live wx_lite withdrawal confirmed and submitted once: its bill waits for the payee, its next query minutes away. */
  async function waiting(openid: string): Promise<string> {
    const w = (await h.request('POST', h.appPath('/withdrawals'), { key: h.liveKey, body: { user, amount: 1000, channel: 'wx_lite', order_no: orderNo(), extra: { open_id: openid } } })).json;
    expect((await h.request('PUT', h.appPath(`/withdrawals/${w.id}`), { key: h.liveKey, body: { status: 'pending' } })).status).toBe(200);
    await h.rt.store.db.updateTable('withdrawals').set({ payout_due_ms: 0 }).where('id', '=', w.id).execute();
    expect(await worker.runOnce()).toBe(1);
    const r = await row(w.id);
    expect(r.status).toBe('pending');
    expect(Number(r.payout_due_ms)).toBeGreaterThan(h.rt.clock.nowMs() + 60_000);
    return w.id;
  }

  it('submits the bill with notify_url; a notification from WeChat (no API key) is answered 204 and gets the bill queried at once', async () => {
    const id = await waiting('o_notify_ok');
    expect(fake.bills.get(id)!.notify_url).toBe(`${publicUrl}/channels/wechat/notify/${h.appId}/live`);
    expect(await worker.runOnce()).toBe(0); // nothing due before the notification
    fake.confirm(id);
    const woken = once(h.rt.bus, 'payout');
    // The fake POSTs to the notify_url over HTTP, as WeChat does.
    expect(await fake.notify(id)).toBe(204);
    await woken;
    expect(Number((await row(id)).payout_due_ms)).toBeLessThanOrEqual(h.rt.clock.nowMs());
    // WeChat resends; duplicates are fine and never rate-limited (more than the per-key limit here).
    for (let i = 0; i < 15; i++) expect(await fake.notify(id)).toBe(204);
    expect((await row(id)).status).toBe('pending'); // the notification itself changed nothing
    expect(await worker.runOnce()).toBe(1);
    expect((await row(id)).status).toBe('succeeded');
    expect(fake.debits.get(id)).toBe(1);
  });

  it("never changes a withdrawal on the notification's word: a notification claiming SUCCESS only triggers a query", async () => {
    const id = await waiting('o_notify_liar');
    const bill = fake.bills.get(id)!;
    bill.state = 'SUCCESS';
    const forged = fake.notification(id); // validly signed and encrypted, but WeChat's bill is not paid
    bill.state = 'WAIT_USER_CONFIRM';
    expect((await post(forged)).status).toBe(204);
    expect(await worker.runOnce()).toBe(1);
    expect((await row(id)).status).toBe('pending');
    expect(fake.debits.has(id)).toBe(false);
  });

  it('refuses a bad signature, a stale timestamp, an unknown serial, a probe, a wrong APIv3 key with {code: FAIL} and changes nothing', async () => {
    const id = await waiting('o_notify_bad');
    const before = (await row(id)).payout_due_ms;
    const good = fake.notification(id);
    const rejectedBefore = await notifications('rejected');
    const cases: [string, { headers: Record<string, string>; body: string }, number][] = [
      ['tampered body', fake.notification(id, { tamper: true }), 401],
      ['stale timestamp', fake.notification(id, { timestampS: Math.floor(h.rt.clock.nowMs() / 1000) - 301 }), 401],
      ['unknown serial', { ...good, headers: { ...good.headers, 'wechatpay-serial': 'PUB_KEY_ID_0999' } }, 401],
      ['signature probe', { ...good, headers: { ...good.headers, 'wechatpay-signature': 'WECHATPAY/SIGNTEST/' + good.headers['wechatpay-signature'] } }, 401],
      ['no signature', { ...good, headers: { ...good.headers, 'wechatpay-signature': '' } }, 401],
      ['wrong APIv3 key', fake.notification(id, { apiv3Key: 'x'.repeat(32) }), 400],
    ];
    for (const [what, n, status] of cases) {
      const res = await post(n);
      expect(res.status, what).toBe(status);
      expect(res.json, what).toEqual({ code: 'FAIL', message: expect.any(String) });
      expect(res.body, what).not.toContain(fake.apiv3Key);
    }
    // A body that is not JSON, or too deep, is answered in WeChat's form too.
    for (const body of ['not json', '['.repeat(40) + ']'.repeat(40)]) {
      const res = await h.request('POST', path(), { key: null, headers: { ...good.headers }, rawBody: body });
      expect(res.status).toBe(400);
      expect(res.json).toEqual({ code: 'FAIL', message: expect.any(String) });
    }
    // Test mode has no WeChat credentials for this app.
    const test = await post(good, 'test');
    expect(test.status).toBe(404);
    expect(test.json.code).toBe('FAIL');
    expect((await row(id)).payout_due_ms).toBe(before);
    expect(await worker.runOnce()).toBe(0);
    expect(await notifications('rejected')).toBe(rejectedBefore + cases.length + 3);
    // The genuine one still works.
    expect((await post(good)).status).toBe(204);
    expect(await worker.runOnce()).toBe(1);
  });

  it('is documented in the OpenAPI reference with an example, without API-key security', async () => {
    const spec = (await h.request('GET', '/openapi.json', { key: null })).json;
    const op = spec.paths['/channels/wechat/notify/{app}/{mode}'].post;
    expect(op.security).toEqual([]);
    expect(op.requestBody.content['application/json'].example.event_type).toBe('MCHTRANSFER.BILL.FINISHED');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['204', '400', '401', '404']));
  });

  it('ledger clean', async () => {
    expect(fake.doublePaid()).toEqual([]);
    expect((await h.verify()).ok).toBe(true);
  });
});

describe('--public-url', () => {
  it('takes an https base URL (http only on loopback), without query or credentials, and never echoes a bad one', () => {
    expect(loadConfig({}, { TIXIAN_PUBLIC_URL: 'https://pay.example.com/' }).publicUrl).toBe('https://pay.example.com');
    expect(loadConfig({ publicUrl: 'http://127.0.0.1:8080' }, {}).publicUrl).toBe('http://127.0.0.1:8080');
    expect(loadConfig({}, {}).publicUrl).toBeUndefined();
    for (const bad of ['http://pay.example.com', 'https://pay.example.com/?x=1', 'https://user:secretpw@pay.example.com', 'pay.example.com']) {
      expect(() => loadConfig({}, { TIXIAN_PUBLIC_URL: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({}, { TIXIAN_PUBLIC_URL: bad })).toThrow(/TIXIAN_PUBLIC_URL/);
    }
    expect(() => loadConfig({}, { TIXIAN_PUBLIC_URL: 'https://user:secretpw@pay.example.com' })).not.toThrow(/secretpw/);
    expect(wechatNotifyUrl('https://pay.example.com', 'app_1', false)).toBe('https://pay.example.com/channels/wechat/notify/app_1/test');
    expect(wechatNotifyUrl(undefined, 'app_1', true)).toBeUndefined();
  });
});
