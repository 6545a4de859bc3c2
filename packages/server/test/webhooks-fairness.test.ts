import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { ManualClock } from '../src/clock.ts';
import { enableEndpoint, listEndpoints, upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { BREAKER_OPEN_AFTER_FAILURES } from '../src/webhooks/dispatcher.ts';
import { recoverEndpoint } from '../src/webhooks/events.ts';
import { attemptOffsetsMs } from '../src/webhooks/schedule.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, emitTestEvents, type Receiver } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';

describe('auto-disable settings', () => {
  it('default to 3 days and 20 failures, and are bounded', () => {
    expect(loadConfig({}, {})).toMatchObject({ webhookDisableAfterMs: 3 * 86_400_000, webhookDisableAfterFailures: 20 });
    expect(loadConfig({}, { TIXIAN_WEBHOOK_DISABLE_AFTER_MS: '3600000', TIXIAN_WEBHOOK_DISABLE_AFTER_FAILURES: '5' })).toMatchObject({
      webhookDisableAfterMs: 3_600_000,
      webhookDisableAfterFailures: 5,
    });
    expect(() => loadConfig({}, { TIXIAN_WEBHOOK_DISABLE_AFTER_MS: '59999' })).toThrow(/TIXIAN_WEBHOOK_DISABLE_AFTER_MS must be an integer from 60000 to 7776000000/);
    expect(() => loadConfig({}, { TIXIAN_WEBHOOK_DISABLE_AFTER_FAILURES: '0' })).toThrow(/TIXIAN_WEBHOOK_DISABLE_AFTER_FAILURES/);
  });
});

describeEngines('webhook fairness, circuit breaker and auto-disable', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 3, 1, 0, 0, 0));
    rig = await WebhookRig.start(engine, { clock });
    ({ h, receiver } = rig);
  });
  afterEach(() => rig.reset());
  afterAll(() => rig?.close());

  const endpointRow = (id: string) => h.rt.store.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('eight receivers that never answer do not starve a healthy endpoint of another app', async () => {
    const dead = await rig.freshApp('dead');
    const healthy = await rig.freshApp('healthy');
    receiver.behaviour = (r) => (r.path.startsWith('/hang/') ? 'hang' : { status: 200, body: 'ok' });
    for (let i = 0; i < 8; i++) await upsertEndpoint(h.rt, { app: dead.app, livemode: false, url: receiver.urlFor(`/hang/${i}`) });
    await upsertEndpoint(h.rt, { app: healthy.app, livemode: false, url: receiver.urlFor('/healthy') });
    // The dead endpoints' backlog is older, so oldest-first claiming would hand them every slot.
    await emitTestEvents(h.rt, dead, 16);
    clock.advance(1);
    const healthyEvents = await emitTestEvents(h.rt, healthy, 20);

    // The hangs outlast the test: the healthy endpoint must get through while all eight still hold slots.
    const d = rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8, timeoutMs: 60_000, stopGraceMs: 50 }).start();
    await receiver.waitFor((rs) => rs.filter((r) => r.path === '/healthy').length >= healthyEvents.length, 15_000);
    expect(new Set(receiver.to('/healthy').map((r) => r.event!.id))).toEqual(new Set(healthyEvents));
    // The reserve (a quarter of the slots) was never taken by endpoints that already had tries in flight.
    expect(receiver.openRequests.filter((r) => r.path.startsWith('/hang/')).length).toBeLessThanOrEqual(48);
    expect(d.options.concurrency).toBe(64);
  });

  it('dead receivers with a backlog and a full claim-ahead buffer do not starve a healthy endpoint', async () => {
    const dead = await rig.freshApp('deadbacklog');
    const healthy = await rig.freshApp('healthybacklog');
    receiver.behaviour = (r) => (r.path.startsWith('/hangbacklog/') ? 'hang' : { status: 200, body: 'ok' });
    const deadIds: string[] = [];
    for (let i = 0; i < 8; i++) deadIds.push((await upsertEndpoint(h.rt, { app: dead.app, livemode: false, url: receiver.urlFor(`/hangbacklog/${i}`) })).endpoint.id);
    await upsertEndpoint(h.rt, { app: healthy.app, livemode: false, url: receiver.urlFor('/healthybacklog') });
    // 50 older deliveries per dead endpoint: far more than a claim reads, so the oldest due rows
    // are theirs long after they hold every slot they may and the buffer is full.
    await emitTestEvents(h.rt, dead, 50);
    clock.advance(1);
    const healthyEvents = await emitTestEvents(h.rt, healthy, 20);

    // Unlike the test above, the lease (60 s) leaves time to claim ahead with a 20 s timeout: the
    // dead endpoints' rows fill the buffer, which then has no room for any of theirs.
    rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8, timeoutMs: 20_000, stopGraceMs: 50 }).start();
    await receiver.waitFor((rs) => rs.filter((r) => r.path === '/healthybacklog').length >= healthyEvents.length, 15_000);
    expect(new Set(receiver.to('/healthybacklog').map((r) => r.event!.id))).toEqual(new Set(healthyEvents));
    expect(receiver.openRequests.filter((r) => r.path.startsWith('/hangbacklog/')).length).toBeLessThanOrEqual(48);
    // The case under test: rows were claimed ahead for the dead endpoints beyond the 48 in flight.
    const leased = await h.rt.store.db.selectFrom('webhook_deliveries').select('id').where('endpoint_id', 'in', deadIds).where('lease_ms', 'is not', null).execute();
    expect(leased.length).toBeGreaterThan(48);
  });

  it('backs a failing endpoint off to one try in flight, and back to its bound after a success', async () => {
    const { app, accountId } = await rig.freshApp('breaker');
    let failing = true;
    receiver.behaviour = (r) => (r.path === '/flaky' ? { status: failing ? 503 : 200, body: failing ? 'down' : 'ok' } : { status: 404 });
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/flaky') });
    await emitTestEvents(h.rt, { app, accountId }, 20);
    const d = rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8 });

    // Closed: up to the per-endpoint bound at once, also after fewer than BREAKER_OPEN_AFTER_FAILURES failures.
    const t0 = clock.nowMs();
    expect(await d.runOnce()).toBe(8);
    expect(await endpointRow(endpoint.id)).toMatchObject({ failure_streak: 8, failing_since_ms: t0 });
    expect(await d.runOnce()).toBe(8);
    expect((await endpointRow(endpoint.id)).failure_streak).toBe(16);
    expect(16).toBeGreaterThanOrEqual(BREAKER_OPEN_AFTER_FAILURES);
    clock.advance(5_000);
    // Open: all 20 deliveries are due again, but only one goes at a time.
    expect(await d.runOnce()).toBe(1);
    expect(await d.runOnce()).toBe(1);
    expect((await endpointRow(endpoint.id)).failure_streak).toBe(18);
    const listed = (await listEndpoints(h.rt, app))[0]!;
    expect(listed).toMatchObject({ status: 'enabled', consecutive_failures: 18, failing_since: Math.floor(t0 / 1000) });

    // The receiver recovers: the one try in flight succeeds and closes the breaker.
    failing = false;
    expect(await d.runOnce()).toBe(1);
    expect(await endpointRow(endpoint.id)).toMatchObject({ failure_streak: 0, failing_since_ms: null });
    expect(await d.runOnce()).toBe(8);
  });

  it('disables an endpoint after a long run of failures, visibly; re-enabling and recover bring it back', async () => {
    const { app, accountId } = await rig.freshApp('autodisable');
    let failing = true;
    receiver.behaviour = (r) => (r.path === '/dead' ? { status: failing ? 500 : 200 } : { status: 404 });
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/dead') });
    const disableAfterMs = 2 * 3_600_000;
    const d = rig.dispatcher({ disableAfterMs, disableAfterFailures: 5 });
    const error = vi.spyOn(h.rt.log, 'error');

    const t0 = clock.nowMs();
    const first = await emitTestEvent(h.rt, { app, accountId });
    const offsets = attemptOffsetsMs();
    // The first try at or past two hours of failures (and five in a row) disables it; none before.
    const disablingTry = offsets.findIndex((o) => o >= disableAfterMs);
    expect(disablingTry).toBeGreaterThanOrEqual(5);
    for (let i = 0; i <= disablingTry; i++) {
      expect((await endpointRow(endpoint.id)).auto_disabled_ms, `before try ${i + 1}`).toBeNull();
      clock.set(t0 + offsets[i]!);
      expect(await d.drain()).toBe(1);
    }
    const row = await endpointRow(endpoint.id);
    expect(row.auto_disabled_ms).toBe(clock.nowMs());
    expect(row.failure_streak).toBe(disablingTry + 1);

    // The operator sees it: in the endpoint list (CLI `apps webhooks list`) and in the log.
    const [listed] = await listEndpoints(h.rt, app);
    expect(listed).toMatchObject({ status: 'disabled', disabled_at: Math.floor(clock.nowMs() / 1000), consecutive_failures: disablingTry + 1 });
    expect(listed!.disabled_reason).toMatch(/every try failed for 3 h \(9 in a row\)/);
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ event: 'webhook_endpoint.disabled', endpoint: endpoint.id }), expect.any(String));

    // Its waiting delivery failed for good; it gets no new events and nothing more is tried.
    const delivery = await h.rt.store.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', first).executeTakeFirstOrThrow();
    expect(delivery).toMatchObject({ status: 'failed', next_attempt_ms: null });
    const during = await emitTestEvent(h.rt, { app, accountId });
    expect(await h.rt.store.db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', during).execute()).toHaveLength(0);
    clock.advance(86_400_000);
    expect(await d.drain()).toBe(0);

    // Re-enabled: a clean record; recover sends what failed meanwhile.
    failing = false;
    const { endpoint: enabled, wasDisabled } = await enableEndpoint(h.rt, app, endpoint.id);
    expect(wasDisabled).toBe(true);
    expect(enabled).toMatchObject({ status: 'enabled', disabled_at: null, disabled_reason: null, consecutive_failures: 0, failing_since: null });
    expect((await recoverEndpoint(h.rt, endpoint.id, Math.floor(t0 / 1000))).requeued).toBe(1);
    expect(await d.drain()).toBe(1);
    expect(receiver.to('/dead').at(-1)!.event!.id).toBe(first);
    await expect(enableEndpoint(h.rt, app, 'we_missing')).rejects.toMatchObject({ status: 404 });
  });
});
