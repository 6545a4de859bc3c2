import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import * as sdk from '../src/index.ts';
import { SignatureVerificationError, TixianError, Tixian, webhooks, type Event } from '../src/index.ts';

/** The official pingpp package's webhook sample: the body and signature literals of example/webhooks_verify.js. */
function pingppSample(): { rawData: string; signature: string; publicKeyPem: string } {
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('pingpp/package.json')), 'example');
  const source = readFileSync(path.join(dir, 'webhooks_verify.js'), 'utf8');
  const literal = (name: string) => {
    const m = new RegExp(`var ${name} = '([^']*)';`).exec(source);
    if (!m) throw new Error(`no ${name} literal in webhooks_verify.js`);
    return m[1]!;
  };
  return { rawData: literal('raw_data'), signature: literal('signature'), publicKeyPem: readFileSync(path.join(dir, 'pingpp_rsa_public_key.pem'), 'utf8') };
}

describe('Ping++ signatures (X-Pingplusplus-Signature)', () => {
  const { rawData, signature, publicKeyPem } = pingppSample();

  it("accepts the official pingpp package's sample event, as a string and as bytes", () => {
    expect(rawData).toContain('"object":"event"');
    expect(webhooks.verify(rawData, signature, publicKeyPem)).toBe(true);
    expect(webhooks.verify(Buffer.from(rawData), signature, publicKeyPem)).toBe(true);
    expect(webhooks.verify(new Uint8Array(Buffer.from(rawData)), [signature], publicKeyPem)).toBe(true);
    const event = webhooks.constructEvent(Buffer.from(rawData), signature, publicKeyPem);
    expect(event.id).toBe('evt_eYa58Wd44Glerl8AgfYfd1sL');
  });

  it('rejects the sample when any single byte of the body changes', () => {
    const bytes = Buffer.from(rawData);
    // Every position (an RSA verify is tens of microseconds).
    const accepted: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const changed = Buffer.from(bytes);
      changed[i] = changed[i]! ^ 0x01;
      if (webhooks.verify(changed, signature, publicKeyPem)) accepted.push(i);
    }
    expect(accepted).toEqual([]);
    const first = Buffer.from(bytes);
    first[0] = 0x20;
    expect(() => webhooks.constructEvent(first, signature, publicKeyPem)).toThrow(SignatureVerificationError);
    // Re-serialising the parsed body (the classic mistake) changes nothing visible and still fails.
    expect(webhooks.verify(JSON.stringify(JSON.parse(rawData), null, 1), signature, publicKeyPem)).toBe(false);
  });

  it('rejects missing, empty, garbage and other-key signatures; refuses a parsed body outright', () => {
    expect(webhooks.verify(rawData, undefined, publicKeyPem)).toBe(false);
    expect(webhooks.verify(rawData, '', publicKeyPem)).toBe(false);
    expect(webhooks.verify(rawData, 'not base64 !!', publicKeyPem)).toBe(false);
    expect(webhooks.verify(rawData, signature.slice(0, 40), publicKeyPem)).toBe(false);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(webhooks.verify(rawData, signature, other)).toBe(false);
    expect(() => webhooks.constructEvent(rawData, undefined, publicKeyPem)).toThrow(/no X-Pingplusplus-Signature/);
    expect(() => webhooks.verify(JSON.parse(rawData) as never, signature, publicKeyPem)).toThrow(/raw request body/);
    expect(() => webhooks.verify(rawData, signature, 'not a key')).toThrow();
  });

  it('is reachable from a client instance too', () => {
    const t = new Tixian({ apiKey: 'sk_test_x' });
    expect(t.webhooks.verify(rawData, signature, publicKeyPem)).toBe(true);
  });

  it('is exported once, as the webhooks namespace (the client holds the same object)', () => {
    expect(Object.keys(webhooks).sort()).toEqual(['SIGNATURE_HEADER', 'constructEvent', 'constructStandardEvent', 'fastifyRawBody', 'readRawBody', 'verify', 'verifyStandard']);
    expect(new Tixian({ apiKey: 'sk_test_x' }).webhooks).toBe(webhooks);
    for (const name of Object.keys(webhooks)) expect(Object.keys(sdk), name).not.toContain(name);
  });

  it('names the reason when constructEvent refuses a signature', () => {
    expect(() => webhooks.constructEvent(rawData + ' ', signature, publicKeyPem)).toThrow(/does not match the body/);
    expect(() => webhooks.constructEvent(rawData, ['  '], publicKeyPem)).toThrow(/no X-Pingplusplus-Signature header/);
    // A malformed key throws even without a signature, and a parsed body before anything else.
    expect(() => webhooks.constructEvent(rawData, undefined, 'not a key')).toThrow();
    expect(() => webhooks.constructEvent(JSON.parse(rawData) as never, signature, 'not a key')).toThrow(/raw request body/);
  });
});

