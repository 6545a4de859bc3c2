import net from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { ConnectionError, FastifyBaseLogger } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { createApp } from '../src/services/accounts.ts';
import { updateSignatureSettings } from '../src/services/app_settings.ts';
import { routesNeedingPrincipal } from '../src/http/plugins/auth.ts';
import { maskSecretKey } from '../src/security/secrets.ts';
import { validatorCompiler } from '../src/http/validation.ts';
import { validationError } from '../src/domain/validation-errors.ts';
import { clientErrorHandler, clientErrorOf } from '../src/http/client-error.ts';
import { describeEngines, Harness } from './helpers/harness.ts';

/** Sends `requestLine` (plus headers) on a raw socket, so no client normalises the target; resolves to status and body. */
function rawRequest(port: number, requestLine: string, headers: Record<string, string> = {}, body = ''): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? NaN);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    const head = { host: 'x', connection: 'close', 'content-length': String(Buffer.byteLength(body)), ...headers };
    // Not end(): a half-closed socket may be dropped before a slow answer; `connection: close` ends it.
    // Latin-1: one byte per character, so header bytes above 0x7f arrive as written (obs-text).
    socket.write(`${requestLine}\r\n${Object.entries(head).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`, 'latin1');
  });
}

/**
 * Writes `bytes` on a raw socket and resolves when the server closes the connection, with the
 * answer's status, headers (lower-cased names) and body; fails if the connection stays open.
 */
