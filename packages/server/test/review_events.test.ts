import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { removeEndpoint, upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { pruneHistory } from '../src/store/prune.ts';
import type { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';
import { describeEngines, type Harness } from './helpers/harness.ts';
import { emitTestEvent, type Receiver } from './helpers/receiver.ts';
import { WebhookRig } from './helpers/webhooks.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/** Review of events and webhook endpoints: what each test pins is in its name. */
describeEngines('review: events', (engine) => {
  let rig: WebhookRig;
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;
  let d: WebhookDispatcher;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 2, 1, 0, 0, 0));
    rig = await WebhookRig.start(engine, { clock, config: { webhookTimeoutMs: 2_000, sandboxDelayMs: 0 } });
    ({ h, receiver } = rig);
    d = rig.fileDispatcher();
  });
  afterEach(() => rig.reset({ behaviour: () => ({ status: 200 }) }));
  afterAll(() => rig?.close());

  const events = (eventIds: string[]) => h.rt.store.db.selectFrom('events').select('id').where('id', 'in', eventIds).execute();
  const deliveries = (eventIds: string[]) => h.rt.store.db.selectFrom('webhook_deliveries').select(['id', 'status']).where('event_id', 'in', eventIds).execute();

  it('prune deletes the history of events whose deliveries were canceled by removing their endpoint', async () => {
    const m = await rig.newMerchant('prune-canceled');
    const { endpoint: gone } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/prune-gone') });
    const { endpoint: stays } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/prune-stays') });
    receiver.behaviour = (r) => ({ status: r.path === '/prune-stays' ? 200 : 500 });
    // Delivered to one endpoint; the dead one's delivery waits for its next try when that endpoint is removed.
    const done = await emitTestEvent(h.rt, { app: m.id, accountId: m.account });
    await d.drain();
    await removeEndpoint(h.rt, m.id, stays.id);
    // Still waiting for the other (now the only) endpoint: kept, whatever the removal did to its neighbour.
    const { endpoint: again } = await upsertEndpoint(h.rt, { app: m.id, livemode: false, url: receiver.urlFor('/prune-again') });
    const open = await emitTestEvent(h.rt, { app: m.id, accountId: m.account });
    expect((await removeEndpoint(h.rt, m.id, gone.id)).canceledDeliveries).toBe(2);
    expect((await deliveries([done])).map((x) => x.status).sort()).toEqual(['canceled', 'succeeded']);

    clock.advance(86_400_000);
    await pruneHistory(h.rt.store, clock.nowMs());
    // Every delivery of `done` is final (one succeeded, one canceled): it goes, with its deliveries.
    expect(await events([done])).toHaveLength(0);
    expect(await deliveries([done])).toHaveLength(0);
    // `open` still has a delivery waiting for an endpoint that exists: kept whole.
    expect(await events([open])).toHaveLength(1);
    expect((await deliveries([open])).map((x) => x.status).sort()).toEqual(['canceled', 'pending']);
    await removeEndpoint(h.rt, m.id, again.id);
  });

  it('each final withdrawal emits one event whose data.object is the withdrawal exactly as the API shows it', async () => {
    await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url: receiver.urlFor('/shape') });
    await h.createUser('shape_user');
    await h.fund('shape_user', 100_000);
    const sa = await h.request('POST', h.appPath('/users/shape_user/settle_accounts'), {
      body: { channel: 'bank_account', recipient: { account: sandboxPayee('unionpay', ''), name: '张三哥', type: 'b2c', open_bank_code: '0308', open_bank: '招商银行', card_type: 0 } },
    });
    expect(sa.status, sa.body).toBe(200);
    const create = async (body: Record<string, unknown>) => {
      const res = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'shape_user', amount: 1000, order_no: orderNo(), description: 'd', metadata: { k: 'v' }, ...body } });
      expect(res.status, res.body).toBe(200);
      return res.json.id as string;
    };
    const paid = await create({ settle_account: sa.json.id });
    const refused = await create({ channel: 'alipay', extra: seedExtra('alipay', sandboxPayee('alipay', '0002')), user_fee: 5 });
    const merchantsFault = await create({ channel: 'alipay', extra: seedExtra('alipay', sandboxPayee('alipay', '0003')) });
    const worker = new PayoutWorker(h.rt);
    for (const id of [paid, refused, merchantsFault]) expect((await h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })).status).toBe(200);
    for (let i = 0; i < 10; i++) await worker.runOnce();
    // Back to `created` through no fault of the user: canceled by the merchant, still no event.
    expect((await h.request('PUT', h.appPath(`/withdrawals/${merchantsFault}`), { body: { status: 'canceled' } })).json.status).toBe('canceled');
    await d.drain();
    const rows = await h.rt.store.db.selectFrom('events').select(['body', 'type']).where('app', '=', h.appId).execute();
    const of = (id: string) => rows.filter((e) => (JSON.parse(e.body) as { data: { object: { id: string } } }).data.object.id === id);
    for (const [id, type] of [[paid, 'balance.withdrawal.succeeded'], [refused, 'balance.withdrawal.failed']] as const) {
      const [event, ...more] = of(id);
      expect(more).toHaveLength(0);
      expect(event!.type).toBe(type);
      expect(JSON.parse(event!.body).data.object).toEqual((await h.request('GET', h.appPath(`/withdrawals/${id}`))).json);
    }
    expect(of(merchantsFault)).toHaveLength(0);
    expect(receiver.to('/shape')).toHaveLength(2);
  });
});