describe('typed events', () => {
  const platform = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKeyPem = platform.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const withdrawalEvent = (type: string, status: string) =>
    JSON.stringify({
      id: 'evt_401180116154930078262236', object: 'event', created: 1700000000, livemode: false, type,
      data: { object: { id: '1701611150302360654', object: 'withdrawal', status, amount: 200, failure_msg: status === 'failed' ? '账户错误' : null } },
      pending_webhooks: 0, request: null, scope: 'app_1', acct_id: 'acct_1',
    });
  const signed = (body: string) => sign('sha256', Buffer.from(body), platform.privateKey).toString('base64');

  it('narrows data.object by type', () => {
    const outcomes: string[] = [];
    for (const [type, status] of [['balance.withdrawal.succeeded', 'succeeded'], ['balance.withdrawal.failed', 'failed']] as const) {
      const body = withdrawalEvent(type, status);
      const event: Event = webhooks.constructEvent(body, signed(body), publicKeyPem);
      switch (event.type) {
        case 'balance.withdrawal.succeeded':
          outcomes.push(`${event.data.object.id} ${event.data.object.status}`);
          break;
        case 'balance.withdrawal.failed':
          outcomes.push(`${event.data.object.id} ${event.data.object.status} ${event.data.object.failure_msg}`);
          break;
      }
    }
    expect(outcomes).toEqual(['1701611150302360654 succeeded', '1701611150302360654 failed 账户错误']);
  });

  it('refuses a signed body that is not an event', () => {
    const body = JSON.stringify({ object: 'withdrawal' });
    expect(() => webhooks.constructEvent(body, signed(body), publicKeyPem)).toThrow(TixianError);
    expect(() => webhooks.constructEvent('{', signed('{'), publicKeyPem)).toThrow(/not JSON/);
  });
});

describe('Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature)', () => {
  const keyBytes = randomBytes(32);
  const secret = 'whsec_' + keyBytes.toString('base64');
  const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'balance.withdrawal.succeeded', data: { object: { id: '1', object: 'withdrawal' } } });
  const now = 1_700_000_000;
  const sig = (id: string, ts: number, payload: string, key = keyBytes) => createHmac('sha256', key).update(`${id}.${ts}.${payload}`).digest('base64');
  const headers = (over: Record<string, string> = {}) => ({
    'webhook-id': 'msg_1',
    'webhook-timestamp': String(now),
    'webhook-signature': `v1,${sig('msg_1', now, body)}`,
    ...over,
  });

  it('accepts a correct signature, also among several (key rotation) and with fetch Headers', () => {
    expect(webhooks.verifyStandard(body, headers(), secret, { nowS: now })).toBe(true);
    const rotated = `v1,${sig('msg_1', now, body, randomBytes(32))} v1,${sig('msg_1', now, body)}`;
    expect(webhooks.verifyStandard(Buffer.from(body), headers({ 'webhook-signature': rotated }), secret, { nowS: now })).toBe(true);
    expect(webhooks.verifyStandard(body, new Headers(headers()), secret, { nowS: now })).toBe(true);
    expect(webhooks.verifyStandard(body, { 'Webhook-Id': 'msg_1', 'Webhook-Timestamp': String(now), 'Webhook-Signature': headers()['webhook-signature'] }, secret, { nowS: now })).toBe(true);
    expect(webhooks.constructStandardEvent(body, headers(), secret, { nowS: now }).id).toBe('evt_1');
  });

  it('rejects a changed body, id or timestamp, another secret, other versions, and missing headers', () => {
    expect(webhooks.verifyStandard(body + ' ', headers(), secret, { nowS: now })).toBe(false);
    expect(webhooks.verifyStandard(body, headers({ 'webhook-id': 'msg_2' }), secret, { nowS: now })).toBe(false);
    expect(webhooks.verifyStandard(body, headers({ 'webhook-timestamp': String(now + 1) }), secret, { nowS: now })).toBe(false);
    expect(webhooks.verifyStandard(body, headers(), 'whsec_' + randomBytes(32).toString('base64'), { nowS: now })).toBe(false);
    expect(webhooks.verifyStandard(body, headers({ 'webhook-signature': `v2,${sig('msg_1', now, body)}` }), secret, { nowS: now })).toBe(false);
    expect(webhooks.verifyStandard(body, headers({ 'webhook-signature': 'v1,' }), secret, { nowS: now })).toBe(false);
    expect(webhooks.verifyStandard(body, { 'webhook-id': 'msg_1' }, secret, { nowS: now })).toBe(false);
    expect(() => webhooks.verifyStandard(body, headers(), 'whsec_', { nowS: now })).toThrow(TypeError);
  });

  it('enforces the timestamp tolerance both ways (default 300 s)', () => {
    expect(webhooks.verifyStandard(body, headers(), secret, { nowS: now + 300 })).toBe(true);
    expect(webhooks.verifyStandard(body, headers(), secret, { nowS: now + 301 })).toBe(false);
    expect(webhooks.verifyStandard(body, headers(), secret, { nowS: now - 301 })).toBe(false);
    expect(webhooks.verifyStandard(body, headers(), secret, { nowS: now + 1000, toleranceS: 1000 })).toBe(true);
    expect(() => webhooks.constructStandardEvent(body, headers(), secret, { nowS: now + 301 })).toThrow(/more than 300 s/);
    // Without nowS the real clock is used: a timestamp from 2023 is stale.
    expect(webhooks.verifyStandard(body, headers(), secret)).toBe(false);
  });
});