function rawExchange(port: number, bytes: string): Promise<{ status: number; headers: Record<string, string>; body: string; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes, 'latin1'));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after 5 s; got ${JSON.stringify(Buffer.concat(chunks).toString('utf8').slice(0, 300))}`));
    }, 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A reset after the answer was read still counts as closed; what matters is what was read.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '')?.[1] ?? NaN), headers, body: text.slice(end + 4), text });
    });
  });
}

/** `/v1/apps/:app/users/:user` → `/v1/apps/<app>/users/x` */
const concrete = (url: string, appId: string) => url.replace(':app', appId).replace(/:[A-Za-z_]+/g, 'x');

describeEngines('HTTP edge', (engine) => {
  let h: Harness;
  let port: number;

  beforeAll(async () => {
    h = await Harness.start(engine);
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    port = (h.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await h?.close();
  });

  describe('authentication is decided by the matched route', () => {
    it('a percent-encoded /v1 target without a key answers 401 on the wire', async () => {
      const res = await rawRequest(port, `GET /%761/apps/${h.appId}/users HTTP/1.1`);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toMatchObject({ error: { type: 'invalid_request_error', code: 'missing_api_key' } });
    });

    it('an absolute-form target without a key answers 401 on the wire', async () => {
      const res = await rawRequest(port, `GET http://x/v1/apps/${h.appId}/users HTTP/1.1`);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'missing_api_key' } });
    });

    it('the same targets with a key reach the route (the router does match them)', async () => {
      const auth = { authorization: `Bearer ${h.testKey}` };
      for (const line of [`GET /%761/apps/${h.appId}/users HTTP/1.1`, `GET http://x/v1/apps/${h.appId}/users HTTP/1.1`]) {
        const res = await rawRequest(port, line, auth);
        expect(res.status, line).toBe(200);
        expect(JSON.parse(res.body)).toMatchObject({ object: 'list' });
      }
    });

    it('a wrong key on a disguised target answers 401 invalid_api_key', async () => {
      const res = await rawRequest(port, `GET http://x/v1/apps/${h.appId}/users HTTP/1.1`, { authorization: 'Bearer sk_test_' + 'Q'.repeat(24) });
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'invalid_api_key' } });
    });

    it('inject: encoded and absolute-form targets without a key answer 401 and change nothing', async () => {
      const before = await h.snapshot();
      for (const url of [`/%761/apps/${h.appId}/users`, `/v%31/apps/${h.appId}/users`, `http://x/v1/apps/${h.appId}/users`]) {
        const get = await h.request('GET', url, { key: null });
        expect(get.status, url).toBe(401);
        const post = await h.request('POST', url, { key: null, body: { id: 'edge_ghost' } });
        expect(post.status, url).toBe(401);
      }
      expect(await h.snapshot()).toEqual(before);
    });

    it('a disguised target still needs the request signature its app requires', async () => {
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      // In the harness's account, so the harness's keys reach it (an existing account's keys are not shown again).
      const signed = await createApp(h.rt, { name: 'edge signed' });
      await updateSignatureSettings(h.rt, signed.id, {
        rsa_public_key: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        require_signature_test: true,
      });
      const before = await h.snapshot();
      for (const url of [`/v1/apps/${signed.id}/users`, `/%761/apps/${signed.id}/users`, `http://x/v1/apps/${signed.id}/users`]) {
        const res = await h.request('POST', url, { key: h.testKey, body: { id: 'edge_unsigned' } });
        expect(res.status, url).toBe(400);
        expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'signature_missing' });
      }
      const wire = await rawRequest(port, `POST http://x/v1/apps/${signed.id}/users HTTP/1.1`, { authorization: `Bearer ${h.testKey}`, 'content-type': 'application/json' }, '{"id":"edge_unsigned"}');
      expect(wire.status).toBe(400);
      expect(JSON.parse(wire.body)).toMatchObject({ error: { code: 'signature_missing' } });
      expect(await h.snapshot()).toEqual(before);
    });

    it('every route that needs a principal answers 401 without a key, whatever the spelling of its target', async () => {
      const routes = routesNeedingPrincipal(h.app);
      // The list is the app's own: a route module that registered nothing would be noticed here.
      expect(routes.length).toBeGreaterThan(20);
      expect(routes).toContainEqual({ method: 'POST', url: '/v1/apps/:app/withdrawals' });
      expect(routes).toContainEqual({ method: 'GET', url: '/v1/events/:id' });
      for (const route of routes) {
        const path = concrete(route.url, h.appId);
        for (const url of [path, path.replace('/v1/', '/%761/'), `http://x${path}`]) {
          const res = await h.request(route.method as 'GET', url, { key: null, ...(route.method === 'POST' || route.method === 'PUT' ? { body: {} } : {}) });
          expect(res.status, `${route.method} ${url}`).toBe(401);
          if (route.method !== 'HEAD') expect(res.json.error.code, `${route.method} ${url}`).toBe('missing_api_key');
        }
      }
    });

    it('routes outside /v1 stay public', async () => {
      expect(routesNeedingPrincipal(h.app).some((r) => r.url === '/healthz')).toBe(false);
      expect((await h.request('GET', '/healthz', { key: null })).status).toBe(200);
    });
  });

  describe('a wrong secret key always answers 401', () => {
    const odd = ['"', '\\', '<', '%', ':', '\u0000', '\n', 'é', '密', '😀', ' ', '\u202e', '*'];
    const keysOfLength = (n: number): string[] => {
      const alnum = ('sk_test_' + 'abcDEF0123456789'.repeat(6)).slice(0, n);
      const live = ('sk_live_' + 'Z9'.repeat(40)).slice(0, n);
      const weird = Array.from({ length: n }, (_, i) => odd[(i * 7 + n) % odd.length]).join('');
      return [alnum, live, weird];
    };

    it('for every length 0..80, plain and odd characters, Bearer and Basic', async () => {
      for (let n = 0; n <= 80; n++) {
        for (const key of keysOfLength(n)) {
          const basic = 'Basic ' + Buffer.from(key + ':', 'utf8').toString('base64');
          const headers = [basic];
          // Header values must be Latin-1 without controls; other keys can only travel base64-encoded.
          if (/^[\x21-\x7e]+$/.test(key)) headers.push('Bearer ' + key);
          for (const authorization of headers) {
            const res = await h.request('GET', h.appPath('/users'), { key: null, headers: { authorization } });
            expect(res.status, `${JSON.stringify(key)} via ${authorization.split(' ')[0]}`).toBe(401);
            expect(res.json.error.type).toBe('invalid_request_error');
            expect(['invalid_api_key', 'missing_api_key']).toContain(res.json.error.code);
            if (key.length >= 4) expect(res.json.error.message).not.toContain(key);
          }
        }
      }
    });
  });

  describe("requests Node's HTTP parser refuses answer Ping++'s error shape and close the connection", () => {
    /** The answer to a request that never reached Fastify: Ping++'s error body, correctly framed, then the end of the connection. */
    const expectPingppError = (res: Awaited<ReturnType<typeof rawExchange>>, status: number, code: string) => {
      expect(res.status, res.text.slice(0, 300)).toBe(status);
      expect(res.headers.connection).toBe('close');
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      // Bytes, not characters: the message is Chinese.
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
      const body = JSON.parse(res.body);
      expect(Object.keys(body)).toEqual(['error']);
      expect(body.error).toMatchObject({ type: 'invalid_request_error', code });
      expect(typeof body.error.message).toBe('string');
      return body;
    };

    it('a 20 KB query string (request line and headers over 16 KB) answers 431', async () => {
      const res = await rawExchange(port, `GET ${h.appPath('/users')}?user=${'u'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.testKey}\r\n\r\n`);
      const body = expectPingppError(res, 431, 'request_header_too_large');
      // Nothing of the refused request comes back.
      expect(res.text).not.toContain('uuuu');
      expect(res.text).not.toContain(h.testKey);
      expect(body.error.message).toContain('16384');
    });

    it('an oversized header answers 431 too', async () => {
      const res = await rawExchange(port, `GET ${h.appPath('/users')} HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
      expectPingppError(res, 431, 'request_header_too_large');
    });

    it('a malformed request line answers 400 bad_request', async () => {
      const res = await rawExchange(port, `GET /v1/apps/x/users HTTP/1.1 junk\r\nHost: x\r\n\r\n`);
      const body = expectPingppError(res, 400, 'bad_request');
      expect(body.error.message).toMatch(/\(HPE_[A-Z_]+\)/);
      expect(res.text).not.toContain('junk');
    });

    it('a malformed request after an answered one on a kept-alive connection gets the error too', async () => {
      // The Ping++ SDKs keep connections alive: once the first answer is written, the next refusal is answered.
      const text = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${h.appPath('/users')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.testKey}\r\n\r\n`));
        let out = '';
        const timer = setTimeout(() => (socket.destroy(), reject(new Error(`connection still open: ${out.slice(0, 300)}`))), 5000);
        socket.on('data', (c: Buffer) => {
          const first = out === '';
          out += c.toString('utf8');
          if (first) socket.write('BAD\x01 / HTTP/1.1\r\nHost: x\r\n\r\n');
        });
        socket.on('error', () => {});
        socket.on('close', () => (clearTimeout(timer), resolve(out)));
      });
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      const second = text.slice(text.indexOf('HTTP/1.1', 1));
      expect(second).toMatch(/^HTTP\/1\.1 400 /);
      expect(JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4)).error).toMatchObject({ type: 'invalid_request_error', code: 'bad_request' });
    });
  });
});

