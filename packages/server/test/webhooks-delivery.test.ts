import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { ManualClock } from '../src/clock.ts';
import { openRuntime } from '../src/runtime.ts';
import { SecretBox } from '../src/security/secrets.ts';
import { createApp } from '../src/services/accounts.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';
import { attemptOffsetsMs, MAX_ATTEMPTS } from '../src/webhooks/schedule.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { closedPort, emitTestEvent, failFirst, type Receiver, verifyPingppSignature, type ReceivedRequest } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';
import { SignPool } from '../src/security/sign-pool.ts';

// Long enough that a loaded CI machine answers every healthy request in time; the hang test waits it out once.
const TIMEOUT_MS = 2_000;

describeEngines('webhook delivery', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 8, 0, 0));
    rig = await WebhookRig.start(engine, { clock, config: { webhookTimeoutMs: TIMEOUT_MS } });
    ({ h, receiver } = rig);
  });
  afterEach(() => rig.reset());
  afterAll(() => rig?.close());

  /** A fresh app in the default account (so endpoints of one test never see another test's events). */
  const freshApp = async (name: string) => {
    const app = await createApp(h.rt, { name });
    return { app: app.id, accountId: app.account };
  };

  const deliveriesOf = (eventId: string) =>
    h.rt.store.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', eventId).execute();
  const attemptsOf = (deliveryId: string) =>
    h.rt.store.db.selectFrom('webhook_attempts').selectAll().where('delivery_id', '=', deliveryId).orderBy('attempted_ms').execute();
  const eventRow = (eventId: string) => h.rt.store.db.selectFrom('events').selectAll().where('id', '=', eventId).executeTakeFirstOrThrow();

  it('POSTs the stored bytes, signed so that the official SDK example verifies them', async () => {
    const { app, accountId } = await freshApp('signed');
    receiver.behaviour = (r) => (r.path === '/signed' ? { status: 200, body: 'x'.repeat(3000) } : { status: 404 });
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/signed') });
    const eventId = await emitTestEvent(h.rt, { app, accountId, request: 'iar_test' });

    expect(await rig.dispatcher().drain()).toBe(1);
    const [got] = receiver.to('/signed');
    expect(got).toBeDefined();
    const row = await eventRow(eventId);
    expect(got!.method).toBe('POST');
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.rawBody.equals(Buffer.from(row.body, 'utf8'))).toBe(true);
    const signature = got!.headers['x-pingplusplus-signature'] as string;
    expect(verifyPingppSignature(got!.rawBody, signature, h.rt.platformKey.publicKeyPem)).toBe(true);
    // A re-serialised body is not what was signed (stripe-node #341): only the raw bytes verify.
    const tampered = Buffer.from(got!.rawBody.toString('utf8').replace('"amount":100', '"amount":101'));
    expect(verifyPingppSignature(tampered, signature, h.rt.platformKey.publicKeyPem)).toBe(false);
    // No Standard Webhooks headers unless the endpoint opted in.
    expect(got!.headers['webhook-signature']).toBeUndefined();

    expect(got!.event).toMatchObject({
      id: eventId, object: 'event', created: Math.floor(clock.nowMs() / 1000), livemode: false, type: 'balance.withdrawal.succeeded',
      data: { object: { object: 'withdrawal', app } }, pending_webhooks: 1, request: 'iar_test', scope: app, acct_id: accountId,
    });
    expect(eventId).toMatch(/^evt_[0-9]{24}$/);

    // Signed once, stored; the delivery is done and the event no longer waits for it.
    expect(row.signature).toBe(signature);
    expect(row.pending_webhooks).toBe(0);
    const [delivery] = await deliveriesOf(eventId);
    expect(delivery).toMatchObject({ status: 'succeeded', attempts: 1, next_attempt_ms: null, lease_ms: null, last_status_code: 200 });
    const [attempt] = await attemptsOf(delivery!.id);
    expect(attempt).toMatchObject({ status_code: 200, error: null, attempted_ms: clock.nowMs() });
    expect(attempt!.response_body).toBe('x'.repeat(1024));
    expect(attempt!.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('runs the whole Ping++ schedule: failing N times gets N+1 tries at the exact offsets (N = 0…11)', async () => {
    const { app, accountId } = await freshApp('schedule');
    const failures = Array.from({ length: 12 }, (_, n) => n);
    receiver.behaviour = (r) => {
      const m = /^\/fail\/(\d+)$/.exec(r.path);
      return m ? failFirst(Number(m[1]))(r) : { status: 404 };
    };
    const endpointOf = new Map<string, number>();
    for (const n of failures) {
      const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor(`/fail/${n}`) });
      endpointOf.set(endpoint.id, n);
    }
    const t0 = clock.nowMs();
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();
    const offsets = attemptOffsetsMs();
    const tries = (n: number) => receiver.to(`/fail/${n}`).length;

    for (let i = 0; i < offsets.length; i++) {
      if (i > 0) {
        // One millisecond early: nothing is due yet.
        clock.set(t0 + offsets[i]! - 1);
        expect(await d.drain()).toBe(0);
      }
      clock.set(t0 + offsets[i]!);
      await d.drain();
      for (const n of failures) expect(tries(n), `N=${n} after try ${i + 1}`).toBe(Math.min(i + 1, n + 1));
    }
    // Long after the last try: nothing more, ever.
    clock.set(t0 + offsets[offsets.length - 1]! + 100 * 3600_000);
    expect(await d.drain()).toBe(0);

    const deliveries = await deliveriesOf(eventId);
    expect(deliveries).toHaveLength(12);
    for (const delivery of deliveries) {
      const n = endpointOf.get(delivery.endpoint_id)!;
      const expectedTries = Math.min(n + 1, MAX_ATTEMPTS);
      expect(delivery.attempts).toBe(expectedTries);
      expect(delivery.status).toBe(n < MAX_ATTEMPTS ? 'succeeded' : 'failed');
      expect(delivery.next_attempt_ms).toBeNull();
      const attempts = await attemptsOf(delivery.id);
      expect(attempts.map((a) => a.attempted_ms - t0)).toEqual(offsets.slice(0, expectedTries));
      expect(attempts.map((a) => a.status_code)).toEqual([...Array(expectedTries - (n < MAX_ATTEMPTS ? 1 : 0)).fill(500), ...(n < MAX_ATTEMPTS ? [200] : [])]);
    }
    // Each delivery left pending_webhooks when it succeeded or failed for good; the failed one stays visible.
    expect((await eventRow(eventId)).pending_webhooks).toBe(0);
    const failed = await h.request('GET', `/v1/events?delivery_success=false`);
    expect(failed.json.data.map((e: { id: string }) => e.id)).toContain(eventId);
  });

  it('counts 3xx (not followed), 4xx, 5xx, timeouts, refused connections and DNS errors as failures', async () => {
    const { app, accountId } = await freshApp('failures');
    receiver.behaviour = (r) => {
      switch (r.path) {
        case '/redirect':
          return { status: 302, headers: { location: receiver.urlFor('/target') } };
        case '/r307':
          return { status: 307, headers: { location: receiver.urlFor('/target') } };
        case '/bad':
          return { status: 400, body: 'bad' };
        case '/unavailable':
          return { status: 503, body: 'later' };
        case '/hang':
          return 'hang';
        case '/drop':
          return 'destroy';
        default:
          return { status: 200 };
      }
    };
    const refused = `http://127.0.0.1:${await closedPort()}/hook`;
    const urls = ['/redirect', '/r307', '/bad', '/unavailable', '/hang', '/drop'].map((p) => receiver.urlFor(p));
    urls.push(refused, 'http://tixian-webhook-test.invalid/hook');
    const byUrl = new Map<string, string>();
    for (const url of urls) byUrl.set((await upsertEndpoint(h.rt, { app, livemode: false, url })).endpoint.id, url);
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();

    const started = performance.now();
    await d.drain();
    // The hanging receiver was given up on after the configured timeout, not 15 s.
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + 5_000);
    expect(receiver.to('/target')).toHaveLength(0);

    const deliveries = await deliveriesOf(eventId);
    expect(deliveries).toHaveLength(urls.length);
    const seen: Record<string, { code: number | null; error: string | null }> = {};
    for (const delivery of deliveries) {
      expect(delivery).toMatchObject({ status: 'pending', attempts: 1, lease_ms: null, next_attempt_ms: clock.nowMs() + 5_000 });
      const [attempt] = await attemptsOf(delivery.id);
      seen[byUrl.get(delivery.endpoint_id)!] = { code: attempt!.status_code, error: attempt!.error };
    }
    expect(seen[receiver.urlFor('/redirect')]!.code).toBe(302);
    expect(seen[receiver.urlFor('/r307')]!.code).toBe(307);
    expect(seen[receiver.urlFor('/bad')]!.code).toBe(400);
    expect(seen[receiver.urlFor('/unavailable')]!.code).toBe(503);
    expect(seen[receiver.urlFor('/hang')]).toMatchObject({ code: null, error: expect.stringMatching(/timeout/) });
    expect(seen[receiver.urlFor('/drop')]).toMatchObject({ code: null, error: expect.any(String) });
    expect(seen[refused]).toMatchObject({ code: null, error: expect.stringMatching(/ECONNREFUSED/) });
    expect(seen['http://tixian-webhook-test.invalid/hook']).toMatchObject({ code: null, error: expect.any(String) });
    expect((await eventRow(eventId)).pending_webhooks).toBe(urls.length);

    // All of them are tried again 5 s later.
    const before = receiver.requests.length;
    clock.advance(5_000);
    await d.drain();
    expect(receiver.requests.length - before).toBe(6);
    for (const delivery of await deliveriesOf(eventId)) expect(delivery.attempts).toBe(2);
  });

  it('adds Standard Webhooks headers for an endpoint that opted in, next to the Ping++ signature', async () => {
    const { app, accountId } = await freshApp('standard');
    receiver.behaviour = () => ({ status: 204 });
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/standard'), standardWebhooks: true });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    await rig.dispatcher().drain();
    const [got] = receiver.to('/standard');
    const timestamp = got!.headers['webhook-timestamp'] as string;
    expect(got!.headers['webhook-id']).toBe(eventId);
    expect(timestamp).toBe(String(Math.floor(clock.nowMs() / 1000)));
    const key = Buffer.from(endpoint.secret!.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update(`${eventId}.${timestamp}.${got!.rawBody.toString('utf8')}`).digest('base64');
    expect(got!.headers['webhook-signature']).toBe(`v1,${expected}`);
    expect(verifyPingppSignature(got!.rawBody, got!.headers['x-pingplusplus-signature'] as string, h.rt.platformKey.publicKeyPem)).toBe(true);
    // 204 is a 2xx: done.
    expect((await deliveriesOf(eventId))[0]!.status).toBe('succeeded');
  });

  it('does not let a receiver that never answers slow a healthy endpoint of another app', async () => {
    const dead = await freshApp('dead');
    const healthy = await freshApp('healthy');
    receiver.behaviour = (r) => (r.path === '/never' ? 'hang' : { status: 200 });
    await upsertEndpoint(h.rt, { app: dead.app, livemode: false, url: receiver.urlFor('/never') });
    await upsertEndpoint(h.rt, { app: healthy.app, livemode: false, url: receiver.urlFor('/healthy') });
    // A backlog of 40 for the dead endpoint, queued first, so it is at the head of the queue.
    for (let i = 0; i < 40; i++) await emitTestEvent(h.rt, { ...dead });
    const d = rig.dispatcher({ timeoutMs: 20_000, stopGraceMs: 100 });
    d.start();
    await receiver.waitFor(() => receiver.openCount === d.options.perEndpointConcurrency, 5_000);

    const started = performance.now();
    const healthyId = await emitTestEvent(h.rt, { ...healthy });
    h.rt.bus.emit('webhook');
    await receiver.waitFor((rs) => rs.some((r) => r.path === '/healthy' && r.event?.id === healthyId), 5_000);
    const tookMs = performance.now() - started;
    // Delivered while every try to the dead endpoint was still hanging, long before its 20 s timeout.
    expect(receiver.openCount).toBe(d.options.perEndpointConcurrency);
    expect(receiver.to('/never')).toHaveLength(d.options.perEndpointConcurrency);
    expect(tookMs).toBeLessThan(2_000);
  });

  it('re-sends a delivery whose sender died between send and record once its lease runs out: same id, same bytes', async () => {
    const { app, accountId } = await freshApp('lease');
    let answer: 'hang' | 'ok' = 'hang';
    receiver.behaviour = () => (answer === 'hang' ? 'hang' : { status: 200 });
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/lease') });
    const eventId = await emitTestEvent(h.rt, { app, accountId });

    // The first sender claims and sends, then is stopped the hard way before it can record anything.
    const first = new WebhookDispatcher(h.rt, { timeoutMs: 20_000, stopGraceMs: 10 });
    const sending = first.runOnce();
    await receiver.waitFor((rs) => rs.some((r) => r.path === '/lease'));
    await first.stop();
    await sending;
    const [leased] = await deliveriesOf(eventId);
    expect(leased).toMatchObject({ status: 'pending', attempts: 0, lease_ms: clock.nowMs() + first.options.leaseMs });
    expect(await attemptsOf(leased!.id)).toHaveLength(0);

    answer = 'ok';
    const second = rig.dispatcher({ timeoutMs: 20_000 });
    expect(await second.drain()).toBe(0);
    clock.advance(first.options.leaseMs - 1);
    expect(await second.drain()).toBe(0);
    clock.advance(1);
    expect(await second.drain()).toBe(1);

    const got = receiver.to('/lease');
    expect(got).toHaveLength(2);
    expect(got[1]!.event!.id).toBe(eventId);
    expect(got[1]!.rawBody.equals(got[0]!.rawBody)).toBe(true);
    expect(got[1]!.headers['x-pingplusplus-signature']).toBe(got[0]!.headers['x-pingplusplus-signature']);
    expect((await deliveriesOf(eventId))[0]).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect((await eventRow(eventId)).pending_webhooks).toBe(0);
  });

  it('records a try whose Standard Webhooks secret cannot be opened as a failure, so the schedule runs out', async () => {
    const { app, accountId } = await freshApp('unopenable');
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/unopenable'), standardWebhooks: true });
    // Sealed with another master key (a copied row, a lost key): the dispatcher cannot open it.
    const foreign = new SecretBox(randomBytes(32)).seal('whsec_' + randomBytes(32).toString('base64'));
    await h.rt.store.db.updateTable('webhook_endpoints').set({ secret: foreign }).where('id', '=', endpoint.id).execute();
    const t0 = clock.nowMs();
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();

    expect(await d.drain()).toBe(1);
    const [first] = await deliveriesOf(eventId);
    expect(first).toMatchObject({ status: 'pending', attempts: 1, lease_ms: null, next_attempt_ms: t0 + 5_000, last_status_code: null });
    const [attempt] = await attemptsOf(first!.id);
    expect(attempt).toMatchObject({ status_code: null, response_body: null, attempted_ms: t0, error: expect.stringMatching(/^could not sign: /) });

    for (const offset of attemptOffsetsMs()) {
      clock.set(t0 + offset);
      await d.drain();
    }
    clock.set(t0 + attemptOffsetsMs().at(-1)! + 100 * 3600_000);
    expect(await d.drain()).toBe(0);
    const [done] = await deliveriesOf(eventId);
    expect(done).toMatchObject({ status: 'failed', attempts: MAX_ATTEMPTS, next_attempt_ms: null, lease_ms: null });
    expect(await attemptsOf(done!.id)).toHaveLength(MAX_ATTEMPTS);
    expect((await eventRow(eventId)).pending_webhooks).toBe(0);
    expect(receiver.to('/unopenable')).toHaveLength(0);
  });

  it('records a try whose body could not be signed without storing a signature; the next try signs it', async () => {
    const { app, accountId } = await freshApp('unsigned');
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/unsigned') });
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();
    const sign = vi.spyOn(h.rt.platformKey, 'sign').mockImplementation(() => {
      throw new Error('signing key unavailable');
    });
    // With a spare core the signature is made by a signing thread (sign-pool.ts): fail that too.
    const threadSign = vi.spyOn(SignPool.prototype, 'sign').mockRejectedValue(new Error('signing key unavailable'));
    try {
      expect(await d.drain()).toBe(1);
    } finally {
      sign.mockRestore();
      threadSign.mockRestore();
    }
    const [delivery] = await deliveriesOf(eventId);
    expect(delivery).toMatchObject({ status: 'pending', attempts: 1, lease_ms: null, next_attempt_ms: clock.nowMs() + 5_000 });
    expect(await attemptsOf(delivery!.id)).toMatchObject([{ status_code: null, error: 'could not sign: signing key unavailable' }]);
    expect((await eventRow(eventId)).signature).toBeNull();
    expect(receiver.to('/unsigned')).toHaveLength(0);

    clock.advance(5_000);
    expect(await d.drain()).toBe(1);
    const [got] = receiver.to('/unsigned');
    expect(verifyPingppSignature(got!.rawBody, got!.headers['x-pingplusplus-signature'] as string, h.rt.platformKey.publicKeyPem)).toBe(true);
    expect((await eventRow(eventId)).signature).toBe(got!.headers['x-pingplusplus-signature']);
    expect((await deliveriesOf(eventId))[0]).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect((await eventRow(eventId)).pending_webhooks).toBe(0);
  });

  it('cancels a claimed delivery whose endpoint turns out disabled or gone, instead of leasing it again and again', async () => {
    const { app, accountId } = await freshApp('orphans');
    const disabled = (await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/orphan-disabled') })).endpoint;
    const gone = (await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/orphan-gone') })).endpoint;
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/orphan-healthy') });
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    // Changed behind the services' back (removeEndpoint would have canceled the waiting deliveries).
    await h.rt.store.db.updateTable('webhook_endpoints').set({ disabled: 1 }).where('id', '=', disabled.id).execute();
    await h.rt.store.db.deleteFrom('webhook_endpoints').where('id', '=', gone.id).execute();
    const d = rig.dispatcher();

    expect(await d.drain()).toBe(1);
    expect(receiver.to('/orphan-healthy')).toHaveLength(1);
    const byEndpoint = new Map((await deliveriesOf(eventId)).map((r) => [r.endpoint_id, r]));
    for (const id of [disabled.id, gone.id]) {
      expect(byEndpoint.get(id)).toMatchObject({ status: 'canceled', attempts: 0, next_attempt_ms: null, lease_ms: null });
    }
    expect((await eventRow(eventId)).pending_webhooks).toBe(0);
    clock.advance(d.options.leaseMs + 1);
    expect(await d.drain()).toBe(0);
    expect((await deliveriesOf(eventId)).filter((r) => r.status === 'canceled')).toHaveLength(2);
    expect(receiver.to('/orphan-disabled').length + receiver.to('/orphan-gone').length).toBe(0);
  });

  it.runIf(engine === 'postgres')('never sends one delivery from two processes at once (SKIP LOCKED claims)', async () => {
    const { app, accountId } = await freshApp('two processes');
    receiver.behaviour = () => ({ status: 200, delayMs: 2 });
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/pair') });
    const ids = new Set<string>();
    for (let i = 0; i < 150; i++) ids.add(await emitTestEvent(h.rt, { app, accountId }));
    const other = await openRuntime(h.rt.config, { clock, log: pino({ level: 'silent' }) });
    try {
      const a = rig.dispatcher({ concurrency: 16, perEndpointConcurrency: 16 });
      const b = new WebhookDispatcher(other, { concurrency: 16, perEndpointConcurrency: 16 });
      const [na, nb] = await Promise.all([a.drain(), b.drain()]);
      await b.stop();
      expect(na + nb).toBe(150);
      expect(na).toBeGreaterThan(0);
      expect(nb).toBeGreaterThan(0);
      const got = receiver.to('/pair').map((r: ReceivedRequest) => r.event!.id);
      expect(got).toHaveLength(150);
      expect(new Set(got)).toEqual(ids);
    } finally {
      await other.close();
    }
  });
});

describe('webhook dispatcher options', () => {
  it('never leases for less than a try can take', async () => {
    const h = await Harness.start('sqlite', { config: { webhookTimeoutMs: 15_000, webhookLeaseMs: 2_000 } });
    try {
      expect(new WebhookDispatcher(h.rt).options.leaseMs).toBe(16_000);
      expect(new WebhookDispatcher(h.rt, { leaseMs: 120_000 }).options.leaseMs).toBe(120_000);
    } finally {
      await h.close();
    }
  });
});