describe('raw bodies in receivers', () => {
  const { rawData, signature, publicKeyPem } = pingppSample();
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  const post = (url: string, body: string, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-pingplusplus-signature': signature, ...headers } });

  it("Node's http: readRawBody gets the exact bytes", async () => {
    const server: Server = createServer(async (req, res) => {
      try {
        const raw = await webhooks.readRawBody(req, { limitBytes: 64 * 1024 });
        const event = webhooks.constructEvent(raw, req.headers[webhooks.SIGNATURE_HEADER], publicKeyPem);
        res.writeHead(200).end(event.id);
      } catch (err) {
        res.writeHead(err instanceof RangeError ? 413 : 400).end(String(err));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    close = () => new Promise((resolve) => server.close(() => resolve()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const ok = await post(url, rawData);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('evt_eYa58Wd44Glerl8AgfYfd1sL');
    expect((await post(url, rawData.replace('"amount":100', '"amount":101'))).status).toBe(400);
    expect((await post(url, 'x'.repeat(70 * 1024))).status).toBe(413);
  });

  it('Express-style: a Buffer left in req.body by express.raw() is used; a parsed object is refused', async () => {
    const asExpressRaw = Object.assign((async function* () {})(), { body: Buffer.from(rawData) });
    expect((await webhooks.readRawBody(asExpressRaw)).toString()).toBe(rawData);
    const asExpressJson = Object.assign((async function* () {})(), { body: JSON.parse(rawData) as unknown });
    await expect(webhooks.readRawBody(asExpressJson)).rejects.toThrow(/express.raw/);
  });

  it('takes a plain Uint8Array (or a string) left in req.body as the raw bytes', async () => {
    // A view into a larger buffer, as a raw parser on fetch-style runtimes may hand over.
    const padded = new Uint8Array(Buffer.from(`xx${rawData}yy`));
    const view = padded.subarray(2, padded.length - 2);
    const raw = await webhooks.readRawBody(Object.assign((async function* () {})(), { body: view }));
    expect(Buffer.isBuffer(raw)).toBe(true);
    expect(raw.toString()).toBe(rawData);
    expect(webhooks.constructEvent(raw, signature, publicKeyPem).id).toBe('evt_eYa58Wd44Glerl8AgfYfd1sL');
    const fromString = await webhooks.readRawBody(Object.assign((async function* () {})(), { body: rawData }));
    expect(fromString.toString()).toBe(rawData);
  });

  it('Fastify: fastifyRawBody in an encapsulated scope hands the route a Buffer; other routes keep JSON', async () => {
    const app = Fastify();
    await app.register(async (scope) => {
      webhooks.fastifyRawBody(scope, { bodyLimit: 64 * 1024 });
      scope.post('/webhooks/pingpp', async (req, reply) => {
        if (!Buffer.isBuffer(req.body)) return reply.code(500).send('not a buffer');
        try {
          const event = webhooks.constructEvent(req.body, req.headers['x-pingplusplus-signature'], publicKeyPem);
          return { received: event.id };
        } catch {
          return reply.code(400).send({ received: false });
        }
      });
    });
    app.post('/other', async (req) => ({ parsed: typeof req.body }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    close = () => app.close();
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const ok = await post(`${base}/webhooks/pingpp`, rawData);
    expect(await ok.json()).toEqual({ received: 'evt_eYa58Wd44Glerl8AgfYfd1sL' });
    const tampered = await post(`${base}/webhooks/pingpp`, rawData.replace('An Apple', 'An Apple!'));
    expect(tampered.status).toBe(400);
    const other = await post(`${base}/other`, '{"a":1}');
    expect(await other.json()).toEqual({ parsed: 'object' });
  });
});