describeEngines('HTTP edge: keys as raw bytes', (engine) => {
  let h: Harness;
  let port: number;
  beforeAll(async () => {
    h = await Harness.start(engine);
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    port = (h.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a Bearer key with bytes no HTTP client would send (obs-text, quotes) answers 401', async () => {
    for (const n of [1, 5, 13, 14, 15, 24, 32, 80]) {
      // Sent as Latin-1 bytes, so the server sees exactly n characters (13 and 14 once answered 500).
      for (const key of [('sk_test_é' + 'ñ'.repeat(n)).slice(0, n), ('"\\<%' + 'ÿ'.repeat(n)).slice(0, n), ('sk_test_' + '\u00a0'.repeat(n)).slice(0, n)]) {
        const res = await rawRequest(port, `GET /v1/apps/${h.appId}/users HTTP/1.1`, { authorization: `Bearer ${key}` });
        expect(res.status, JSON.stringify(key)).toBe(401);
        expect(JSON.parse(res.body).error.code).toBe('invalid_api_key');
      }
    }
  });
});

describe('clientErrorHandler (a socket the parser gave up on)', () => {
  /** A stand-in socket recording what the handler does to it, and a logger recording what it logs. */
  const fake = (state: { destroyed?: boolean; writable?: boolean; headerSent?: boolean }) => {
    const written: string[] = [];
    let destroyedWith: unknown = 'not destroyed';
    const socket = {
      destroyed: state.destroyed ?? false,
      writable: state.writable ?? true,
      _httpMessage: state.headerSent === undefined ? null : { _headerSent: state.headerSent },
      write: (s: string) => written.push(s),
      destroy: (e: unknown) => (destroyedWith = e),
    };
    const logged: unknown[][] = [];
    const log = { trace: (...args: unknown[]) => logged.push(args) };
    return { socket, written, logged, log, destroyed: () => destroyedWith };
  };
  const parseError = (code: string) =>
    Object.assign(new Error('Parse Error: Invalid method encountered'), { code, bytesParsed: 3, rawPacket: Buffer.from('BAD / HTTP/1.1\r\nAuthorization: Bearer sk_test_secret\r\n') });
  const run = (f: ReturnType<typeof fake>, err: ReturnType<typeof parseError>) =>
    clientErrorHandler(f.log as unknown as FastifyBaseLogger)(err as unknown as ConnectionError, f.socket as unknown as Socket);

  it('maps the parser error to its status: 431, 413, 408, else 400', () => {
    expect(clientErrorOf({ code: 'HPE_HEADER_OVERFLOW' })).toMatchObject({ status: 431, code: 'request_header_too_large' });
    expect(clientErrorOf({ code: 'HPE_CHUNK_EXTENSIONS_OVERFLOW' })).toMatchObject({ status: 413, code: 'request_too_large' });
    expect(clientErrorOf({ code: 'ERR_HTTP_REQUEST_TIMEOUT' })).toMatchObject({ status: 408, code: 'request_timeout' });
    expect(clientErrorOf({ code: 'HPE_INVALID_METHOD' })).toMatchObject({ status: 400, code: 'bad_request', en: 'Bad request: not a valid HTTP/1.1 request (HPE_INVALID_METHOD).' });
    expect(clientErrorOf({ code: 'EPIPE' }).en).toBe('Bad request: not a valid HTTP/1.1 request.');
  });

  it('writes one framed answer, then ends the connection; logs no byte of the request', () => {
    const f = fake({});
    const err = parseError('HPE_INVALID_METHOD');
    run(f, err);
    expect(f.written).toHaveLength(1);
    expect(f.written[0]).toMatch(/^HTTP\/1\.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application\/json; charset=utf-8\r\nContent-Length: \d+\r\n\r\n\{"error":/);
    expect(f.destroyed()).toBe(err);
    expect(JSON.stringify(f.logged)).not.toContain('sk_test_secret');
    expect(JSON.stringify(f.logged)).not.toContain('rawPacket');
  });

  it('a 408 for a request not received in time', () => {
    const f = fake({});
    run(f, parseError('ERR_HTTP_REQUEST_TIMEOUT'));
    expect(f.written[0]).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('writes nothing into a response already under way, but still ends the connection', () => {
    const f = fake({ headerSent: true });
    const err = parseError('HPE_INVALID_METHOD');
    run(f, err);
    expect(f.written).toEqual([]);
    expect(f.destroyed()).toBe(err);
    const g = fake({ headerSent: false });
    run(g, err);
    expect(g.written).toHaveLength(1);
  });

  it('writes nothing to a socket that is not writable', () => {
    const f = fake({ writable: false });
    run(f, parseError('HPE_INVALID_METHOD'));
    expect(f.written).toEqual([]);
  });

  it('leaves a reset or already closed connection alone, as Fastify does', () => {
    for (const f of [fake({}), fake({ destroyed: true })]) {
      run(f, parseError(f.socket.destroyed ? 'HPE_INVALID_METHOD' : 'ECONNRESET'));
      expect(f.written).toEqual([]);
      expect(f.destroyed()).toBe('not destroyed');
      expect(f.logged).toEqual([]);
    }
  });
});

describe('maskSecretKey', () => {
  it('never throws and never shows more than it hides, for any length', () => {
    for (let n = 0; n <= 200; n++) {
      const key = 'k'.repeat(n);
      const masked = maskSecretKey(key);
      const shown = masked.replace(/\*/g, '').length;
      expect(masked.length, `length ${n}`).toBe(Math.min(n, 64));
      expect(masked.length - shown, `length ${n}`).toBeGreaterThanOrEqual(Math.min(8, Math.ceil((n * 2) / 3)));
      if (n >= 2) expect(masked, `length ${n}`).not.toBe(key);
    }
  });

  it('keeps the shape a merchant can recognise for a real-length key', () => {
    expect(maskSecretKey('sk_test_ibbTe5jLGCi5rzfH4OqPW9KC')).toBe('sk_test_ibbT*****************9KC');
    expect(maskSecretKey('sk_test_abcde')).toBe('sk_**********');
    expect(maskSecretKey('ab\u0000\n密')).toBe('a****');
  });
});

describeEngines('HTTP edge: request bodies', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start(engine);
  });
  afterAll(async () => {
    await h?.close();
  });

  const nested = (levels: number, open: string, close: string, leaf = '1') => `{"id":"u_deep","metadata":${open.repeat(levels)}${leaf}${close.repeat(levels)}}`;

  it.each([
    ['objects', 40_000, '{"a":', '}'],
    ['arrays', 40_000, '[', ']'],
    ['objects, just over the cap', 32, '{"a":', '}'],
    ['arrays, just over the cap', 32, '[', ']'],
  ])('%s nested %i levels deep answer 400 and change nothing', async (_name, levels, open, close) => {
    const before = await h.snapshot();
    const res = await h.request('POST', h.appPath('/users'), { rawBody: nested(levels, open, close), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_parameter', param: 'body' });
    expect(res.json.error.message).toContain('32');
    expect(await h.snapshot()).toEqual(before);
  });

  it('nesting up to the cap passes the body check (and then meets the schema)', async () => {
    // 1 (the body) + 31 levels of metadata = 32.
    const res = await h.request('POST', h.appPath('/users'), { rawBody: nested(31, '{"a":', '}'), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.json.error.param).not.toBe('body');
    expect(res.json.error.param).toMatch(/^metadata/);
  });

  it('U+0000 is still found in document order, keys naming their object', async () => {
    const body = `{"id":"u_nul","metadata":{"a":"ok","b\\u0000":"x"},"name":"a\\u0000"}`;
    const res = await h.request('POST', h.appPath('/users'), { rawBody: body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('metadata');
    const deep = `{"id":"u_nul","metadata":{"a":"ok"},"name":"a\\u0000"}`;
    const res2 = await h.request('POST', h.appPath('/users'), { rawBody: deep, headers: { 'content-type': 'application/json' } });
    expect(res2.json.error.param).toBe('name');
  });
});

describeEngines('HTTP edge: validation messages', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start(engine);
    await h.createUser('v_user');
    await h.fund('v_user', 10_000);
  });
  afterAll(async () => {
    await h?.close();
  });

  const en = { 'accept-language': 'en' };
  const withdrawal = { user: 'v_user', amount: 100, channel: 'alipay', order_no: 'v0001', extra: { account: 'a@b.cn', name: '张三' } };
  const post = (path: string, body: unknown) => h.request('POST', h.appPath(path), { body, headers: en });

  it('a misspelt parameter is named as unknown, not reported as the missing one', async () => {
    const before = await h.snapshot();
    const { amount: _amount, ...rest } = withdrawal;
    const res = await post('/withdrawals', { ...rest, ammount: 100 });
    expect(res.status).toBe(400);
    expect(res.json.error).toEqual({
      type: 'invalid_request_error',
      code: 'unknown_parameter',
      param: 'ammount',
      message: 'Unknown parameter ammount.',
    });
    expect(await h.snapshot()).toEqual(before);
  });

  it('an unknown parameter wins over any other error, wherever it is', async () => {
    const cases: [string, string, unknown, string][] = [
      ['top level, beside a wrong type', '/withdrawals', { ...withdrawal, amount: 'x', colour: 'red' }, 'colour'],
      ['top level, beside a bad enum', '/withdrawals', { ...withdrawal, channel: 'bitcoin', colour: 'red' }, 'colour'],
      ['user create, misspelt and missing id', '/users', { idd: 'v_x' }, 'idd'],
      ['bonus, misspelt amount', '/balance_bonuses', { user: 'v_user', amout: 1, order_no: 'b1' }, 'amout'],
      [
        'settle account recipient, beside a missing name',
        '/users/v_user/settle_accounts',
        { channel: 'alipay', recipient: { account: 'a@b.cn', nmae: '张三' } },
        'recipient[nmae]',
      ],
      [
        'settle account, top level before the recipient',
        '/users/v_user/settle_accounts',
        { channel: 'alipay', recipient: { account: 'a@b.cn', nmae: '张三' }, colour: 'red' },
        'colour',
      ],
      ['a key holding a slash', '/users', { 'a/b': 1 }, 'a/b'],
      ['batch, beside too few withdrawals', '/batch_withdrawals', { withdrawals: [], colour: 1 }, 'colour'],
    ];
    for (const [name, path, body, param] of cases) {
      const res = await post(path, body);
      expect(res.status, name).toBe(400);
      expect(res.json.error, name).toMatchObject({ type: 'invalid_request_error', code: 'unknown_parameter', param });
      expect(res.json.error.message, name).toBe(`Unknown parameter ${param}.`);
    }
  });

  it('without unknown keys, a missing parameter is still reported as missing', async () => {
    const { amount: _amount, ...rest } = withdrawal;
    const res = await post('/withdrawals', rest);
    expect(res.json.error).toMatchObject({ code: 'missing_parameter', param: 'amount' });
  });

  it('an invalid enum value lists the allowed ones', async () => {
    const res = await post('/withdrawals', { ...withdrawal, channel: 'bitcoin' });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_parameter', param: 'channel' });
    expect(res.json.error.message).toBe('Invalid parameter channel: must be one of: unionpay, alipay, wx, wx_pub, wx_lite, allinpay, jdpay, custom.');

    const zh = await h.request('POST', h.appPath('/withdrawals'), { body: { ...withdrawal, channel: 'bitcoin' } });
    expect(zh.json.error.message).toContain('unionpay、alipay、wx、wx_pub、wx_lite、allinpay、jdpay、custom');

    const status = await h.request('PUT', h.appPath('/withdrawals/1700000000'), { body: { status: 'done' }, headers: en });
    expect(status.json.error).toMatchObject({ param: 'status', message: 'Invalid parameter status: must be one of: pending, canceled.' });

    const query = await h.request('GET', h.appPath('/withdrawals?status=done'), { headers: en });
    expect(query.json.error.message).toBe('Invalid parameter status: must be one of: created, pending, succeeded, failed, canceled.');

    const gender = await post('/users', { id: 'v_gender', gender: 'X' });
    expect(gender.json.error.message).toBe('Invalid parameter gender: must be one of: MALE, FEMALE, "".');

    const extra = await post('/withdrawals', { ...withdrawal, extra: { ...withdrawal.extra, account_type: 'EMAIL' } });
    expect(extra.json.error).toMatchObject({ param: 'extra[account_type]', message: 'Invalid parameter extra[account_type]: must be one of: ALIPAY_USERID, ALIPAY_LOGONID.' });

    const plainEnum = await post('/users/v_user/settle_accounts', { channel: 'paypal', recipient: { account: 'a', name: 'b' } });
    expect(plainEnum.json.error.message).toBe('Invalid parameter channel: must be one of: alipay, wx, wx_pub, wx_lite, bank_account.');
  });
});

describe('validatorCompiler: unknown keys first, at any depth', () => {
  const Item = Type.Object({ account: Type.String(), name: Type.String() }, { additionalProperties: false });
  const schema = Type.Object(
    {
      amount: Type.Integer(),
      items: Type.Array(Item),
      nested: Type.Optional(Type.Union([Type.Object({ inner: Type.Optional(Item) }, { additionalProperties: false }), Type.Null()])),
    },
    { additionalProperties: false },
  );
  const validate = validatorCompiler({ schema, httpPart: 'body', method: 'POST', url: '/x' }) as ((d: unknown) => boolean) & { errors: never };
  const answer = (data: unknown) => {
    expect(validate(data)).toBe(false);
    return validationError(validate.errors);
  };

  it.each([
    ['an array item', { amount: 'x', items: [{ account: 'a', name: 'n' }, { account: 'a', nmae: 'n' }] }, 'items[1][nmae]'],
    ['inside a nullable object', { items: [], nested: { inner: { account: 1, extra: 1 } } }, 'nested[inner][extra]'],
    ['the shallower one first', { items: [{ account: 'a', bad: 1 }], zzz: 1 }, 'zzz'],
  ])('%s', (_name, data, param) => {
    expect(answer(data)).toMatchObject({ code: 'unknown_parameter', param });
  });

  it('a valid value passes and leaves no errors behind', () => {
    answer({ amount: 1, items: [{ account: 'a', nmae: 'n' }] });
    expect(validate({ amount: 1, items: [{ account: 'a', name: 'n' }], nested: null })).toBe(true);
    expect(validate.errors).toBeNull();
  });

  it('without unknown keys, the first Ajv error stands', () => {
    expect(answer({ items: [] })).toMatchObject({ code: 'missing_parameter', param: 'amount' });
    expect(answer({ amount: 1, items: [{ account: 'a' }] })).toMatchObject({ code: 'missing_parameter', param: 'items[0][name]' });
  });
});
