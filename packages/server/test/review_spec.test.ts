import { afterAll, beforeAll, expect, it } from 'vitest';
import { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

/** Spec-conformance review (pingpp-api.md against what tixian answers): what each test pins is in its name. */
describeEngines('review: spec conformance', (engine) => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { sandboxDelayMs: 0 } });
    await h.createUser('spec_user');
    await h.fund('spec_user', 100_000);
  });
  afterAll(async () => h?.close());

  const withdraw = async (payee = '') => {
    const res = await h.request('POST', h.appPath('/withdrawals'), {
      body: { user: 'spec_user', amount: 1000, user_fee: 0, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', sandboxPayee('alipay', payee as '')) },
    });
    expect(res.status, res.body).toBe(200);
    return res.json.id as string;
  };

  it("lists batch withdrawals with the C# SDK example's parameters (page=1, per_page=15, status=created): a status no batch has matches nothing, it is not a 400", async () => {
    // pingpp-csharp Example/BatchWithdrawalDemo.cs, and pingpp-go's batchWithdrawDemo.go comment, name
    // withdrawal statuses (created, pending, succeeded, failed, canceled) for this filter (spec §7.3).
    const batch = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [await withdraw()] } });
    expect(batch.status, batch.body).toBe(200);
    expect(batch.json.status).toBe('pending');

    const created = await h.request('GET', h.appPath('/batch_withdrawals?page=1&per_page=15&status=created'));
    expect(created.status, created.body).toBe(200);
    expect(created.json).toEqual({ object: 'list', url: h.appPath('/batch_withdrawals'), has_more: false, data: [] });

    // The batch statuses still filter as before.
    const pending = await h.request('GET', h.appPath('/batch_withdrawals?page=1&per_page=15&status=pending'));
    expect(pending.status, pending.body).toBe(200);
    expect(pending.json.data.map((b: { id: string }) => b.id)).toEqual([batch.json.id]);
    // And a value that is no status at all is still refused.
    const junk = await h.request('GET', h.appPath('/batch_withdrawals?status=done'));
    expect(junk.status).toBe(400);
    expect(junk.json.error.param).toBe('status');
  });

  it("documents an event's `scope` as what the API sends: the app the event belongs to (§13.1), not the account", async () => {
    const id = await withdraw();
    expect((await h.request('PUT', h.appPath(`/withdrawals/${id}`), { body: { status: 'pending' } })).status).toBe(200);
    const worker = new PayoutWorker(h.rt);
    for (let i = 0; i < 5; i++) await worker.runOnce();
    const list = await h.request('GET', '/v1/events?type=balance.withdrawal.succeeded');
    expect(list.status, list.body).toBe(200);
    const real = list.json.data.find((e: { data: { object: { id: string } } }) => e.data.object.id === id);
    expect(real, list.body).toBeDefined();
    expect(real.scope).toBe(h.appId);

    const spec = (await h.request('GET', '/openapi.json', { key: null })).json;
    const [example] = spec.components.schemas.Event.examples;
    expect(example.scope).toBe(example.data.object.app);
    expect(example.acct_id).toMatch(/^acct_/);
  });
});
