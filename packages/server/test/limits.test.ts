import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults, loadConfig } from '../src/config.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { describeEngines, Harness, shownKey } from './helpers/harness.ts';
import { officialSdk } from './helpers/pingpp.ts';

const require = createRequire(import.meta.url);
const pingppErrors = require('pingpp/lib/Error.js') as Record<'PingppRateLimitError', new (...a: unknown[]) => Error>;

const LIMIT = 3;
const WINDOW_MS = 60_000;
const BODY_LIMIT = 4096;

describeEngines('limits: per-key rate limit and body size', (engine) => {
  let h: Harness;
  /** Apps of other accounts: each has its own secret keys, so its own rate-limit budget. */
  let other: CreatedApp;
  let sdkApp: CreatedApp;
  let bodyApp: CreatedApp;

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { rateLimit: LIMIT, rateLimitWindowMs: WINDOW_MS, bodyLimitBytes: BODY_LIMIT } });
    other = await createApp(h.rt, { name: 'other', account: 'other' });
    sdkApp = await createApp(h.rt, { name: 'sdk', account: 'sdk' });
    bodyApp = await createApp(h.rt, { name: 'body', account: 'body' });
  });
  afterAll(async () => h?.close());

  it('answers the request over the limit with 403 rate_limit_exceeded and Retry-After, changing nothing', async () => {
    for (let i = 0; i < LIMIT; i++) {
      const ok = await h.request('GET', h.appPath('/users'));
      expect(ok.status).toBe(200);
      expect(ok.headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1 - i));
    }
    const before = await h.snapshot();
    const limited = await h.request('POST', h.appPath('/users'), { body: { id: 'not_created' } });
    expect(limited.status).toBe(403);
    expect(limited.json).toEqual({ error: { type: 'invalid_request_error', code: 'rate_limit_exceeded', message: expect.stringContaining('请求过于频繁') } });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= WINDOW_MS / 1000).toBe(true);
    expect(limited.headers['x-request-id']).toEqual(expect.any(String));
    expect(await h.snapshot()).toEqual(before);
    // English when asked, like every other error.
    const en = await h.request('GET', h.appPath('/users'), { headers: { 'accept-language': 'en' } });
    expect(en.json.error.message).toMatch(/^Too many requests; retry after \d+ s\.$/);
  });

  it('counts per key: another account\'s key and the same account\'s live key are unaffected', async () => {
    expect((await h.request('GET', h.appPath('/users'))).status).toBe(403);
    const otherRes = await h.request('GET', `/v1/apps/${other.id}/users`, { key: shownKey(other.secret_key_test) });
    expect(otherRes.status).toBe(200);
    expect((await h.request('GET', h.appPath('/users'), { key: h.liveKey })).status).toBe(200);
  });

  it('does not count requests without a valid key (they are 401, not 403)', async () => {
    for (let i = 0; i < LIMIT + 2; i++) {
      const res = await h.request('GET', h.appPath('/users'), { key: 'sk_test_' + 'x'.repeat(24) });
      expect(res.status).toBe(401);
    }
    expect((await h.request('GET', '/healthz', { key: null })).status).toBe(200);
  });

  it('surfaces as RateLimitError in the official Node SDK', async () => {
    const pingpp = await officialSdk(h, shownKey(sdkApp.secret_key_test));
    for (let i = 0; i < LIMIT; i++) await pingpp.users.list(sdkApp.id, {});
    const err = await pingpp.users.list(sdkApp.id, {}).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(pingppErrors.PingppRateLimitError);
    expect(err).toMatchObject({ type: 'PingppRateLimitError', rawType: 'invalid_request_error', code: 'rate_limit_exceeded' });
  });

  it('answers a body over the limit with 413 and Ping++ error JSON, changing nothing', async () => {
    const before = await h.snapshot();
    const res = await h.request('POST', `/v1/apps/${bodyApp.id}/users`, {
      key: shownKey(bodyApp.secret_key_test),
      rawBody: JSON.stringify({ id: 'big', description: 'x'.repeat(BODY_LIMIT) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect(res.json).toEqual({ error: { type: 'invalid_request_error', code: 'request_too_large', message: `请求体超过 ${BODY_LIMIT} 字节。` } });
    expect(await h.snapshot()).toEqual(before);
    const small = await h.request('POST', `/v1/apps/${bodyApp.id}/users`, { key: shownKey(bodyApp.secret_key_test), body: { id: 'small' } });
    expect(small.status).toBe(200);
  });
});

describe('limit settings', () => {
  it('reads --rate-limit, --rate-limit-window-ms and --body-limit-bytes, flags over TIXIAN_* over defaults', () => {
    expect(loadConfig({}, {})).toMatchObject({ rateLimit: 1000, rateLimitWindowMs: 1000, bodyLimitBytes: 256 * 1024 });
    expect(loadConfig({ rateLimit: '0', rateLimitWindowMs: '60000', bodyLimitBytes: '1048576' }, {})).toMatchObject({
      rateLimit: 0, rateLimitWindowMs: 60_000, bodyLimitBytes: 1024 * 1024,
    });
    const env = { TIXIAN_RATE_LIMIT: '50', TIXIAN_RATE_LIMIT_WINDOW_MS: '500', TIXIAN_BODY_LIMIT_BYTES: '65536' };
    expect(loadConfig({}, env)).toMatchObject({ rateLimit: 50, rateLimitWindowMs: 500, bodyLimitBytes: 65536 });
    expect(loadConfig({ rateLimit: '7', bodyLimitBytes: '8192' }, env)).toMatchObject({ rateLimit: 7, bodyLimitBytes: 8192 });
    expect(defaults.rateLimit).toBe(1000);
  });

  it.each([
    [{ rateLimit: '-1' }, /--rate-limit must be/],
    [{ rateLimit: '1.5' }, /--rate-limit must be/],
    [{ rateLimitWindowMs: '1s' }, /--rate-limit-window-ms must be/],
    [{ rateLimitWindowMs: '7200000' }, /--rate-limit-window-ms must be/],
    [{ rateLimitWindowMs: '10' }, /--rate-limit-window-ms must be/],
    [{ bodyLimitBytes: '1gb' }, /--body-limit-bytes must be/],
    [{ bodyLimitBytes: '100' }, /--body-limit-bytes must be/],
    [{ bodyLimitBytes: '1e6' }, /--body-limit-bytes must be/],
  ])('refuses %o', (flags, message) => {
    expect(() => loadConfig(flags, {})).toThrow(message);
  });
});
