import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { PLATFORM_SIGNATURE_HEADER } from '../src/security/platform-key.ts';
import { describeEngines, Harness } from './helpers/harness.ts';

/**
 * While the database is away (a PostgreSQL restart), a request fails with Ping++'s 500 api_error,
 * never with Fastify's own error JSON: found by the chaos run, where the response-signature hook
 * re-read the account's signing key from the dead database and its error escaped the error handler.
 */
describeEngines('answers while the database is away', (engine) => {
  let h: Harness;
  const clock = new ManualClock(Date.now());
  beforeAll(async () => {
    h = await Harness.start(engine, { clock });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a request whose signing key is due for a re-read answers a signed, clean 500 api_error', async () => {
    expect((await h.request('POST', h.appPath('/users'), { body: { id: 'outage_user' } })).status).toBe(200);
    // The key cache (5 s) is fresh and the signing-key cache (10 s) is due when the database goes.
    clock.advance(9_000);
    expect((await h.request('GET', h.appPath('/users/outage_user'))).status).toBe(200);
    clock.advance(1_500);
    await h.rt.store.close();
    const res = await h.request('GET', h.appPath('/users/outage_user'));
    expect([res.status, res.json?.error?.type]).toEqual([500, 'api_error']);
    expect(res.headers[PLATFORM_SIGNATURE_HEADER.toLowerCase()]).toEqual(expect.any(String));
  });
});
