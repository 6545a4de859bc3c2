import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, sign as rsaSign, verify as rsaVerify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { signatureUpdate } from '../src/cli/apps-signature.ts';
import { asUsageError, UsageError } from '../src/cli/shared.ts';
import { createApp } from '../src/services/accounts.ts';
import { getSignatureSettings, parseMerchantPublicKey, signaturePolicy, updateSignatureSettings } from '../src/services/app_settings.ts';
import { describeEngines, Harness } from './helpers/harness.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- the pingpp SDK is untyped JavaScript */
interface PingppClient {
  setHost(host: string, port: number, protocol: 'http' | 'https'): void;
  setPrivateKey(pem: string): void;
  users: {
    create(app: string, params: object): Promise<any>;
    update(app: string, id: string, params: object): Promise<any>;
    retrieve(app: string, id: string): Promise<any>;
  };
  balanceBonuses: { create(app: string, params: object): Promise<any> };
}
/* eslint-enable @typescript-eslint/no-explicit-any */
const Pingpp = createRequire(import.meta.url)('pingpp') as (key: string) => PingppClient;

const execFileP = promisify(execFile);
/** The CLI is pointed at the harness's storage by flags only. */
const cliEnv = () => {
  const env = { ...process.env };
  delete env.TIXIAN_DATABASE_URL;
  delete env.TIXIAN_DATA_DIR;
  return env;
};
const TIXIAN_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/tixian.mjs');

// The merchant's pair as the SDK examples ship it (PKCS#1 private key), a stranger's, and a weak one.
const merchant = generateKeyPairSync('rsa', { modulusLength: 2048 });
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
const merchantPrivatePem = merchant.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const merchantPublicPem = merchant.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const merchantPkcs1PublicPem = merchant.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const strangerPrivatePem = stranger.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const JSON_TYPE = 'application/json; charset=UTF-8';
const MISSING_ZH = '没有提供签名串，需要在 header 中加入签名串。';
const INVALID_ZH = '提供了无效的签名';

/** What a Ping++ SDK sends: base64 RSA-SHA256 over body bytes + request target + timestamp. */
function signRequest(body: string | Buffer, target: string, timestamp: string, key: KeyObject = merchant.privateKey): string {
  return rsaSign('sha256', Buffer.concat([Buffer.from(body), Buffer.from(target + timestamp)]), key).toString('base64');
}

