import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';
import { runCli } from './helpers/cli.ts';
import { ConfigError, loadConfig, type TrustProxy } from '../src/config.ts';
import { fastifyTrustProxy } from '../src/http/app.ts';
import { createOperator, LOGIN_FAILURES_MAX } from '../src/admin/operators.ts';

const PASSWORD = 'correct horse battery';
/** The reverse proxy's address (in 10.0.0.0/8, which the trusting server is told to trust). */
const PROXY = '10.0.0.5';

/**
 * `--trust-proxy` (TIXIAN_TRUST_PROXY): behind a TLS-terminating proxy the console's cookie is
 * `Secure` and the login throttle and audit log see each client's own address; off (the default),
 * or from a peer that is not a trusted proxy, X-Forwarded-* are ignored, so a client cannot pick
 * its address to dodge the throttle.
 */
describe('--trust-proxy setting', () => {
  it('reads off/true, hop counts and address lists, and refuses anything else in one line naming the setting', () => {
    expect(loadConfig({}, {}).trustProxy).toBe(false);
    const read = (v: string) => loadConfig({}, { TIXIAN_TRUST_PROXY: v }).trustProxy;
    expect(read('false')).toBe(false);
    expect(read('off')).toBe(false);
    expect(read('0')).toBe(false);
    expect(read('true')).toBe(true);
    expect(read('ON')).toBe(true);
    // A number is a hop count: `1` is the one proxy in front, not "on" (every hop).
    expect(read('1')).toBe(1);
    expect(read('16')).toBe(16);
    expect(read(' 10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8 ')).toEqual(['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8']);
    expect(read('Loopback,uniquelocal')).toEqual(['loopback', 'uniquelocal']);
    expect(loadConfig({ trustProxy: '2' }, { TIXIAN_TRUST_PROXY: 'true' }).trustProxy).toBe(2);

    for (const bad of ['17', '-1', '1.5', 'proxy.example.com', '10.0.0.0/33', '::1/129', '10.0.0.1,', '10.0.0.1,,10.0.0.2', '256.0.0.1', '10.0.0.0/8/8', '0.0.0.0/0', '10.0.0.0/255.0.0.0', '10.1', 'yes please']) {
      expect(() => read(bad), bad).toThrow(ConfigError);
      expect(() => read(bad), bad).toThrow(/^TIXIAN_TRUST_PROXY must be a hop count \(1-16\), true, false, or proxy addresses\/CIDRs separated by commas/);
    }
    expect(() => loadConfig({ trustProxy: 'nonsense' })).toThrow(/^--trust-proxy must be .* got "nonsense"$/);
    expect(() => read(Array.from({ length: 65 }, (_, i) => `10.0.0.${i}`).join(','))).toThrow(/at most 64 addresses/);
    // A long value is not echoed whole.
    const long = `10.0.0.1,${'x'.repeat(5000)}`;
    let message = '';
    try {
      read(long);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/in 5009 characters$/);
    expect(message.length).toBeLessThan(300);
  });

  it('accepts only values Fastify can use, with the meaning documented', async () => {
    /** What a request sent by `remote` with these headers is seen as. */
    async function seen(setting: TrustProxy, remote: string, headers: Record<string, string>) {
      const app = Fastify({ trustProxy: fastifyTrustProxy(setting) });
      app.get('/', async (req) => ({ ip: req.ip, protocol: req.protocol, host: req.host }));
      try {
        return (await app.inject({ method: 'GET', url: '/', remoteAddress: remote, headers: { host: 'internal:8080', ...headers } })).json() as { ip: string; protocol: string; host: string };
      } finally {
        await app.close();
      }
    }
    // Every accepted address form compiles (Fastify builds the check when the server is made).
    for (const v of ['10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8', 'loopback,linklocal,uniquelocal', '::ffff:10.0.0.1/128', '0.0.0.0/1,128.0.0.0/1', 'fe80::1%eth0/64']) {
      expect(() => Fastify({ trustProxy: fastifyTrustProxy(loadConfig({}, { TIXIAN_TRUST_PROXY: v }).trustProxy) }), v).not.toThrow();
    }

    const forwarded = { 'x-forwarded-for': '6.6.6.6, 198.51.100.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'pay.example.com' };
    const direct = { ip: PROXY, protocol: 'http', host: 'internal:8080' };
    const proxied = { ip: '198.51.100.7', protocol: 'https', host: 'pay.example.com' };
    expect(await seen(false, PROXY, forwarded)).toEqual(direct);
    // One hop: the address the proxy appended, not the one the client wrote before it.
    expect(await seen(1, PROXY, forwarded)).toEqual(proxied);
    expect(await seen(2, PROXY, forwarded)).toEqual({ ...proxied, ip: '6.6.6.6' });
    expect(await seen(['10.0.0.0/8'], PROXY, forwarded)).toEqual(proxied);
    // A peer outside the list is a client: its X-Forwarded-* are ignored.
    expect(await seen(['10.0.0.0/8'], '203.0.113.9', forwarded)).toEqual({ ...direct, ip: '203.0.113.9' });
    // true trusts every hop: the left-most address, which the client wrote (the README warns).
    expect(await seen(true, PROXY, forwarded)).toEqual({ ...proxied, ip: '6.6.6.6' });
  });

  it('stops `tixian serve` with exit code 2 and one line for a bad value, from the flag or the variable', async () => {
    const h = await Harness.start('sqlite');
    // `--role worker --no-workers` is refused too, after the settings are read: should the setting
    // be ignored, the command still ends (with another message) instead of starting a server.
    const refused = ['--role', 'worker', '--no-workers'];
    try {
      const flag = await runCli(h, 'serve', '--trust-proxy', '10.0.0.300', ...refused);
      expect(flag.code).toBe(2);
      expect(flag.err).toEqual(['tixian: --trust-proxy must be a hop count (1-16), true, false, or proxy addresses/CIDRs separated by commas (e.g. 10.0.0.0/8,127.0.0.1), got "10.0.0.300"']);
      vi.stubEnv('TIXIAN_TRUST_PROXY', 'every proxy');
      const env = await runCli(h, 'serve', ...refused);
      expect(env.code).toBe(2);
      expect(env.err).toHaveLength(1);
      expect(env.err[0]).toMatch(/^tixian: TIXIAN_TRUST_PROXY must be a hop count/);
    } finally {
      vi.unstubAllEnvs();
      await h.close();
    }
  });
});

describeEngines('behind a TLS-terminating proxy', (engine) => {
  let trusting: Harness;
  let plain: Harness;

  beforeAll(async () => {
    trusting = await Harness.start(engine, { config: { trustProxy: ['10.0.0.0/8'] } });
    plain = await Harness.start(engine);
    for (const h of [trusting, plain]) await createOperator(h.rt, { email: 'ops@example.com', password: PASSWORD, account: 'default' });
  });
  afterAll(async () => {
    await trusting?.close();
    await plain?.close();
  });

  /** A request as the proxy (or a client, `remote`) sends it. */
  async function send(h: Harness, o: { method: 'GET' | 'POST' | 'DELETE'; url: string; remote: string; headers?: Record<string, string>; body?: unknown }) {
    const res = await h.app.inject({
      method: o.method,
      url: o.url,
      remoteAddress: o.remote,
      headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
      ...(o.body !== undefined ? { payload: JSON.stringify(o.body) } : {}),
    });
    return { status: res.statusCode, headers: res.headers, json: res.json() as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }
  const login = (h: Harness, remote: string, headers: Record<string, string>, email = 'ops@example.com', password = PASSWORD) =>
    send(h, { method: 'POST', url: '/admin/session', remote, headers, body: { email, password } });
  const lastLogin = async (h: Harness) =>
    (await h.rt.store.db.selectFrom('audit_log').select('ip').where('action', '=', 'login').orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow()).ip;

  it('marks the session cookie Secure when the proxy says the browser used https, and records the client address', async () => {
    const viaProxy = { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.20' };
    const res = await login(trusting, PROXY, viaProxy);
    expect(res.status).toBe(200);
    expect(String(res.headers['set-cookie'])).toMatch(/; Secure$/);
    expect(await lastLogin(trusting)).toBe('198.51.100.20');
    // The logout cookie too.
    const cookie = String(res.headers['set-cookie']).split(';')[0]!;
    const out = await send(trusting, { method: 'DELETE', url: '/admin/session', remote: PROXY, headers: { ...viaProxy, cookie, 'x-csrf-token': res.json.csrf_token } });
    expect(out.status).toBe(200);
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0; Secure$/);

    // Plain http through the proxy: no Secure (the browser would drop the cookie).
    const http = await login(trusting, PROXY, { 'x-forwarded-proto': 'http' });
    expect(String(http.headers['set-cookie'])).not.toContain('Secure');
    // A client reaching the server directly cannot claim https or an address.
    const spoofed = await login(trusting, '203.0.113.9', viaProxy);
    expect(String(spoofed.headers['set-cookie'])).not.toContain('Secure');
    expect(await lastLogin(trusting)).toBe('203.0.113.9');
    // A client's own X-Forwarded-For in front of the proxy's entry is not believed.
    await login(trusting, PROXY, { 'x-forwarded-for': '6.6.6.6, 198.51.100.21' });
    expect(await lastLogin(trusting)).toBe('198.51.100.21');
  });

  it('takes the public host for the Origin check and the API address shown on the Developers page', async () => {
    const publicHeaders = { host: 'tixian-api:8080', 'x-forwarded-host': 'pay.example.com', 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.30' };
    const s = await login(trusting, PROXY, publicHeaders);
    const cookie = String(s.headers['set-cookie']).split(';')[0]!;
    const dev = await send(trusting, { method: 'GET', url: `/admin/apps/${trusting.appId}/developers`, remote: PROXY, headers: { ...publicHeaders, cookie } });
    expect(dev.status).toBe(200);
    expect(dev.json.api_base).toBe('https://pay.example.com');
    // The browser's Origin is the public address, which the proxy forwards as X-Forwarded-Host.
    const out = await send(trusting, {
      method: 'DELETE', url: '/admin/session', remote: PROXY, headers: { ...publicHeaders, cookie, 'x-csrf-token': s.json.csrf_token, origin: 'https://pay.example.com' },
    });
    expect(out.status).toBe(200);

    // Without the setting X-Forwarded-Host is ignored: the same request's Origin is another host.
    const p = await login(plain, PROXY, publicHeaders);
    const plainCookie = String(p.headers['set-cookie']).split(';')[0]!;
    const refused = await send(plain, {
      method: 'DELETE', url: '/admin/session', remote: PROXY, headers: { ...publicHeaders, cookie: plainCookie, 'x-csrf-token': p.json.csrf_token, origin: 'https://pay.example.com' },
    });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('csrf_token_invalid');
    const plainDev = await send(plain, { method: 'GET', url: `/admin/apps/${plain.appId}/developers`, remote: PROXY, headers: { ...publicHeaders, cookie: plainCookie } });
    expect(plainDev.json.api_base).toBe('http://tixian-api:8080');
  });

  it('counts failed logins per forwarded client: one client locked out does not lock out the others behind the proxy', async () => {
    const perAddress = LOGIN_FAILURES_MAX * 4;
    // One client guesses at many e-mails (under the per-e-mail limit each) until its address is blocked.
    for (let i = 0; i < perAddress; i++) {
      const res = await login(trusting, PROXY, { 'x-forwarded-for': '198.51.100.66' }, `guess${i % 5}@example.com`, 'wrong password!');
      expect(res.status, `try ${i}`).toBe(401);
    }
    const blocked = await login(trusting, PROXY, { 'x-forwarded-for': '198.51.100.66' });
    expect(blocked.status).toBe(429);
    expect(blocked.json.error.code).toBe('too_many_logins');
    // Everyone else comes from the same proxy address and still gets in.
    const other = await login(trusting, PROXY, { 'x-forwarded-for': '198.51.100.67' });
    expect(other.status).toBe(200);
    expect(await lastLogin(trusting)).toBe('198.51.100.67');
  });

  it('ignores X-Forwarded-For when off (the default): a client cannot change its address to dodge the throttle', async () => {
    const perAddress = LOGIN_FAILURES_MAX * 4;
    for (let i = 0; i < perAddress; i++) {
      const res = await login(plain, '203.0.113.50', { 'x-forwarded-for': `198.51.100.${100 + i}`, 'x-forwarded-proto': 'https' }, `guess${i % 5}@example.com`, 'wrong password!');
      expect(res.status, `try ${i}`).toBe(401);
    }
    // A fresh forwarded address changes nothing: the socket's address is the one counted.
    const blocked = await login(plain, '203.0.113.50', { 'x-forwarded-for': '198.51.100.250' });
    expect(blocked.status).toBe(429);
    // The successful logins earlier were recorded with the socket's address and no Secure cookie.
    const ok = await login(plain, PROXY, { 'x-forwarded-for': '198.51.100.251', 'x-forwarded-proto': 'https' });
    expect(ok.status).toBe(200);
    expect(String(ok.headers['set-cookie'])).not.toContain('Secure');
    expect(await lastLogin(plain)).toBe(PROXY);
  });
});
