import { createRequire } from 'node:module';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { ApiError } from '../src/domain/errors.ts';
import type { CreatedApp } from '../src/services/accounts.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { asUsageError, UsageError } from '../src/cli/shared.ts';
import { listEndpoints, MAX_URL_LENGTH, removeEndpoint, upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { MAX_ENDPOINTS_PER_APP_MODE } from '../src/webhooks/outbox.ts';
import { recoverEndpoint, resendEvent } from '../src/webhooks/events.ts';
import type { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';
import { attemptOffsetsMs } from '../src/webhooks/schedule.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, verifyPingppSignature, type Receiver } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';
import { runCli } from './helpers/cli.ts';
import { orderNo, seedExtra } from './helpers/withdrawals.ts';

const require = createRequire(import.meta.url);
// The official Ping++ Node SDK, unchanged, as a merchant would use it.
const Pingpp = require('pingpp') as (key: string) => any; // eslint-disable-line @typescript-eslint/no-explicit-any

describeEngines('events and webhook endpoints', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;
  let port: number;
  let d: WebhookDispatcher;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 2, 1, 0, 0, 0));
    // Live endpoints here are loopback receivers over http: the operator allows that (webhooks-ssrf.test.ts checks the default).
    rig = await WebhookRig.start(engine, { clock, config: { webhookTimeoutMs: 2_000, sandboxDelayMs: 0, allowPrivateWebhooks: true } });
    ({ h, receiver } = rig);
    port = Number(new URL(await h.app.listen({ port: 0, host: '127.0.0.1' })).port);
    d = rig.fileDispatcher();
  });
  afterEach(() => rig.reset({ behaviour: () => ({ status: 200 }) }));
  afterAll(() => rig?.close());

  const emit = (m: CreatedApp, extra: Partial<Parameters<typeof emitTestEvent>[1]> = {}) =>
    emitTestEvent(h.rt, { app: m.id, accountId: m.account, ...extra });
  const ids = (list: { data: { id: string }[] }) => list.data.map((e) => e.id);

  describe('GET /v1/events/{id}', () => {
    it("answers the key's own event, with the current pending_webhooks", async () => {
      const m = await rig.newMerchant('retrieve');
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/retrieve') });
      const id = await emit(m, { request: 'iar_abc' });
      const before = await h.request('GET', `/v1/events/${id}`, { key: m.secret_key_test });
      expect(before.status).toBe(200);
      expect(before.json).toMatchObject({ id, object: 'event', livemode: false, type: 'balance.withdrawal.succeeded', pending_webhooks: 1, request: 'iar_abc', scope: m.id, acct_id: m.account });
      expect(before.json.data.object.object).toBe('withdrawal');
      await d.drain();
      // The Node SDK sends a trailing "?".
      const after = await h.request('GET', `/v1/events/${id}?`, { key: m.secret_key_test, headers: { 'user-agent': 'Pingpp/v1 NodeBindings/2.1.6' } });
      expect(after.status).toBe(200);
      expect(after.json.pending_webhooks).toBe(0);
      // Through the official SDK over a real socket.
      const sdk = Pingpp(m.secret_key_test!);
      sdk.setHost('127.0.0.1', port, 'http');
      expect(await sdk.events.retrieve(id)).toMatchObject({ id, object: 'event', pending_webhooks: 0 });
    });

    it("answers 404 param id for another account's event, another mode's, and an unknown id", async () => {
      const m = await rig.newMerchant('owner');
      const other = await rig.newMerchant('stranger');
      const id = await emit(m);
      const live = await emit(m, { livemode: true });
      for (const [key, eventId] of [[other.secret_key_test, id], [m.secret_key_live, id], [m.secret_key_test, live], [m.secret_key_test, 'evt_000000000000000000000000']] as const) {
        const res = await h.request('GET', `/v1/events/${eventId}`, { key });
        expect(res.status).toBe(404);
        expect(res.json.error).toMatchObject({ type: 'invalid_request_error', param: 'id', message: `未找到 event : ${eventId}。` });
      }
      expect((await h.request('GET', `/v1/events/${live}`, { key: m.secret_key_live })).json.livemode).toBe(true);
    });
  });

  describe('GET /v1/events', () => {
    it('lists newest first with type, created, delivery_success filters and both pagination schemes', async () => {
      const m = await rig.newMerchant('list');
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/list') });
      receiver.behaviour = (r) => ({ status: r.event?.type === 'balance.withdrawal.failed' ? 500 : 200 });
      const t = Math.floor(clock.nowMs() / 1000);
      const e1 = await emit(m);
      clock.advance(10_000);
      const e2 = await emit(m, { type: 'balance.withdrawal.failed' });
      clock.advance(10_000);
      const e3 = await emit(m);
      const e4 = await emit(m); // same second as e3: the time-ordered id keeps it newer
      const live = await emit(m, { livemode: true });
      await emit(await rig.newMerchant('list-other'));
      await d.drain();
      const get = async (query: string) => {
        const res = await h.request('GET', `/v1/events${query}`, { key: m.secret_key_test });
        expect(res.status, res.body).toBe(200);
        return res.json as { object: string; url: string; has_more: boolean; data: { id: string }[] };
      };

      const all = await get('');
      expect(all).toMatchObject({ object: 'list', url: '/v1/events', has_more: false });
      expect(ids(all)).toEqual([e4, e3, e2, e1]);
      expect(ids(await get('?type=balance.withdrawal.failed'))).toEqual([e2]);
      expect(ids(await get(`?created%5Bgte%5D=${t + 10}`))).toEqual([e4, e3, e2]);
      expect(ids(await get(`?created[lt]=${t + 20}`))).toEqual([e2, e1]);
      expect(ids(await get(`?created[gt]=${t}&created[lte]=${t + 10}`))).toEqual([e2]);
      expect(ids(await get('?delivery_success=false'))).toEqual([e2]);
      expect(ids(await get('?delivery_success=true'))).toEqual([e4, e3, e1]);

      const c1 = await get('?limit=2');
      expect(ids(c1)).toEqual([e4, e3]);
      expect(c1.has_more).toBe(true);
      const c2 = await get(`?limit=2&starting_after=${e3}`);
      expect(ids(c2)).toEqual([e2, e1]);
      expect(c2.has_more).toBe(false);
      expect(ids(await get(`?limit=1&ending_before=${e2}`))).toEqual([e3]);
      const p2 = await get('?page=2&per_page=3');
      expect(ids(p2)).toEqual([e1]);
      expect(p2.has_more).toBe(false);

      const liveList = await h.request('GET', '/v1/events', { key: m.secret_key_live });
      expect(ids(liveList.json as { data: { id: string }[] })).toEqual([live]);
      for (const bad of ['?limit=0', '?per_page=101', '?delivery_success=maybe', '?starting_after=evt_nope&limit=1']) {
        const res = await h.request('GET', `/v1/events${bad}`, { key: m.secret_key_test });
        expect(res.status, bad).toBe(400);
        expect(res.json.error.type).toBe('invalid_request_error');
      }
    });
  });

  describe('GET /v1/events cursors under changing filters', () => {
    it('pages on with delivery_success=false after the cursor event was delivered meanwhile', async () => {
      const m = await rig.newMerchant('cursor');
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/cursor') });
      const failing = new Set<string>();
      receiver.behaviour = (r) => ({ status: r.event && failing.has(r.event.id) ? 500 : 200 });
      const e1 = await emit(m);
      clock.advance(1_000);
      const e2 = await emit(m);
      clock.advance(1_000);
      const e3 = await emit(m);
      for (const id of [e1, e2, e3]) failing.add(id);
      await d.drain();
      const get = async (query: string) => {
        const res = await h.request('GET', `/v1/events${query}`, { key: m.secret_key_test });
        expect(res.status, `${query}: ${res.body}`).toBe(200);
        return res.json as { has_more: boolean; data: { id: string }[] };
      };
      const first = await get('?delivery_success=false&limit=2');
      expect(ids(first)).toEqual([e3, e2]);
      expect(first.has_more).toBe(true);

      // The cursor event's delivery succeeds before the next page is asked for.
      failing.delete(e2);
      clock.advance(5_000);
      await d.drain();
      expect(ids(await get('?delivery_success=false'))).toEqual([e3, e1]);
      const next = await get(`?delivery_success=false&limit=2&starting_after=${e2}`);
      expect(ids(next)).toEqual([e1]);
      expect(next.has_more).toBe(false);
      expect(ids(await get(`?delivery_success=false&limit=2&ending_before=${e2}`))).toEqual([e3]);
      expect(ids(await get(`?delivery_success=true&limit=2&starting_after=${e3}`))).toEqual([e2]);
      // A cursor outside the type filter still marks a place in the list.
      expect(ids(await get(`?type=balance.withdrawal.failed&limit=2&starting_after=${e2}`))).toEqual([]);
      // A cursor outside the key's account and mode is still refused.
      const stranger = await emit(await rig.newMerchant('cursor-other'));
      const refused = await h.request('GET', `/v1/events?delivery_success=false&limit=2&starting_after=${stranger}`, { key: m.secret_key_test });
      expect(refused.status).toBe(400);
      expect(refused.json.error.param).toBe('starting_after');
    });
  });

  describe('resend and recover', () => {
    it('POST /v1/events/{id}/resend sends a delivered event again: same id, same bytes, pending_webhooks back up', async () => {
      const m = await rig.newMerchant('resend');
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/resend') });
      const id = await emit(m);
      await d.drain();
      const res = await h.request('POST', `/v1/events/${id}/resend`, { key: m.secret_key_test });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ id, object: 'event', pending_webhooks: 1 });
      expect(await d.drain()).toBe(1);
      const got = receiver.to('/resend');
      expect(got).toHaveLength(2);
      expect(got[1]!.rawBody.equals(got[0]!.rawBody)).toBe(true);
      expect(got[1]!.headers['x-pingplusplus-signature']).toBe(got[0]!.headers['x-pingplusplus-signature']);
      expect((await h.request('GET', `/v1/events/${id}`, { key: m.secret_key_test })).json.pending_webhooks).toBe(0);
      // All tries stay on record.
      const [delivery] = await h.rt.store.db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', id).execute();
      expect(await h.rt.store.db.selectFrom('webhook_attempts').select('id').where('delivery_id', '=', delivery!.id).execute()).toHaveLength(2);

      const foreign = await rig.newMerchant('resend-other');
      expect((await h.request('POST', `/v1/events/${id}/resend`, { key: foreign.secret_key_test })).status).toBe(404);
      expect((await h.request('POST', `/v1/events/${id}/resend`, { key: m.secret_key_live })).status).toBe(404);
    });

    it('resend of an event that had no endpoint delivers it to the endpoints subscribed now', async () => {
      const m = await rig.newMerchant('late');
      const id = await emit(m);
      expect(await d.drain()).toBe(0);
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/late') });
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/late-failed-only'), events: ['balance.withdrawal.failed'] });
      const res = await h.request('POST', `/v1/events/${id}/resend`, { key: m.secret_key_test });
      expect(res.json.pending_webhooks).toBe(1);
      await d.drain();
      expect(receiver.to('/late').map((r) => r.event!.id)).toEqual([id]);
      expect(receiver.to('/late-failed-only')).toHaveLength(0);
    });

    it('resend after every endpoint the event went to was removed delivers it to the endpoints subscribed now', async () => {
      const m = await rig.newMerchant('moved');
      const { endpoint: old } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/moved-old') });
      const id = await emit(m);
      await d.drain();
      await removeEndpoint(h.rt, m.id, old.id);
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/moved-new') });
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/moved-failed-only'), events: ['balance.withdrawal.failed'] });
      const res = await h.request('POST', `/v1/events/${id}/resend`, { key: m.secret_key_test });
      expect(res.status).toBe(200);
      expect(res.json.pending_webhooks).toBe(1);
      expect(await d.drain()).toBe(1);
      expect(receiver.to('/moved-new').map((r) => r.event!.id)).toEqual([id]);
      expect(receiver.to('/moved-old')).toHaveLength(1);
      expect(receiver.to('/moved-failed-only')).toHaveLength(0);
      // Resent again: the new endpoint's delivery is re-queued, not duplicated.
      expect((await resendEvent(h.rt, null, id)).requeued).toBe(1);
      expect(await d.drain()).toBe(1);
      expect(receiver.to('/moved-new')).toHaveLength(2);
      expect(await h.rt.store.db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', id).execute()).toHaveLength(2);
    });

    it('concurrent resends of an event that had no endpoint queue one delivery per endpoint, not one each', async () => {
      const m = await rig.newMerchant('race');
      const events: string[] = [];
      for (let i = 0; i < 5; i++) events.push(await emit(m));
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/race') });
      for (const id of events) {
        await Promise.all(Array.from({ length: 4 }, () => resendEvent(h.rt, { accountId: m.account, livemode: false }, id)));
        const deliveries = await h.rt.store.db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', id).execute();
        expect(deliveries, id).toHaveLength(1);
        expect((await h.request('GET', `/v1/events/${id}`, { key: m.secret_key_test })).json.pending_webhooks).toBe(1);
      }
      await d.drain();
      expect(receiver.to('/race').map((r) => r.event!.id).sort()).toEqual([...events].sort());
    });

    it('recover re-queues the deliveries to one endpoint that failed for good since a time', async () => {
      const m = await rig.newMerchant('recover');
      const { endpoint } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/recover') });
      receiver.behaviour = () => ({ status: 500 });
      const old = await emit(m);
      clock.advance(60_000);
      const since = Math.floor(clock.nowMs() / 1000);
      const recent = [await emit(m), await emit(m)];
      const start = clock.nowMs() - 60_000;
      for (const offset of attemptOffsetsMs()) {
        clock.set(Math.max(clock.nowMs(), start + offset + 60_000));
        await d.drain();
      }
      const statuses = await h.rt.store.db.selectFrom('webhook_deliveries').select('status').where('endpoint_id', '=', endpoint.id).execute();
      expect(statuses.map((s) => s.status)).toEqual(['failed', 'failed', 'failed']);

      receiver.behaviour = () => ({ status: 200 });
      const before = receiver.to('/recover').length;
      expect(await recoverEndpoint(h.rt, endpoint.id, since)).toEqual({ requeued: 2, complete: true });
      for (const id of recent) expect((await h.request('GET', `/v1/events/${id}`, { key: m.secret_key_test })).json.pending_webhooks).toBe(1);
      await d.drain();
      expect(receiver.to('/recover').slice(before).map((r) => r.event!.id).sort()).toEqual([...recent].sort());
      expect((await h.request('GET', `/v1/events/${old}`, { key: m.secret_key_test })).json.pending_webhooks).toBe(0);
      const failed = await h.request('GET', '/v1/events?delivery_success=false', { key: m.secret_key_test });
      expect(ids(failed.json as { data: { id: string }[] })).toEqual([old]);
      await expect(recoverEndpoint(h.rt, 'we_nope', 0)).rejects.toMatchObject({ status: 404 });
    });
  });

  describe('endpoints', () => {
    it('validates URLs and event types, bounds the count, and updates the endpoint with the same URL', async () => {
      const m = await rig.newMerchant('endpoints');
      const bad = async (input: Partial<Parameters<typeof upsertEndpoint>[1]>, param: string) => {
        const err = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: 'https://example.com/hook', ...input }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).param).toBe(param);
      };
      await bad({ url: 'ftp://example.com/hook' }, 'url');
      await bad({ url: 'example.com/hook' }, 'url');
      await bad({ url: '' }, 'url');
      await bad({ url: 'https://user:pw@example.com/hook' }, 'url');
      await bad({ url: 'https://example.com/' + 'a'.repeat(MAX_URL_LENGTH) }, 'url');
      await bad({ events: ['charge.succeeded'] }, 'events');
      await bad({ events: [] }, 'events');
      await bad({ app: 'app_doesnotexist0000' }, 'app');
      const longest = 'https://example.com/' + 'a'.repeat(MAX_URL_LENGTH - 'https://example.com/'.length);
      expect((await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: longest })).created).toBe(true);

      const first = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: 'https://example.com/a' });
      expect(first.endpoint).toMatchObject({ object: 'webhook_endpoint', events: ['balance.withdrawal.succeeded', 'balance.withdrawal.failed'], standard_webhooks: false });
      expect(first.endpoint.id).toMatch(/^we_/);
      const again = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: 'https://example.com/a', events: ['balance.withdrawal.failed'], standardWebhooks: true });
      expect(again).toMatchObject({ created: false, endpoint: { id: first.endpoint.id, events: ['balance.withdrawal.failed'], standard_webhooks: true } });
      const kept = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: 'https://example.com/a' });
      expect(kept.endpoint).toMatchObject({ events: ['balance.withdrawal.failed'], standard_webhooks: true, secret: again.endpoint.secret });

      for (let i = 2; i < MAX_ENDPOINTS_PER_APP_MODE; i++) await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: `https://example.com/${i}` });
      await bad({ url: 'https://example.com/one-too-many' }, 'url');
      // The bound is per mode.
      expect((await upsertEndpoint(h.rt, { app: m.id, livemode: true, url: 'https://example.com/live' })).created).toBe(true);
      expect(await listEndpoints(h.rt, m.id, { livemode: false })).toHaveLength(MAX_ENDPOINTS_PER_APP_MODE);
      expect((await listEndpoints(h.rt, m.id)).filter((e) => e.secret !== undefined)).toHaveLength(0);
    });

    it('delivers only subscribed types; removing an endpoint cancels what waits for it', async () => {
      const m = await rig.newMerchant('remove');
      const all = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/all') });
      await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/failed-only'), events: ['balance.withdrawal.failed'] });
      await upsertEndpoint(h.rt, { app: m.id, livemode: true, url: receiver.urlFor('/live') });
      receiver.behaviour = (r) => ({ status: r.path === '/all' ? 500 : 200 });
      const succeeded = await emit(m);
      const failed = await emit(m, { type: 'balance.withdrawal.failed' });
      await d.drain();
      expect(receiver.to('/failed-only').map((r) => r.event!.id)).toEqual([failed]);
      expect(receiver.to('/live')).toHaveLength(0);
      expect(receiver.to('/all')).toHaveLength(2);

      const { canceledDeliveries } = await removeEndpoint(h.rt, m.id, all.endpoint.id);
      expect(canceledDeliveries).toBe(2);
      for (const id of [succeeded, failed]) expect((await h.request('GET', `/v1/events/${id}`, { key: m.secret_key_test })).json.pending_webhooks).toBe(0);
      clock.advance(3600_000);
      const later = await emit(m);
      await d.drain();
      expect(receiver.to('/all')).toHaveLength(2);
      expect((await h.request('GET', `/v1/events/${later}`, { key: m.secret_key_test })).json.pending_webhooks).toBe(0);
      await expect(removeEndpoint(h.rt, m.id, all.endpoint.id)).rejects.toMatchObject({ status: 404 });
    });
  });

  it.runIf(engine === 'postgres')('removing an endpoint while another process records one of its deliveries takes that delivery out of pending_webhooks once', async () => {
    const m = await rig.newMerchant('remove-race');
    const gone = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/gone') });
    await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/stays') });
    const event = await emit(m);
    const delivery = await h.rt.store.db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', event).where('endpoint_id', '=', gone.endpoint.id).executeTakeFirstOrThrow();
    const pending = async () => (await h.request('GET', `/v1/events/${event}`, { key: m.secret_key_test })).json.pending_webhooks;
    expect(await pending()).toBe(2);
    // Another process records that delivery as done (its row and the event's count), not yet committed.
    const other = new pg.Client({ connectionString: h.rt.config.databaseUrl });
    const watcher = new pg.Client({ connectionString: h.rt.config.databaseUrl });
    await other.connect();
    await watcher.connect();
    try {
      await other.query('BEGIN');
      await other.query(`UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_ms = NULL, lease_ms = NULL WHERE id = $1`, [delivery.id]);
      await other.query('UPDATE events SET pending_webhooks = pending_webhooks - 1 WHERE id = $1', [event]);
      const removed = removeEndpoint(h.rt, m.id, gone.endpoint.id);
      // The removal waits on the other's row locks…
      await vi.waitFor(async () => expect((await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows.length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
      await other.query('COMMIT');
      // …and then finds that delivery done: nothing of it to cancel, the count not taken down twice.
      expect(await removed).toEqual({ canceledDeliveries: 0 });
    } finally {
      await other.end();
      await watcher.end();
    }
    expect(await pending()).toBe(1); // the other endpoint's delivery still waits
  });

  describe('CLI', () => {
    const cli = (...args: string[]) => runCli(h, ...args);

    it('apps update --webhook-url, apps webhooks list/remove, events resend/recover', async () => {
      vi.stubEnv('TIXIAN_ALLOW_PRIVATE_WEBHOOKS', '1');
      onTestFinished(() => void vi.unstubAllEnvs());
      const m = await rig.newMerchant('cli');
      const added = await cli('apps', 'update', m.id, '--webhook-url', receiver.urlFor('/cli'), '--mode', 'live', '--events', 'balance.withdrawal.failed', '--standard-webhooks');
      expect(added.code, added.err.join('')).toBe(0);
      const id = /webhook endpoint added: (we_\w+) {2}live /.exec(added.out[0]!)?.[1];
      expect(id).toBeDefined();
      expect(added.out[1]).toMatch(/standard webhooks secret: whsec_/);
      const plain = await cli('apps', 'update', m.id, '--webhook-url', receiver.urlFor('/cli-test'));
      expect(plain.out[0]).toMatch(/added: we_\w+ {2}test .*events: balance\.withdrawal\.succeeded,balance\.withdrawal\.failed$/);
      expect(plain.out).toHaveLength(1);

      const listed = await cli('apps', 'webhooks', 'list', m.id, '--json');
      const endpoints = JSON.parse(listed.out.join('\n')) as { id: string; livemode: boolean; url: string; secret?: string }[];
      expect(endpoints.map((e) => [e.livemode, e.url])).toEqual([[false, receiver.urlFor('/cli-test')], [true, receiver.urlFor('/cli')]]);
      expect(endpoints[1]!.secret).toMatch(/^whsec_/);
      expect((await cli('apps', 'webhooks', 'list', m.id)).out).toHaveLength(2);

      const badType = await cli('apps', 'update', m.id, '--webhook-url', receiver.urlFor('/x'), '--events', 'nope');
      expect(badType.code).toBe(2);
      expect(badType.err.join('')).toMatch(/unknown event type nope/);
      expect((await cli('apps', 'update', m.id, '--events', 'balance.withdrawal.failed')).code).toBe(2);

      const eventId = await emit(m, { livemode: true, type: 'balance.withdrawal.failed' });
      await d.drain();
      const resent = await cli('events', 'resend', eventId);
      expect(resent.out).toEqual([`event ${eventId}: 1 deliveries queued`]);
      // The CLI runs on the system clock: catch the test clock up with it.
      clock.set(Math.max(clock.nowMs(), Date.now()));
      await d.drain();
      expect(receiver.to('/cli').map((r) => r.event!.id)).toEqual([eventId, eventId]);
      expect((await cli('events', 'resend', 'evt_unknown')).code).toBe(2);

      const recovered = await cli('events', 'recover', '--endpoint', id!, '--since', '0');
      expect(recovered.out).toEqual([`endpoint ${id}: 0 failed deliveries queued again`]);
      expect((await cli('events', 'recover', '--endpoint', id!, '--since', 'yesterday')).code).toBe(2);

      const removed = await cli('apps', 'webhooks', 'remove', m.id, id!);
      expect(removed.out[0]).toMatch(/removed webhook endpoint/);
      expect((await listEndpoints(h.rt, m.id)).map((e) => e.url)).toEqual([receiver.urlFor('/cli-test')]);
      expect((await cli('apps', 'webhooks', 'remove', m.id, id!)).code).toBe(2);
      // An unknown app is refused by the service itself, as a usage error.
      const noApp = await cli('apps', 'webhooks', 'remove', 'app_doesnotexist0000', id!);
      expect(noApp.code).toBe(2);
      expect(noApp.err.join('')).toMatch(/^tixian: No such app: app_doesnotexist0000/);
      const noAppList = await cli('apps', 'webhooks', 'list', 'app_doesnotexist0000');
      expect(noAppList.code).toBe(2);
      expect(noAppList.err.join('')).toMatch(/no such app: app_doesnotexist0000/);
    });
  });

  describe('end to end with the official SDK and a sandbox withdrawal', () => {
    it('a confirmed withdrawal reaches the receiver as a signed balance.withdrawal.succeeded / failed event', async () => {
      await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url: receiver.urlFor('/e2e') });
      const sdk = Pingpp(h.testKey);
      sdk.setHost('127.0.0.1', port, 'http');
      await sdk.users.create(h.appId, { id: 'e2e_user' });
      await h.fund('e2e_user', 10_000);
      const worker = new PayoutWorker(h.rt);
      const outcomes: [string, string][] = [];
      for (const [payee, type] of [['13800000001', 'balance.withdrawal.succeeded'], ['13800000002', 'balance.withdrawal.failed']] as const) {
        const w = await sdk.withdrawals.create(h.appId, { user: 'e2e_user', amount: 1000, channel: 'alipay', order_no: orderNo(), description: 'e2e', extra: seedExtra('alipay', payee) });
        await sdk.withdrawals.confirm(h.appId, w.id);
        for (let round = 0; round < 20 && (await sdk.withdrawals.retrieve(h.appId, w.id)).status === 'pending'; round++) await worker.runOnce();
        await d.drain();
        const got = receiver.to('/e2e').find((r) => (r.event?.data as { object: { id: string } } | undefined)?.object.id === w.id);
        expect(got, `no event for ${w.id}`).toBeDefined();
        expect(verifyPingppSignature(got!.rawBody, got!.headers['x-pingplusplus-signature'] as string, h.rt.platformKey.publicKeyPem)).toBe(true);
        expect(got!.event).toMatchObject({ type, object: 'event', scope: h.appId, acct_id: h.merchant.account, data: { object: { object: 'withdrawal', id: w.id } } });
        const event = await sdk.events.retrieve(got!.event!.id);
        expect(event).toMatchObject({ id: got!.event!.id, type, pending_webhooks: 0 });
        outcomes.push([w.id, event.data.object.status]);
      }
      expect(outcomes.map(([, s]) => s)).toEqual(['succeeded', 'failed']);
    });
  });
});

describe('CLI error mapping', () => {
  it("prints a service's refusal as a usage error, but not a server-side failure", () => {
    const refusal = new ApiError({ status: 404, zh: '未找到', en: 'No such event: evt_x.' });
    expect(asUsageError(refusal)).toBeInstanceOf(UsageError);
    expect(asUsageError(refusal)!.message).toBe('No such event: evt_x.');
    expect(asUsageError(new ApiError({ status: 502, type: 'channel_error', zh: '渠道错误', en: 'Channel error.' }))).toBeNull();
    expect(asUsageError(new Error('connection refused'))).toBeNull();
    const usage = new UsageError('bad flag');
    expect(asUsageError(usage)).toBe(usage);
  });
});