/** A GET with the request target exactly as given (no URL normalisation on the way); resolves to the status. */
function wireGet(port: number, target: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: 'GET', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function verifiesWithPlatformKey(publicKeyPem: string, body: Buffer, signature: unknown): boolean {
  if (typeof signature !== 'string') return false;
  return rsaVerify('sha256', body, createPublicKey(publicKeyPem), Buffer.from(signature, 'base64'));
}

describeEngines('signatures', (engine) => {
  let h: Harness;
  let port: number;
  // The Node SDK stamps requests with the real time; the server's clock starts there and is moved by hand.
  const clock = new ManualClock(Date.now());
  const nowS = () => String(Math.floor(clock.nowMs() / 1000));

  beforeAll(async () => {
    h = await Harness.start(engine, { clock });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    port = (h.app.server.address() as AddressInfo).port;
    for (const key of [h.testKey, h.liveKey]) {
      await h.createUser('alice', { name: 'Alice' }, key);
      await h.createUser('bob', { name: 'Bob' }, key);
    }
  });
  afterAll(async () => h?.close());

  const sdk = (apiKey: string, privateKeyPem?: string): PingppClient => {
    const client = Pingpp(apiKey);
    client.setHost('127.0.0.1', port, 'http');
    if (privateKeyPem) client.setPrivateKey(privateKeyPem);
    return client;
  };

  const setPolicy = (require: 'none' | 'test' | 'live' | 'both', key: string | null = merchantPublicPem) =>
    updateSignatureSettings(h.rt, h.appId, {
      rsa_public_key: key,
      require_signature_test: require === 'test' || require === 'both',
      require_signature_live: require === 'live' || require === 'both',
    });

  interface Signed {
    body?: string;
    timestamp?: string;
    signingKey?: KeyObject;
    /** Sign these instead of what is sent (to model tampering in transit). */
    signedBody?: string;
    signedTarget?: string;
    apiKey?: string;
    headers?: Record<string, string>;
  }
  const send = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', target: string, o: Signed = {}) => {
    const timestamp = o.timestamp ?? nowS();
    const signature = signRequest(o.signedBody ?? o.body ?? '', o.signedTarget ?? target, timestamp, o.signingKey);
    return h.request(method, target, {
      ...(o.body !== undefined ? { rawBody: o.body } : {}),
      ...(o.apiKey ? { key: o.apiKey } : {}),
      headers: {
        ...(o.body !== undefined ? { 'content-type': JSON_TYPE } : {}),
        'pingplusplus-signature': signature,
        'pingplusplus-request-timestamp': timestamp,
        ...o.headers,
      },
    });
  };
  const userName = async (id: string, key = h.testKey) => (await h.request('GET', h.appPath(`/users/${id}`), { key })).json.name;

  describe('the official Node SDK', () => {
    it('with a private key: signed creates, updates and retrieves are accepted in both modes', async () => {
      await setPolicy('both');
      for (const [apiKey, livemode] of [[h.testKey, false], [h.liveKey, true]] as const) {
        const pingpp = sdk(apiKey, merchantPrivatePem);
        const user = await pingpp.users.create(h.appId, { id: 'sdk_signed', name: '张三', metadata: { tier: 'gold' } });
        expect(user).toMatchObject({ id: 'sdk_signed', name: '张三', livemode });
        const updated = await pingpp.users.update(h.appId, 'sdk_signed', { email: 'zhangsan@example.com' });
        expect(updated.email).toBe('zhangsan@example.com');
        const bonus = await pingpp.balanceBonuses.create(h.appId, { user: 'sdk_signed', amount: 100, order_no: 'sdkSigned1', description: '奖励' });
        expect(bonus).toMatchObject({ object: 'balance_bonus', amount: 100, livemode });
        // GET goes out as `/users/sdk_signed?` and is signed that way; it is verified, not just let through.
        const fetched = await pingpp.users.retrieve(h.appId, 'sdk_signed');
        expect(fetched.available_balance).toBe(100);
      }
    });

    it('without a private key: refused exactly in the modes whose switch is on', async () => {
      let n = 0;
      for (const policy of ['test', 'live', 'both', 'none'] as const) {
        await setPolicy(policy);
        for (const [apiKey, mode] of [[h.testKey, 'test'], [h.liveKey, 'live']] as const) {
          const required = policy === mode || policy === 'both';
          const pingpp = sdk(apiKey);
          const id = `sdk_unsigned_${n++}`;
          const before = await h.snapshot();
          const [create, bonus, update] = await Promise.allSettled([
            pingpp.users.create(h.appId, { id, name: 'x' }),
            pingpp.balanceBonuses.create(h.appId, { user: 'alice', amount: 1, order_no: `unsigned${n}` }),
            pingpp.users.update(h.appId, 'bob', { name: `Bob ${n}` }),
          ]);
          if (required) {
            for (const call of [create, bonus, update]) {
              expect(call.status).toBe('rejected');
              expect((call as PromiseRejectedResult).reason).toMatchObject({
                type: 'PingppInvalidRequest', rawType: 'invalid_request_error', code: 'signature_missing', message: MISSING_ZH,
              });
            }
            expect(await h.snapshot()).toEqual(before);
            expect(await userName('bob', apiKey)).not.toBe(`Bob ${n}`);
            // Reads are never required to be signed.
            expect((await pingpp.users.retrieve(h.appId, 'alice')).id).toBe('alice');
          } else {
            const values = [create, bonus, update].map((r) => (r.status === 'fulfilled' ? r.value : r.reason));
            expect(values[0].id).toBe(id);
            expect(values[1].amount).toBe(1);
            expect(values[2].name).toBe(`Bob ${n}`);
          }
        }
      }
    });

    it("with another merchant's key, or a clock more than 300 s off: refused", async () => {
      await setPolicy('test');
      const before = await h.snapshot();
      await expect(sdk(h.testKey, strangerPrivatePem).users.create(h.appId, { id: 'sdk_stranger' })).rejects.toMatchObject({
        rawType: 'invalid_request_error', code: 'signature_invalid', message: INVALID_ZH,
      });
      // The SDK stamps its requests with the real time; put the server's clock 305 s ahead of it.
      clock.set(Date.now() + 305_000);
      try {
        await expect(sdk(h.testKey, merchantPrivatePem).users.create(h.appId, { id: 'sdk_late' })).rejects.toMatchObject({
          rawType: 'invalid_request_error', code: 'timestamp_expired',
        });
      } finally {
        clock.set(Date.now());
      }
      expect(await h.snapshot()).toEqual(before);
    });
  });

  describe('rejections', () => {
    it('a tampered body, another path, an old or future timestamp, a foreign key, a malformed header: 400 and nothing changes', async () => {
      await setPolicy('test');
      const bonuses = h.appPath('/balance_bonuses');
      const bonusBody = JSON.stringify({ user: 'alice', amount: 100, order_no: 'tamper1' });
      const bob = h.appPath('/users/bob');
      const rename = JSON.stringify({ name: 'Mallory' });
      const cases: Array<[string, () => ReturnType<typeof send>, string]> = [
        ['tampered body', () => send('POST', bonuses, { body: bonusBody.replace('100', '100000'), signedBody: bonusBody }), 'signature_invalid'],
        ['body with extra whitespace', () => send('POST', bonuses, { body: bonusBody + ' ', signedBody: bonusBody }), 'signature_invalid'],
        ['other path', () => send('PUT', bob, { body: rename, signedTarget: h.appPath('/users/alice') }), 'signature_invalid'],
        ['query added', () => send('POST', bonuses + '?x=1', { body: bonusBody, signedTarget: bonuses }), 'signature_invalid'],
        ['path without /v1', () => send('POST', bonuses, { body: bonusBody, signedTarget: bonuses.slice(3) }), 'signature_invalid'],
        ['old timestamp', () => send('POST', bonuses, { body: bonusBody, timestamp: String(Number(nowS()) - 301) }), 'timestamp_expired'],
        ['future timestamp', () => send('POST', bonuses, { body: bonusBody, timestamp: String(Number(nowS()) + 301) }), 'timestamp_expired'],
        ['timestamp in ms', () => send('POST', bonuses, { body: bonusBody, timestamp: String(clock.nowMs()) }), 'timestamp_invalid'],
        ['foreign key', () => send('POST', bonuses, { body: bonusBody, signingKey: stranger.privateKey }), 'signature_invalid'],
        ['signed timestamp swapped', () => send('POST', bonuses, { body: bonusBody, headers: { 'pingplusplus-request-timestamp': String(Number(nowS()) - 1) } }), 'signature_invalid'],
        ['not base64', () => send('POST', bonuses, { body: bonusBody, headers: { 'pingplusplus-signature': 'not base64!' } }), 'signature_invalid'],
        ['too short', () => send('POST', bonuses, { body: bonusBody, headers: { 'pingplusplus-signature': 'AAAA' } }), 'signature_invalid'],
        ['too long', () => send('POST', bonuses, { body: bonusBody, headers: { 'pingplusplus-signature': 'A'.repeat(5000) } }), 'signature_invalid'],
        ['no timestamp', () => h.request('POST', bonuses, { rawBody: bonusBody, headers: { 'content-type': JSON_TYPE, 'pingplusplus-signature': signRequest(bonusBody, bonuses, '') } }), 'timestamp_invalid'],
        ['timestamp not a number', () => send('POST', bonuses, { body: bonusBody, timestamp: '1.5e9' }), 'timestamp_invalid'],
        ['empty signature', () => send('POST', bonuses, { body: bonusBody, headers: { 'pingplusplus-signature': '' } }), 'signature_missing'],
        ['no signature', () => h.request('POST', bonuses, { rawBody: bonusBody, headers: { 'content-type': JSON_TYPE } }), 'signature_missing'],
        // Checked before schema validation: an unsigned request learns nothing about its parameters.
        ['no signature, invalid body', () => h.request('PUT', bob, { body: { gender: 'nope' } }), 'signature_missing'],
      ];
      for (const [name, request, code] of cases) {
        const before = await h.snapshot();
        const res = await request();
        expect({ name, status: res.status, error: res.json?.error }).toMatchObject({ name, status: 400, error: { type: 'invalid_request_error', code } });
        expect(Object.keys(res.json)).toEqual(['error']);
        expect(typeof res.json.error.message).toBe('string');
        expect(await h.snapshot()).toEqual(before);
      }
      expect(await userName('bob')).not.toBe('Mallory');
      // The same requests, properly signed, go through: the cases above failed for their flaw only.
      expect((await send('POST', bonuses, { body: bonusBody })).status).toBe(200);
      expect((await send('PUT', bob, { body: rename })).json.name).toBe('Mallory');
    });

    it('accepts timestamps exactly at the 300 s tolerance on either side', async () => {
      await setPolicy('test');
      const target = h.appPath('/users/alice');
      expect((await send('PUT', target, { body: '{"name":"A1"}', timestamp: String(Number(nowS()) - 300) })).status).toBe(200);
      expect((await send('PUT', target, { body: '{"name":"A2"}', timestamp: String(Number(nowS()) + 300) })).status).toBe(200);
    });

    it('answers in English when asked', async () => {
      await setPolicy('test');
      const res = await h.request('POST', h.appPath('/users'), { body: { id: 'en_user' }, headers: { 'accept-language': 'en' } });
      expect(res.status).toBe(400);
      expect(res.json.error).toEqual({
        type: 'invalid_request_error',
        code: 'signature_missing',
        message: 'No signature provided. Sign the request and send the signature in the Pingplusplus-Signature header.',
      });
      const bad = await send('POST', h.appPath('/users'), { body: '{"id":"en_user"}', signedBody: '{}', headers: { 'accept-language': 'en-US' } });
      expect(bad.json.error).toEqual({ type: 'invalid_request_error', code: 'signature_invalid', message: 'Invalid signature provided.' });
    });

    it('GET and DELETE: verified when signed, never required', async () => {
      await setPolicy('both');
      const alice = h.appPath('/users/alice');
      expect((await h.request('GET', alice)).status).toBe(200);
      expect((await send('GET', alice)).status).toBe(200);
      const bad = await send('GET', alice, { signingKey: stranger.privateKey });
      expect(bad.status).toBe(400);
      expect(bad.json.error.code).toBe('signature_invalid');
      const stale = await send('GET', alice, { timestamp: String(Number(nowS()) - 1000) });
      expect(stale.json.error.code).toBe('timestamp_expired');
      // A DELETE on a route that does not exist has no app key to check: the usual 404.
      expect((await send('DELETE', `/v1/apps/${h.appId}/nothing_here?`)).status).toBe(404);
    });

    it('a signature is checked when sent even if not required, and ignored when the app has no key', async () => {
      await setPolicy('none');
      const users = h.appPath('/users');
      const forged = await send('POST', users, { body: '{"id":"opt_1"}', signingKey: stranger.privateKey });
      expect(forged.json.error.code).toBe('signature_invalid');
      expect((await send('POST', users, { body: '{"id":"opt_1"}' })).status).toBe(200);
      expect((await h.request('POST', users, { body: { id: 'opt_2' } })).status).toBe(200);

      await setPolicy('none', null);
      const ignored = await send('POST', users, { body: '{"id":"opt_3"}', headers: { 'pingplusplus-signature': 'garbage!' } });
      expect(ignored.status).toBe(200);
    });
  });

  describe('bodies and targets as the other SDKs send them', () => {
    // Hand-made like each SDK serialises; verification must use the bytes received, not a re-serialisation.
    const bodies: Array<[string, string, string]> = [
      ['Python json.dumps (", " and ": ", ASCII escapes)', 'py_user', '{"id": "py_user", "name": "\\u5f20\\u4e09", "metadata": {"k": "v"}}'],
      ['C# Newtonsoft indented, CRLF', 'cs_user', '{\r\n  "id": "cs_user",\r\n  "name": "张三",\r\n  "metadata": {\r\n    "k": "v"\r\n  }\r\n}'],
      ['C# Newtonsoft indented, LF', 'cs_user_lf', '{\n  "id": "cs_user_lf",\n  "name": "张三"\n}'],
      ['PHP json_encode unescaped unicode and slashes', 'php_user', '{"id":"php_user","name":"张三","avatar":"https://example.com/a/b.png"}'],
      ['Java Gson, HashMap order', 'java_user', '{"name":"张三","id":"java_user"}'],
    ];
    for (const [sdkName, id, body] of bodies) {
      it(`${sdkName} verifies`, async () => {
        await setPolicy('test');
        const res = await send('POST', h.appPath('/users'), { body });
        expect(res.status).toBe(200);
        expect(res.json).toMatchObject({ id, name: '张三' });
      });
    }

    it('Go json.Marshal on a balance bonus', async () => {
      await setPolicy('test');
      const res = await send('POST', h.appPath('/balance_bonuses'), { body: '{"amount":100,"description":"","order_no":"go1","user":"alice"}' });
      expect(res.status).toBe(200);
    });

    it('query strings are signed in the encoding the client sent', async () => {
      await setPolicy('test');
      const cases: Array<[string, string | null]> = [
        [h.appPath('/users?per_page=3&page=1'), null],
        [h.appPath('/users?created%5Bgte%5D=1&per_page=3'), h.appPath('/users?created[gte]=1&per_page=3')], // Node, Python, Go, PHP, Java, C#
        [h.appPath('/users?created[gte]=1&per_page=3'), h.appPath('/users?created%5Bgte%5D=1&per_page=3')], // Ruby
      ];
      for (const [target, otherEncoding] of cases) {
        const res = await send('GET', target);
        expect({ target, status: res.status }).toEqual({ target, status: 200 });
        if (otherEncoding) expect((await send('GET', target, { signedTarget: otherEncoding })).status).toBe(400);
      }
    });

    it("Node's trailing ? verifies with or without the ?, and only where it was sent", async () => {
      await setPolicy('test');
      // Over a socket: inject() normalises a bare trailing `?` away, the wire keeps it.
      const get = (target: string, signedTarget: string) => {
        const timestamp = nowS();
        return wireGet(port, target, {
          authorization: `Bearer ${h.testKey}`,
          'pingplusplus-signature': signRequest('', signedTarget, timestamp),
          'pingplusplus-request-timestamp': timestamp,
        });
      };
      const alice = h.appPath('/users/alice');
      expect(await get(alice + '?', alice + '?')).toBe(200);
      expect(await get(alice + '?', alice)).toBe(200);
      expect(await get(alice, alice + '?')).toBe(400);
      expect(await get(alice + '?x=1', alice + '?x=')).toBe(400);
    });
  });

  describe('settings changed by another process', () => {
    it('`tixian apps update` from the CLI reaches a running server within 5 s', async () => {
      await setPolicy('none', null);
      const users = h.appPath('/users');
      expect((await h.request('POST', users, { body: { id: 'ttl_1' } })).status).toBe(200);

      const dir = mkdtempSync(path.join(tmpdir(), 'tixian-sig-'));
      try {
        const keyFile = path.join(dir, 'merchant.pem');
        writeFileSync(keyFile, merchantPkcs1PublicPem);
        const storage = ['--data-dir', h.rt.config.dataDir, ...(h.rt.config.databaseUrl ? ['--database-url', h.rt.config.databaseUrl] : [])];
        const { stdout } = await execFileP(process.execPath, [TIXIAN_BIN, 'apps', 'update', h.appId, '--rsa-public-key-file', keyFile, '--require-signature', 'test', ...storage], { env: cliEnv() });
        expect(stdout).toContain('RSA public key set (2048 bits');
        expect(stdout).toContain('must be signed in test mode');

        const refused = await execFileP(process.execPath, [TIXIAN_BIN, 'apps', 'update', h.appId, '--require-signature', 'sometimes', ...storage]).catch((e: { code: number; stderr: string }) => e);
        expect((refused as { code: number }).code).not.toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }

      // The server still has the old policy cached ...
      expect((await h.request('POST', users, { body: { id: 'ttl_2' } })).status).toBe(200);
      // ... for at most 5 s.
      clock.advance(5_001);
      const res = await h.request('POST', users, { body: { id: 'ttl_3' } });
      expect(res.json.error?.code).toBe('signature_missing');
      expect((await send('POST', users, { body: '{"id":"ttl_3"}' })).status).toBe(200);
      clock.set(Date.now());
    });
  });

  it('parses a PEM once per key change: a refresh after the TTL keeps the same KeyObject', async () => {
    await setPolicy('test');
    const first = await signaturePolicy(h.rt, h.appId);
    expect(await signaturePolicy(h.rt, h.appId)).toBe(first);
    clock.advance(5_001);
    const refreshed = await signaturePolicy(h.rt, h.appId);
    expect(refreshed).not.toBe(first);
    expect(refreshed?.key).toBe(first?.key);
    clock.set(Date.now());
  });

  describe('response signatures', () => {
    it('every answer, success or error, is signed with the platform key', async () => {
      await setPolicy('test');
      const pem = h.rt.platformKey.publicKeyPem;
      const answers = [
        ['200', await h.request('GET', h.appPath('/users/alice'))],
        ['200 healthz', await h.request('GET', '/healthz', { key: null })],
        ['400 signature', await h.request('POST', h.appPath('/users'), { body: { id: 'resp_1' } })],
        ['400 validation', await send('PUT', h.appPath('/users/alice'), { body: '{"gender":"nope"}' })],
        ['401', await h.request('GET', h.appPath('/users/alice'), { key: null })],
        ['404 object', await h.request('GET', h.appPath('/users/nobody'))],
        ['404 route', await h.request('GET', '/v1/nothing')],
        ['404 outside /v1', await h.request('GET', '/nothing', { key: null })],
        ['413', await h.request('POST', h.appPath('/users'), { rawBody: '{"id":"' + 'x'.repeat(h.rt.config.bodyLimitBytes) + '"}', headers: { 'content-type': JSON_TYPE } })],
        ['415', await h.request('POST', h.appPath('/users'), { rawBody: 'id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })],
      ] as const;
      for (const [name, res] of answers) {
        expect({ name, status: String(res.status) }).toEqual({ name, status: name.slice(0, 3) });
        expect({ name, ok: verifiesWithPlatformKey(pem, Buffer.from(res.body, 'utf8'), res.headers['x-pingplusplus-signature']) }).toEqual({ name, ok: true });
      }
      // A signature belongs to its body.
      const [a, b] = [answers[0][1], answers[5][1]];
      expect(verifiesWithPlatformKey(pem, Buffer.from(b.body), a.headers['x-pingplusplus-signature'])).toBe(false);
    });

    it('over HTTP, the exact bytes on the wire verify, with the key `tixian keys platform-public-key` prints', async () => {
      const storage = ['--data-dir', h.rt.config.dataDir, ...(h.rt.config.databaseUrl ? ['--database-url', h.rt.config.databaseUrl] : [])];
      const { stdout: printed } = await execFileP(process.execPath, [TIXIAN_BIN, 'keys', 'platform-public-key', ...storage], { env: cliEnv() });
      expect(printed).toBe(h.rt.platformKey.publicKeyPem);
      for (const [url, status] of [[`/v1/apps/${h.appId}/users/alice`, 200], [`/v1/apps/${h.appId}/users/nobody`, 404]] as const) {
        const res = await fetch(`http://127.0.0.1:${port}${url}`, { headers: { authorization: `Bearer ${h.testKey}`, 'accept-language': 'zh-CN' } });
        expect(res.status).toBe(status);
        const bytes = Buffer.from(await res.arrayBuffer());
        expect(verifiesWithPlatformKey(printed, bytes, res.headers.get('x-pingplusplus-signature'))).toBe(true);
      }
    });
  });

  describe('settings: `tixian apps update` and the service behind it', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'tixian-sig-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = (name: string, text: string) => {
      const p = path.join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    // As `tixian apps update` runs it: a service's refusal reaches the user as a usage error (cli/main.ts).
    const apply = (appId: string, opts: Record<string, unknown>) =>
      signatureUpdate.apply(h.rt, appId, opts).catch((err: unknown) => {
        throw asUsageError(err) ?? err;
      });

    it('sets a PKCS#1 or SPKI key and the switches; stores the key as SPKI', async () => {
      const fresh = await createApp(h.rt, { name: 'cli app' });
      expect(await apply(fresh.id, {})).toEqual([]);
      const lines = await apply(fresh.id, { rsaPublicKeyFile: file('pkcs1.pem', merchantPkcs1PublicPem) });
      expect(lines[0]).toMatch(/^app app_\w+: RSA public key set \(2048 bits, SHA-256 [0-9a-f]{64}\)$/);
      expect(lines[1]).toContain('checked when sent but not required');
      let settings = await getSignatureSettings(h.rt, fresh.id);
      expect(settings).toMatchObject({ rsa_public_key: merchantPublicPem, rsa_public_key_bits: 2048, require_signature_test: false, require_signature_live: false });

      for (const [which, test, live] of [['test', true, false], ['live', false, true], ['both', true, true], ['none', false, false]] as const) {
        await apply(fresh.id, { requireSignature: which });
        settings = await getSignatureSettings(h.rt, fresh.id);
        expect([which, settings.require_signature_test, settings.require_signature_live]).toEqual([which, test, live]);
      }
      // A new key replaces the old one; switches given with it apply in the same step.
      await apply(fresh.id, { rsaPublicKeyFile: file('spki.pem', stranger.publicKey.export({ type: 'spki', format: 'pem' }).toString()), requireSignature: 'both' });
      settings = await getSignatureSettings(h.rt, fresh.id);
      expect(settings.rsa_public_key).not.toBe(merchantPublicPem);
      expect(settings.require_signature_live).toBe(true);
    });

    it('refuses to require signatures without a key, and bad key files', async () => {
      const fresh = await createApp(h.rt, { name: 'cli refusals' });
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const refusals: Array<[Record<string, unknown>, RegExp]> = [
        [{ requireSignature: 'test' }, /no RSA public key/],
        [{ requireSignature: 'both' }, /no RSA public key/],
        [{ rsaPublicKeyFile: file('private.pem', merchantPrivatePem) }, /private key/],
        [{ rsaPublicKeyFile: file('weak.pem', weak) }, /1024 bits/],
        [{ rsaPublicKeyFile: file('ec.pem', ec) }, /not an RSA key/],
        [{ rsaPublicKeyFile: file('garbage.pem', 'hello') }, /PEM/],
        [{ rsaPublicKeyFile: file('two.pem', merchantPublicPem + merchantPublicPem) }, /PEM/],
        [{ rsaPublicKeyFile: file('truncated.pem', merchantPublicPem.split('\n').filter((_, i) => i !== 2).join('\n')) }, /readable|RSA/],
        [{ rsaPublicKeyFile: path.join(dir, 'missing.pem') }, /cannot read/],
      ];
      for (const [opts, message] of refusals) {
        const err = await apply(fresh.id, opts).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UsageError);
        expect((err as Error).message).toMatch(message);
        expect((err as Error).message).not.toContain('MII'); // no part of an uploaded key is echoed
      }
      const settings = await getSignatureSettings(h.rt, fresh.id);
      expect(settings).toMatchObject({ rsa_public_key: null, require_signature_test: false, require_signature_live: false });
    });

    it('removing a key is refused while a mode still requires signatures', async () => {
      const fresh = await createApp(h.rt, { name: 'key removal' });
      await updateSignatureSettings(h.rt, fresh.id, { rsa_public_key: merchantPublicPem, require_signature_live: true });
      await expect(updateSignatureSettings(h.rt, fresh.id, { rsa_public_key: null })).rejects.toMatchObject({ code: 'invalid_parameter', param: 'rsa_public_key' });
      await expect(updateSignatureSettings(h.rt, fresh.id, { rsa_public_key: null, require_signature_test: true })).rejects.toMatchObject({ param: 'require_signature_test' });
      const removed = await updateSignatureSettings(h.rt, fresh.id, { rsa_public_key: null, require_signature_live: false });
      expect(removed).toMatchObject({ rsa_public_key: null, require_signature_test: false, require_signature_live: false });
      await expect(updateSignatureSettings(h.rt, 'app_doesnotexist0000', { require_signature_test: false })).rejects.toMatchObject({ status: 404 });
    });
  });
});

describe('parseMerchantPublicKey', () => {
  it('accepts SPKI and PKCS#1 forms of one key as the same key', () => {
    const a = parseMerchantPublicKey(merchantPublicPem);
    const b = parseMerchantPublicKey('\n' + merchantPkcs1PublicPem.replace(/\n/g, '\r\n') + '\n');
    expect(a.pem).toBe(merchantPublicPem);
    expect(b.pem).toBe(merchantPublicPem);
    expect(b.fingerprint).toBe(a.fingerprint);
  });
});
