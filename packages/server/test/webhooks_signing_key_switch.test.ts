import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import pino from 'pino';
import { ManualClock } from '../src/clock.ts';
import { openRuntime } from '../src/runtime.ts';
import { createAccountSigningKey, removeAccountSigningKey, SIGNING_KEY_TTL_MS } from '../src/security/signing-keys.ts';
import { SignPool } from '../src/security/sign-pool.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { recoverEndpoint, resendEvent } from '../src/webhooks/events.ts';
import { attemptOffsetsMs } from '../src/webhooks/schedule.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, failFirst, type Receiver, type ReceivedRequest, verifyPingppSignature } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';

/**
 * A try carries a signature made with the key that signs for the event's account when it is sent:
 * after `tixian apps signing-key create [--replace]` or `remove`, retries of events signed before
 * and resends/recoveries of older events verify with the new public key (a merchant who switched
 * rejects the old one: those webhooks were lost). While the key stays, the stored signature is
 * reused (no RSA per retry or resend).
 */
describeEngines('webhook signatures across a signing-key switch', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 8, 0, 0));
    rig = await WebhookRig.start(engine, { clock, config: { webhookTimeoutMs: 5_000 } });
    ({ h, receiver } = rig);
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rig.reset();
  });
  afterAll(() => rig?.close());

  const platformPem = () => h.rt.platformKey.publicKeyPem;
  const signatureOf = (r: ReceivedRequest) => r.headers['x-pingplusplus-signature'] as string;
  const verifiesWith = (r: ReceivedRequest, pem: string) => verifyPingppSignature(r.rawBody, signatureOf(r), pem);
  const eventRow = (id: string) => h.rt.store.db.selectFrom('events').select(['signature', 'signature_kid']).where('id', '=', id).executeTakeFirstOrThrow();

  /** A merchant of its own with one endpoint at `path`, and one event for it. */
  const merchantWithEvent = async (name: string, path: string) => {
    const { app, accountId } = await rig.freshApp(name);
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor(path) });
    return { app, accountId, endpointPath: path };
  };

  it('a try that failed with the platform key is retried, after the account got its own key, signed with the new key', async () => {
    receiver.behaviour = failFirst(1);
    const { app, accountId } = await merchantWithEvent('switch-retry', '/switch-retry');
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();
    expect(await d.drain()).toBe(1);
    const [first] = receiver.to('/switch-retry');
    expect(verifiesWith(first!, platformPem())).toBe(true);
    const before = await eventRow(eventId);
    expect(before.signature).toBe(signatureOf(first!));

    const made = await createAccountSigningKey(h.rt, app);
    clock.advance(5_000);
    // The same dispatcher: neither the stored signature nor its own memory of it is sent again.
    expect(await d.drain()).toBe(1);
    const [, retry] = receiver.to('/switch-retry');
    expect(retry!.event!.id).toBe(eventId);
    expect(verifiesWith(retry!, made.publicKeyPem)).toBe(true);
    expect(verifiesWith(retry!, platformPem())).toBe(false);
    // Stored in place of the old one, with the key that made it.
    const row = await eventRow(eventId);
    expect(row.signature).toBe(signatureOf(retry!));
    expect([before.signature_kid, row.signature_kid]).toEqual(['platform', expect.stringMatching(/^acct:[0-9a-f]{16}$/)]);
  });

  it('an account going back to the platform key: its retries are signed with the platform key', async () => {
    receiver.behaviour = failFirst(1);
    const { app, accountId } = await merchantWithEvent('switch-back', '/switch-back');
    const own = await createAccountSigningKey(h.rt, app);
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();
    expect(await d.drain()).toBe(1);
    expect(verifiesWith(receiver.to('/switch-back')[0]!, own.publicKeyPem)).toBe(true);

    expect((await removeAccountSigningKey(h.rt, app)).removed).toBe(true);
    clock.advance(5_000);
    expect(await d.drain()).toBe(1);
    const [, retry] = receiver.to('/switch-back');
    expect(verifiesWith(retry!, platformPem())).toBe(true);
    expect(verifiesWith(retry!, own.publicKeyPem)).toBe(false);
    expect((await eventRow(eventId)).signature_kid).toBe('platform');
  });

  it('a switch made by another process reaches this dispatcher within the signing-key cache TTL', async () => {
    receiver.behaviour = failFirst(2);
    const { app, accountId } = await merchantWithEvent('switch-elsewhere', '/switch-elsewhere');
    await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();
    expect(await d.drain()).toBe(1); // this process now caches "platform key" for the account
    const other = await openRuntime(h.rt.config, { log: pino({ level: 'silent' }), clock });
    let made: { publicKeyPem: string };
    try {
      made = await createAccountSigningKey(other, app);
    } finally {
      await other.close();
    }
    // 5 s later this process still has the platform key for the account (documented: up to the TTL)…
    clock.advance(5_000);
    expect(await d.drain()).toBe(1);
    // …and 10 s after that, past the TTL, the new one.
    clock.advance(10_000);
    expect(SIGNING_KEY_TTL_MS).toBeLessThanOrEqual(15_000);
    expect(await d.drain()).toBe(1);
    const tries = receiver.to('/switch-elsewhere');
    expect(tries).toHaveLength(3);
    expect(verifiesWith(tries[2]!, made.publicKeyPem)).toBe(true);
    expect(verifiesWith(tries[2]!, platformPem())).toBe(false);
  });

  it('a succeeded event resent after --replace, and one recovered after its schedule ran out, are signed with the new key', async () => {
    receiver.behaviour = (r) => (r.path === '/replace-dead' ? { status: 500 } : { status: 200, body: 'ok' });
    const { app, accountId } = await merchantWithEvent('switch-resend', '/replace-ok');
    const { endpoint: dead } = await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/replace-dead') });
    const first = await createAccountSigningKey(h.rt, app);
    const t0 = clock.nowMs();
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    const d = rig.dispatcher();
    // The whole schedule: /replace-ok succeeds at once, /replace-dead fails for good.
    for (const offset of attemptOffsetsMs()) {
      clock.set(t0 + offset);
      await d.drain();
    }
    const [ok] = receiver.to('/replace-ok');
    expect(receiver.to('/replace-ok')).toHaveLength(1);
    expect(verifiesWith(ok!, first.publicKeyPem)).toBe(true);
    const deliveries = await h.rt.store.db.selectFrom('webhook_deliveries').select(['endpoint_id', 'status']).where('event_id', '=', eventId).execute();
    expect(new Map(deliveries.map((r) => [r.endpoint_id, r.status])).get(dead.id)).toBe('failed');

    const second = await createAccountSigningKey(h.rt, app, { replace: true });
    // Resend the event (both deliveries again); then let the dead receiver live and recover it once more.
    expect((await resendEvent(h.rt, null, eventId)).requeued).toBe(2);
    await d.drain();
    const resent = receiver.to('/replace-ok')[1]!;
    expect(resent.event!.id).toBe(eventId);
    expect(verifiesWith(resent, second.publicKeyPem)).toBe(true);
    expect(verifiesWith(resent, first.publicKeyPem)).toBe(false);

    // A fresh dispatcher (no memory of any signature) after the schedule has run out again: recover.
    const t1 = clock.nowMs();
    for (const offset of attemptOffsetsMs()) {
      clock.set(t1 + offset);
      await d.drain();
    }
    await rig.stopDispatchers();
    const third = await createAccountSigningKey(h.rt, app, { replace: true });
    receiver.behaviour = () => ({ status: 200, body: 'ok' });
    expect((await recoverEndpoint(h.rt, dead.id, 0)).requeued).toBe(1);
    expect(await rig.dispatcher().drain()).toBe(1);
    const recovered = receiver.to('/replace-dead').at(-1)!;
    expect(recovered.event!.id).toBe(eventId);
    expect(verifiesWith(recovered, third.publicKeyPem)).toBe(true);
    expect(verifiesWith(recovered, second.publicKeyPem)).toBe(false);
  });

  it('with the key unchanged, retries and resends reuse the stored signature: no RSA signature after the first', async () => {
    receiver.behaviour = failFirst(1);
    const sign = vi.spyOn(SignPool.prototype, 'sign');
    const platformSign = vi.spyOn(h.rt.platformKey, 'sign');
    const signatures = () => sign.mock.calls.length + platformSign.mock.calls.length;
    for (const own of [false, true]) {
      const path = `/unchanged-${own ? 'own' : 'platform'}`;
      const { app, accountId } = await merchantWithEvent(`unchanged-${own}`, path);
      const key = own ? (await createAccountSigningKey(h.rt, app)).publicKeyPem : platformPem();
      const eventId = await emitTestEvent(h.rt, { app, accountId });
      const before = signatures();
      // Each round with a fresh dispatcher: nothing but the stored signature to go on.
      expect(await rig.dispatcher().drain()).toBe(1);
      await rig.stopDispatchers();
      expect(signatures()).toBe(before + 1);
      const stored = await eventRow(eventId);

      clock.advance(5_000);
      expect(await rig.dispatcher().drain()).toBe(1);
      await rig.stopDispatchers();
      // Past the key cache's TTL too: the account's key is read again, found the same.
      clock.advance(SIGNING_KEY_TTL_MS * 2);
      await resendEvent(h.rt, null, eventId);
      expect(await rig.dispatcher().drain()).toBe(1);
      await rig.stopDispatchers();

      const tries = receiver.to(path);
      expect(tries).toHaveLength(3);
      for (const t of tries) {
        expect(signatureOf(t)).toBe(stored.signature);
        expect(verifiesWith(t, key)).toBe(true);
      }
      expect(signatures()).toBe(before + 1);
      expect(await eventRow(eventId)).toEqual(stored);
    }
  });

  it('an event signed before signature_kid existed is signed again once, then its signature is reused', async () => {
    receiver.behaviour = () => ({ status: 200, body: 'ok' });
    const { app, accountId } = await merchantWithEvent('legacy', '/legacy');
    const eventId = await emitTestEvent(h.rt, { app, accountId });
    expect(await rig.dispatcher().drain()).toBe(1);
    await rig.stopDispatchers();
    await h.rt.store.db.updateTable('events').set({ signature_kid: null }).where('id', '=', eventId).execute();
    const sign = vi.spyOn(SignPool.prototype, 'sign');
    const platformSign = vi.spyOn(h.rt.platformKey, 'sign');
    for (let i = 0; i < 2; i++) {
      await resendEvent(h.rt, null, eventId);
      expect(await rig.dispatcher().drain()).toBe(1);
      await rig.stopDispatchers();
    }
    expect(sign.mock.calls.length + platformSign.mock.calls.length).toBe(1);
    expect((await eventRow(eventId)).signature_kid).toBe('platform');
    for (const t of receiver.to('/legacy')) expect(verifiesWith(t, platformPem())).toBe(true);
  });
});
