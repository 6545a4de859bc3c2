import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { SignPool, sharedSignPool } from '../src/security/sign-pool.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, emitTestEvents, verifyPingppSignature, type Receiver } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';
import { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';

/**
 * The background dispatcher claims rows ahead for saturated endpoints (a bounded buffer of leased
 * rows), so a freed slot does not wait for a claim transaction. What must still hold: the buffer is
 * bounded per endpoint, it does not slow other endpoints, a buffered row whose lease was lost is
 * not sent (unless it was read within loadedFreshMs: then its record is fenced), and stopping gives
 * the buffered rows back.
 */
describeEngines('webhook claiming ahead', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 5, 1, 0, 0, 0));
    rig = await WebhookRig.start(engine, { clock });
    ({ h, receiver } = rig);
  });
  afterEach(() => rig.reset());
  afterAll(() => rig?.close());

  const deliveriesTo = (endpointId: string) =>
    h.rt.store.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpointId).orderBy('event_id').execute();
  /** Polls the database (the dispatcher's claims are not observable otherwise) until `done` holds. */
  const until = async (done: () => Promise<boolean>, timeoutMs = 10_000) => {
    const deadline = performance.now() + timeoutMs;
    while (!(await done())) {
      if (performance.now() > deadline) throw new Error('condition not reached in time');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  /**
   * One endpoint at /<name> with `events` events, 8 tries in flight to it (answered only once
   * `hanging()` turns false) and the others (at most 32) leased into the dispatcher's buffer.
   */
  const saturate = async (name: string, hanging: () => boolean, options: { timeoutMs: number; stopGraceMs?: number; loadedFreshMs?: number }, events = 20) => {
    const { app, accountId } = await rig.freshApp(name);
    receiver.behaviour = (r) => (r.path === `/${name}` && hanging() ? 'hang' : { status: 200 });
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor(`/${name}`) });
    await emitTestEvents(h.rt, { app, accountId }, events);
    const dispatcher = rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8, ...options }).start();
    await receiver.waitFor(() => receiver.to(`/${name}`).length === 8);
    await until(async () => (await deliveriesTo(endpoint.id)).every((r) => r.lease_ms !== null));
    const sent = new Set(receiver.to(`/${name}`).map((r) => r.event!.id));
    const buffered = (await deliveriesTo(endpoint.id)).filter((r) => !sent.has(r.event_id));
    expect(buffered).toHaveLength(events - 8);
    return { endpoint, buffered, dispatcher };
  };

  it('leases at most four times the per-endpoint bound ahead, keeps other endpoints moving, and gives the rest back on stop', async () => {
    const busy = await rig.freshApp('busy');
    const other = await rig.freshApp('other');
    receiver.behaviour = (r) => (r.path === '/busy' ? 'hang' : { status: 200 });
    const { endpoint: busyEp } = await upsertEndpoint(h.rt, { app: busy.app, livemode: false, url: receiver.urlFor('/busy') });
    await upsertEndpoint(h.rt, { app: other.app, livemode: false, url: receiver.urlFor('/other') });
    await emitTestEvents(h.rt, busy, 60);
    const dueAt = clock.nowMs();

    // The hangs outlast the test (20 s); the 60 s lease leaves buffered rows 10 s to wait.
    const d = rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8, timeoutMs: 20_000, stopGraceMs: 50 }).start();
    await receiver.waitFor(() => receiver.to('/busy').length === 8);
    // 8 in flight and 32 claimed ahead, never more: the rest of the backlog stays free for other processes.
    await until(async () => (await deliveriesTo(busyEp.id)).filter((r) => r.lease_ms !== null).length === 40);
    clock.advance(1);
    const otherId = await emitTestEvent(h.rt, other);
    h.rt.bus.emit('webhook');
    await receiver.waitFor((rs) => rs.some((r) => r.path === '/other' && r.event?.id === otherId), 5_000);
    expect((await deliveriesTo(busyEp.id)).filter((r) => r.lease_ms !== null)).toHaveLength(40);
    expect(receiver.to('/busy')).toHaveLength(8);

    // Stopped: the 8 hanging tries keep their lease (sent, not recorded); the 32 buffered rows are
    // due again at the time they were due before, unsent.
    await d.stop();
    const rows = await deliveriesTo(busyEp.id);
    const sent = new Set(receiver.to('/busy').map((r) => r.event!.id));
    expect(rows.filter((r) => r.lease_ms !== null).map((r) => r.event_id).sort()).toEqual([...sent].sort());
    const unsent = rows.filter((r) => !sent.has(r.event_id));
    expect(unsent).toHaveLength(52);
    for (const r of unsent) expect(r).toMatchObject({ status: 'pending', attempts: 0, lease_ms: null, next_attempt_ms: dueAt });
  });

  it('while one endpoint is saturated, finds another endpoint\'s rows queued by another process (no wake-up) within its idle poll', async () => {
    const busy = await rig.freshApp('busy2');
    const other = await rig.freshApp('other2');
    receiver.behaviour = (r) => (r.path === '/busy2' ? 'hang' : { status: 200 });
    await upsertEndpoint(h.rt, { app: busy.app, livemode: false, url: receiver.urlFor('/busy2') });
    await upsertEndpoint(h.rt, { app: other.app, livemode: false, url: receiver.urlFor('/other2') });
    await emitTestEvents(h.rt, busy, 60);
    const d = rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8, timeoutMs: 20_000, stopGraceMs: 50 }).start();
    await receiver.waitFor(() => receiver.to('/busy2').length === 8);
    // Its claims now read only the busy endpoint's rows, on the strength of a look that found
    // nothing else due; that look must be made again, or this row would wait for ever.
    clock.advance(1);
    const otherId = await emitTestEvent(h.rt, other);
    await receiver.waitFor((rs) => rs.some((r) => r.path === '/other2' && r.event?.id === otherId), 5_000);
    await d.stop();
  });

  it('does not send a buffered row whose lease was lost meanwhile', async () => {
    let hang = true;
    // The first eight hang until their 1 s timeout; the other twelve wait in the buffer meanwhile.
    const { endpoint, buffered } = await saturate('lost', () => hang, { timeoutMs: 1_000 });
    // Another process took one of them over (its lease, its fencing token, is no longer ours).
    const lost = buffered[5]!;
    await h.rt.store.db.updateTable('webhook_deliveries').set({ lease_ms: Number(lost.lease_ms) + 1 }).where('id', '=', lost.id).execute();
    hang = false;

    // The timeouts free the slots: the buffered rows go out, all but the one no longer ours.
    await receiver.waitFor(() => receiver.to('/lost').length === 19, 10_000);
    await until(async () => (await deliveriesTo(endpoint.id)).filter((r) => r.status === 'succeeded').length === 11);
    await rig.stopDispatchers();
    expect(receiver.to('/lost')).toHaveLength(19);
    expect(receiver.to('/lost').some((r) => r.event!.id === lost.event_id)).toBe(false);
    expect((await deliveriesTo(endpoint.id)).find((r) => r.id === lost.id)).toMatchObject({
      status: 'pending', attempts: 0, lease_ms: Number(lost.lease_ms) + 1,
    });
  });

  it('reads the rows next in a saturated endpoint\'s line ahead, and sends one read recently without reading it again', async () => {
    // The rows each load() was asked for: to send now, and ahead (the next two rounds of slots).
    const loads: { now: string[]; ahead: string[] }[] = [];
    type Load = (leased: readonly { id: string }[], ahead?: readonly { id: string }[]) => Promise<unknown>;
    const proto = WebhookDispatcher.prototype as unknown as { load: Load };
    const load = proto.load;
    const spy = vi.spyOn(proto, 'load').mockImplementation(function (this: unknown, leased, ahead = []) {
      loads.push({ now: leased.map((l) => l.id), ahead: ahead.map((l) => l.id) });
      return load.call(this, leased, ahead);
    });
    try {
      let hang = true;
      // What was read stays fresh for the whole test, so what is sent from it is not up to timing.
      const { endpoint, buffered } = await saturate('readahead', () => hang, { timeoutMs: 20_000, stopGraceMs: 50, loadedFreshMs: 60_000 }, 40);
      // The eight sent were read with the 16 next in line; the other 16 buffered were not read yet.
      expect(loads).toHaveLength(1);
      expect(loads[0]!.now).toHaveLength(8);
      expect(loads[0]!.ahead).toHaveLength(16);
      const readAhead = new Set(loads[0]!.ahead);
      const sentFirst = new Set(loads[0]!.now);
      expect(buffered.every((r) => !sentFirst.has(r.id))).toBe(true);
      // Another process takes over one row read ahead and one not read yet.
      const lostRead = buffered.find((r) => readAhead.has(r.id))!;
      const lostUnread = buffered.find((r) => !readAhead.has(r.id))!;
      for (const lost of [lostRead, lostUnread]) {
        await h.rt.store.db.updateTable('webhook_deliveries').set({ lease_ms: Number(lost.lease_ms) + 1 }).where('id', '=', lost.id).execute();
      }

      hang = false;
      receiver.dropOpen();
      await until(async () => (await deliveriesTo(endpoint.id)).filter((r) => r.status === 'succeeded').length === 30);
      await rig.stopDispatchers();
      // No row read ahead was read again before it was sent: a freed slot sent it at once.
      const readAgain = loads.slice(1).flatMap((l) => [...l.now, ...l.ahead]).filter((id) => readAhead.has(id));
      expect(readAgain).toEqual([]);
      // So the row read ahead went out from what was read (as one lost between a load and its POST
      // always could), and its record was fenced: the row is as the other process left it. The row
      // not read ahead was read when its turn came and left unsent.
      const sent = new Set(receiver.to('/readahead').map((r) => r.event!.id));
      expect(sent.has(lostRead.event_id)).toBe(true);
      expect(sent.has(lostUnread.event_id)).toBe(false);
      const rows = await deliveriesTo(endpoint.id);
      for (const lost of [lostRead, lostUnread]) {
        expect(rows.find((r) => r.id === lost.id)).toMatchObject({ status: 'pending', attempts: 0, lease_ms: Number(lost.lease_ms) + 1 });
      }
    } finally {
      spy.mockRestore();
    }
  });

  // Without a signing thread (one core) nothing is signed ahead: on the event loop it is the same work.
  it.skipIf(!sharedSignPool().hasThreads)('signs the rows next in a saturated endpoint\'s line while its slots are busy, each event once, and sends them with those signatures', async () => {
    const sign = vi.spyOn(SignPool.prototype, 'sign');
    try {
      let hang = true;
      // Eight tries hang (longer than the test); 32 rows wait in the buffer meanwhile.
      const { endpoint, buffered } = await saturate('signahead', () => hang, { timeoutMs: 20_000, stopGraceMs: 50 }, 40);
      const ours = new Set((await deliveriesTo(endpoint.id)).map((r) => r.event_id));
      const signedEvents = () =>
        sign.mock.calls.map(([, bytes]) => (JSON.parse(bytes.toString('utf8')) as { id: string }).id).filter((id) => ours.has(id));
      const waiting = new Set(buffered.map((r) => r.event_id));
      // No slot frees while they hang, yet the next 16 in line (twice the endpoint's bound) are signed, not all 32.
      await until(async () => signedEvents().length >= 24);
      expect(signedEvents().filter((id) => waiting.has(id))).toHaveLength(16);
      expect(receiver.to('/signahead')).toHaveLength(8);

      // The hanging tries fail (connection dropped) and free their slots: the buffered rows go out.
      hang = false;
      receiver.dropOpen();
      await until(async () => (await deliveriesTo(endpoint.id)).filter((r) => r.status === 'succeeded').length === 32);
      await rig.stopDispatchers();
      // Each event signed once: the tries of the rows signed ahead took those signatures.
      expect(signedEvents().sort()).toEqual([...ours].sort());
      const sent = receiver.to('/signahead').filter((r) => waiting.has(r.event!.id));
      expect(sent).toHaveLength(32);
      for (const r of sent) expect(verifyPingppSignature(r.rawBody, String(r.headers['x-pingplusplus-signature']), h.rt.platformKey.publicKeyPem)).toBe(true);
    } finally {
      sign.mockRestore();
    }
  });

  it('gives back on stop only the buffered rows still carrying its lease, each due when it was', async () => {
    const { endpoint, buffered, dispatcher: d } = await saturate('giveback', () => true, { timeoutMs: 20_000, stopGraceMs: 50 });
    // Another process took one over meanwhile (a later lease): giving back must not touch it.
    const taken = buffered[3]!;
    const theirs = { lease_ms: Number(taken.lease_ms) + 1, next_attempt_ms: Number(taken.lease_ms) + 1 };
    await h.rt.store.db.updateTable('webhook_deliveries').set(theirs).where('id', '=', taken.id).execute();
    await d.stop();
    const after = new Map((await deliveriesTo(endpoint.id)).map((r) => [r.id, r]));
    expect(after.get(taken.id)).toMatchObject({ status: 'pending', attempts: 0, ...theirs });
    for (const r of buffered.filter((b) => b.id !== taken.id)) {
      expect(after.get(r.id)).toMatchObject({ status: 'pending', attempts: 0, lease_ms: null, next_attempt_ms: clock.nowMs() });
    }
  });

  it('cancels for a gone endpoint only the rows still carrying its lease (one taken over between load and cancel is left alone)', async () => {
    const { app, accountId } = await rig.freshApp('orphan');
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/orphan') });
    await emitTestEvents(h.rt, { app, accountId }, 2);
    const [ours, taken] = await deliveriesTo(endpoint.id);
    // Both leased by this dispatcher (its fencing token 1000); then another process took one over.
    const lease = 1_000;
    await h.rt.store.db.updateTable('webhook_deliveries').set({ lease_ms: lease }).where('endpoint_id', '=', endpoint.id).execute();
    await h.rt.store.db.updateTable('webhook_deliveries').set({ lease_ms: lease + 1 }).where('id', '=', taken!.id).execute();
    const leased = [ours!, taken!].map((r) => ({ id: r.id, endpointId: endpoint.id, leaseMs: lease, dueMs: Number(r.next_attempt_ms), cap: 8, claimedMs: clock.nowMs() }));
    // What `load` does for rows whose endpoint is disabled or gone, run on rows as it loaded them.
    const d = rig.dispatcher() as unknown as { cancelOrphans(rows: typeof leased, status: 'canceled'): Promise<void> };
    await d.cancelOrphans(leased, 'canceled');
    const after = new Map((await deliveriesTo(endpoint.id)).map((r) => [r.id, r]));
    expect(after.get(ours!.id)).toMatchObject({ status: 'canceled', lease_ms: null, next_attempt_ms: null });
    expect(after.get(taken!.id)).toMatchObject({ status: 'pending', lease_ms: lease + 1, next_attempt_ms: taken!.next_attempt_ms });
  });

  it('claims one row at a time for an endpoint whose breaker is open (nothing ahead)', async () => {
    const { app, accountId } = await rig.freshApp('open');
    receiver.behaviour = (r) => (r.path === '/open' ? 'hang' : { status: 200 });
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/open') });
    await h.rt.store.db.updateTable('webhook_endpoints').set({ failure_streak: 50, failing_since_ms: clock.nowMs() }).where('id', '=', endpoint.id).execute();
    await emitTestEvents(h.rt, { app, accountId }, 10);
    rig.dispatcher({ concurrency: 64, perEndpointConcurrency: 8, timeoutMs: 60_000, stopGraceMs: 50 }).start();
    await receiver.waitFor(() => receiver.to('/open').length === 1);
    // The claim that sent it would have leased the rows ahead in the same transaction.
    expect((await deliveriesTo(endpoint.id)).filter((r) => r.lease_ms !== null)).toHaveLength(1);
    expect(receiver.to('/open')).toHaveLength(1);
  });
});
