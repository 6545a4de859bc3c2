import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { isPublicAddress, isTestModeAddress, PRIVATE_DESTINATION, publicOnlyLookup, redactedUrl, testModeLookup } from '../src/webhooks/destination.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, type Receiver } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';

describe('isPublicAddress', () => {
  it.each([
    ['8.8.8.8', true], ['1.1.1.1', true], ['2001:4860:4860::8888', true], ['::ffff:8.8.8.8', true],
    ['127.0.0.1', false], ['127.1.2.3', false], ['10.0.0.1', false], ['172.16.5.4', false], ['192.168.1.1', false],
    ['169.254.169.254', false], ['100.64.0.1', false], ['0.0.0.0', false], ['224.0.0.1', false], ['255.255.255.255', false],
    ['::1', false], ['::', false], ['fe80::1', false], ['fc00::1', false], ['fd12:3456::1', false], ['ff02::1', false],
    ['::ffff:127.0.0.1', false], ['::ffff:169.254.169.254', false], ['::ffff:10.0.0.1', false],
    ['64:ff9b::7f00:1', false], ['2002:7f00:1::1', false], ['2001:db8::1', false], ['not an ip', false], ['', false],
    // IPv4-compatible (deprecated): ipaddr.js calls these unicast; they carry an IPv4 address, refused like the other embeddings.
    ['::7f00:1', false], ['::808:808', false], ['2002:808:808::1', false],
  ])('%s → %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });

  it.each([
    // A developer's own machine and network: allowed in test mode.
    ['127.0.0.1', true], ['::1', true], ['10.0.0.1', true], ['192.168.1.1', true], ['fd12:3456::1', true], ['8.8.8.8', true],
    // The metadata service and the rest of link-local, however the address is written; nothing unspecified or multicast.
    ['169.254.169.254', false], ['169.254.1.1', false], ['::ffff:169.254.169.254', false], ['::a9fe:a9fe', false],
    ['64:ff9b::a9fe:a9fe', false], ['2002:a9fe:a9fe::1', false], ['fe80::1', false], ['fd00:ec2::254', false],
    ['0.0.0.0', false], ['::', false], ['224.0.0.1', false], ['ff02::1', false], ['not an ip', false],
  ])('test mode: %s → %s', (address, expected) => {
    expect(isTestModeAddress(address)).toBe(expected);
  });

  it('the lookup hook refuses a name that resolves to loopback, for one address and for all', async () => {
    const one = await new Promise<NodeJS.ErrnoException | null>((resolve) => publicOnlyLookup('localhost', {}, (err) => resolve(err)));
    expect(one?.code).toBe(PRIVATE_DESTINATION);
    const all = await new Promise<NodeJS.ErrnoException | null>((resolve) => publicOnlyLookup('localhost', { all: true }, (err) => resolve(err)));
    expect(all?.code).toBe(PRIVATE_DESTINATION);
  });

  it('the test-mode lookup hook refuses a name that resolves to the metadata service', async () => {
    const refused = await new Promise<NodeJS.ErrnoException | null>((resolve) => testModeLookup('169.254.169.254', {}, (err) => resolve(err)));
    expect(refused?.code).toBe(PRIVATE_DESTINATION);
    const local = await new Promise<NodeJS.ErrnoException | null>((resolve) => testModeLookup('localhost', {}, (err) => resolve(err)));
    expect(local).toBeNull();
  });

  it('logs URLs without credentials, query or fragment', () => {
    expect(redactedUrl('https://u:p@example.com:8443/hooks/x?token=s3cret#frag')).toBe('https://example.com:8443/hooks/x');
  });

  it('reads --allow-private-webhooks and TIXIAN_ALLOW_PRIVATE_WEBHOOKS (off by default)', () => {
    expect(loadConfig({}, {}).allowPrivateWebhooks).toBe(false);
    expect(loadConfig({}, { TIXIAN_ALLOW_PRIVATE_WEBHOOKS: '1' }).allowPrivateWebhooks).toBe(true);
    expect(loadConfig({}, { TIXIAN_ALLOW_PRIVATE_WEBHOOKS: '0' }).allowPrivateWebhooks).toBe(false);
    expect(loadConfig({ allowPrivateWebhooks: true }, {}).allowPrivateWebhooks).toBe(true);
  });
});

describeEngines('webhook destinations (SSRF)', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let receiver: Receiver;

  beforeAll(async () => {
    rig = await WebhookRig.start(engine, { clock: new ManualClock(Date.UTC(2026, 4, 1)), config: { webhookTimeoutMs: 2_000 } });
    ({ h, receiver } = rig);
  });
  afterEach(() => rig.reset());
  afterAll(() => rig?.close());

  it('refuses live endpoints over http or to non-public addresses when they are configured; test mode keeps them', async () => {
    const { app } = await rig.freshApp('configure');
    const live = (url: string) => upsertEndpoint(h.rt, { app, livemode: true, url });
    for (const url of [
      'http://example.com/hooks', 'https://127.0.0.1/hooks', 'https://10.1.2.3/hooks', 'https://169.254.169.254/latest/meta-data',
      'https://[::1]:8443/hooks', 'https://[::ffff:127.0.0.1]/hooks', 'https://[fd00::1]/hooks', 'https://localhost/hooks', 'https://0.0.0.0/',
    ]) {
      await expect(live(url), url).rejects.toMatchObject({ status: 400, param: 'url', type: 'invalid_request_error' });
    }
    const before = await h.rt.store.db.selectFrom('webhook_endpoints').select('id').where('app', '=', app).execute();
    expect(before).toHaveLength(0);
    expect((await live('https://example.com/hooks')).created).toBe(true);
    expect((await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/test') })).created).toBe(true);
  });

  it('refuses in test mode too an endpoint at a link-local or metadata address; loopback and private ones stay allowed', async () => {
    const { app } = await rig.freshApp('test-metadata');
    const test = (url: string) => upsertEndpoint(h.rt, { app, livemode: false, url });
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/hooks', 'http://[::ffff:169.254.169.254]/', 'http://[fd00:ec2::254]/', 'http://0.0.0.0:8080/']) {
      await expect(test(url), url).rejects.toMatchObject({ status: 400, param: 'url', type: 'invalid_request_error' });
    }
    expect(await h.rt.store.db.selectFrom('webhook_endpoints').select('id').where('app', '=', app).execute()).toHaveLength(0);
    for (const url of ['http://127.0.0.1:9/hooks', 'http://10.1.2.3/hooks', 'http://localhost:9/other']) expect((await test(url)).created, url).toBe(true);
  });

  it('refuses at delivery time a test-mode endpoint at the metadata address (one configured before the rule)', async () => {
    const { app, accountId } = await rig.freshApp('test-metadata-deliver');
    const port = new URL(receiver.url).port;
    const { endpoint } = await upsertEndpoint(h.rt, { app, livemode: false, url: `http://127.0.0.1:${port}/was-local` });
    await h.rt.store.db.updateTable('webhook_endpoints').set({ url: 'http://169.254.169.254/latest/meta-data/' }).where('id', '=', endpoint.id).execute();
    const event = await emitTestEvent(h.rt, { app, accountId, livemode: false });
    expect(await rig.dispatcher().drain()).toBe(1);
    const attempts = await h.rt.store.db.selectFrom('webhook_attempts as a').innerJoin('webhook_deliveries as d', 'd.id', 'a.delivery_id')
      .select(['a.status_code', 'a.response_body', 'a.error']).where('d.event_id', '=', event).execute();
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ status_code: null, response_body: null });
    expect(attempts[0]!.error).toContain(PRIVATE_DESTINATION);
  });

  it('refuses at delivery time a live endpoint whose name resolves to loopback, or an IP literal; test mode and an allowing operator deliver', async () => {
    const { app, accountId } = await rig.freshApp('deliver');
    receiver.behaviour = () => ({ status: 200, body: 'secret internal answer' });
    const port = new URL(receiver.url).port;
    // Endpoints that passed configuration before their name pointed inward (or written before the rule).
    const byName = await upsertEndpoint(h.rt, { app, livemode: false, url: `http://localhost:${port}/by-name` });
    const byLiteral = await upsertEndpoint(h.rt, { app, livemode: false, url: `http://127.0.0.1:${port}/by-literal` });
    await h.rt.store.db.updateTable('webhook_endpoints').set({ livemode: 1 }).where('id', 'in', [byName.endpoint.id, byLiteral.endpoint.id]).execute();
    await upsertEndpoint(h.rt, { app, livemode: false, url: receiver.urlFor('/test-mode') });

    const liveEvent = await emitTestEvent(h.rt, { app, accountId, livemode: true });
    const testEvent = await emitTestEvent(h.rt, { app, accountId, livemode: false });
    expect(await rig.dispatcher().drain()).toBe(3);
    expect(receiver.to('/by-name')).toHaveLength(0);
    expect(receiver.to('/by-literal')).toHaveLength(0);
    expect(receiver.to('/test-mode').map((r) => r.event!.id)).toEqual([testEvent]);

    const attempts = await h.rt.store.db
      .selectFrom('webhook_attempts as a')
      .innerJoin('webhook_deliveries as d', 'd.id', 'a.delivery_id')
      .select(['d.endpoint_id', 'a.status_code', 'a.response_body', 'a.error'])
      .where('d.event_id', '=', liveEvent)
      .execute();
    expect(attempts).toHaveLength(2);
    for (const a of attempts) {
      expect(a).toMatchObject({ status_code: null, response_body: null });
      expect(a.error).toContain(PRIVATE_DESTINATION);
    }

    // The operator allows private destinations: the same deliveries go out.
    const { clock } = h.rt as unknown as { clock: ManualClock };
    clock.advance(5_000);
    expect(await rig.dispatcher({ allowPrivate: true }).drain()).toBe(2);
    expect(receiver.to('/by-name')).toHaveLength(1);
    expect(receiver.to('/by-literal')).toHaveLength(1);
  });
});
