import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import type { ChannelCall, ChannelDriver, DriverRegistry, PayoutOrder, PayoutOutcome } from '../src/channels/driver.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

describeEngines('money path details', (engine) => {
  let h: Harness;
  let clock: ManualClock;
  let worker: PayoutWorker;

  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 3, 1, 2, 0, 0));
    h = await Harness.start(engine, { clock, config: { sandboxDelayMs: 0 } });
    worker = new PayoutWorker(h.rt, { batchSize: 64 });
    await h.createUser('md_user');
    await h.fund('md_user', 10_000_000);
  });
  afterAll(async () => h?.close());

  async function createWithdrawal(ending: '' | '0003' = '', user = 'md_user'): Promise<string> {
    const res = await h.request('POST', h.appPath('/withdrawals'), {
      body: { user, amount: 500, channel: 'wx_pub', order_no: orderNo(), extra: seedExtra('wx_pub', sandboxPayee('wx_pub', ending)) },
    });
    expect(res.status, res.body).toBe(200);
    return res.json.id;
  }

  async function drain() {
    for (let round = 0; round < 50; round++) if ((await worker.runOnce()) === 0) return;
    throw new Error('payout worker did not drain in 50 rounds');
  }

  const batchOf = async (id: string) =>
    (await h.rt.store.db.selectFrom('withdrawals').select(['status', 'batch_withdrawal']).where('id', '=', id).executeTakeFirstOrThrow());
  const batchCount = async () =>
    Number((await h.rt.store.db.selectFrom('batch_withdrawals').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  /** Runs `between` once, after a request's checks and just before its transaction begins. */
  function beforeNextTransaction(between: () => Promise<void>) {
    const store = h.rt.store;
    const original = store.transaction;
    store.transaction = (async (fn) => {
      store.transaction = original;
      await between();
      return original.call(store, fn);
    }) as typeof original;
  }

  describe('batch membership is decided in the statement that moves a withdrawal', () => {
    for (const status of ['pending', 'canceled'] as const) {
      it(`a withdrawal that joined another batch after the checks is refused by a ${status} batch, not moved`, async () => {
        // The payee ending in 0003 fails on the merchant's side: the withdrawal comes back to
        // `created` while it still belongs to its first batch.
        const w = await createWithdrawal('0003');
        let first: Awaited<ReturnType<Harness['request']>> | undefined;
        beforeNextTransaction(async () => {
          first = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [w] } });
          await drain();
        });
        const batches = await batchCount();
        const second = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [w], status } });

        expect(first?.status, first?.body).toBe(200);
        expect(await batchOf(w)).toEqual({ status: 'created', batch_withdrawal: first!.json.id });
        expect(second.status, second.body).toBe(400);
        expect(second.json.error).toMatchObject({ type: 'invalid_request_error', param: 'withdrawals[0]' });
        expect(second.json.error.message).toContain(first!.json.id); // "already belongs to batch <first>"
        // The refused batch left nothing behind (only the first batch was added); the first batch still counts its item.
        expect(await batchCount()).toBe(batches + 1);
        const kept = await h.request('GET', h.appPath(`/batch_withdrawals/${first!.json.id}`));
        expect(kept.json).toMatchObject({ status: 'pending', count: 1, amount: 500, time_finished: null });
        expect(kept.json.withdrawals.data.map((x: { id: string }) => x.id)).toEqual([w]);
        // Settle it for the next tests: it can still be confirmed on its own.
        expect((await h.request('PUT', h.appPath(`/withdrawals/${w}`), { body: { status: 'canceled' } })).status).toBe(200);
        expect((await h.request('GET', h.appPath(`/batch_withdrawals/${first!.json.id}`))).json).toMatchObject({ status: 'canceled', count_canceled: 1 });
      });
    }

    it('two batches created at once naming the same withdrawals: exactly one owns them, counts agree', async () => {
      for (let round = 0; round < 6; round++) {
        const ids = [await createWithdrawal(), await createWithdrawal(), await createWithdrawal()];
        const other = await createWithdrawal();
        const batches = await batchCount();
        // The second batch lists the same withdrawals in another order, plus one of its own.
        const [a, b] = await Promise.all([
          h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: ids } }),
          h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: [other, ...[...ids].reverse()], status: round % 2 ? 'canceled' : 'pending' } }),
        ]);
        expect([a.status, b.status].sort()).toEqual([200, 400]);
        const winner = a.status === 200 ? a : b;
        expect(await batchCount()).toBe(batches + 1);
        for (const id of ids) expect((await batchOf(id)).batch_withdrawal).toBe(winner.json.id);
        // All or nothing: the loser's own withdrawal is untouched.
        if (winner === a) expect(await batchOf(other)).toEqual({ status: 'created', batch_withdrawal: null });
        expect(winner.json).toMatchObject({ count: winner === a ? 3 : 4, amount: (winner === a ? 3 : 4) * 500 });
        if (winner === a) {
          await h.request('PUT', h.appPath(`/withdrawals/${other}`), { body: { status: 'canceled' } });
        }
        await drain();
        const done = (await h.request('GET', h.appPath(`/batch_withdrawals/${winner.json.id}`))).json;
        expect(done.count_succeeded + done.count_canceled).toBe(done.count);
        expect(['succeeded', 'canceled']).toContain(done.status);
      }
      expect((await h.verify()).drift).toEqual([]);
    });
  });

  describe('a withdrawal paid to a settle account shows the recipient masked', () => {
    const BANK = { account: '6214850288886677', name: '王小明', type: 'b2c', open_bank_code: '0308', open_bank: '招商银行', prov: '上海', city: '上海', sub_bank: '徐家汇支行' };
    const WX = { account: 'o_wx_mask_openid_6677', name: '李小红' };
    const secrets = [BANK.account, BANK.name, WX.account, WX.name];
    const expectNoSecret = (text: string) => {
      for (const s of secrets) expect(text).not.toContain(s);
    };

    it('in the API objects, the batch and the events; the channel still gets the full recipient', async () => {
      await h.createUser('mask_user');
      await h.fund('mask_user', 100_000);
      const bind = (body: unknown) => h.request('POST', h.appPath('/users/mask_user/settle_accounts'), { body });
      const bank = await bind({ channel: 'bank_account', recipient: BANK });
      const wx = await bind({ channel: 'wx_pub', recipient: WX });
      expect([bank.status, wx.status]).toEqual([200, 200]);
      expect(bank.json.recipient).toMatchObject({ account: '621485***6677', name: '***明' });

      const created = await Promise.all(
        [bank, wx].map((sa) => h.request('POST', h.appPath('/withdrawals'), { body: { user: 'mask_user', amount: 1000, order_no: orderNo(), settle_account: sa.json.id } })),
      );
      const [viaBank, viaWx] = created;
      expect(viaBank!.status, viaBank!.body).toBe(200);
      expect(viaBank!.json).toMatchObject({ channel: 'unionpay', settle_account: bank.json.id });
      // Masked exactly as the settle account shows them.
      expect(viaBank!.json.extra).toMatchObject({ account: bank.json.recipient.account, name: bank.json.recipient.name, open_bank_code: '0308', sub_bank: '徐家汇支行' });
      expect(viaWx!.json).toMatchObject({ channel: 'wx_pub', settle_account: wx.json.id });
      expect(viaWx!.json.extra).toMatchObject({ open_id: wx.json.recipient.account, name: wx.json.recipient.name });
      expect(viaWx!.json.extra.open_id).toBe('o_wx_m***6677');
      for (const res of created) expectNoSecret(res.body);

      const ids = created.map((r) => r.json.id as string);
      for (const id of ids) expectNoSecret((await h.request('GET', h.appPath(`/withdrawals/${id}`))).body);
      expectNoSecret((await h.request('GET', h.appPath('/withdrawals?user=mask_user'))).body);
      // A replay of the same request answers the same masked object.
      const replay = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'mask_user', amount: 1000, order_no: viaBank!.json.order_no, settle_account: bank.json.id } });
      expect(replay.json).toEqual(viaBank!.json);

      const batch = await h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: ids } });
      expect(batch.status, batch.body).toBe(200);
      expectNoSecret(batch.body);
      await drain();
      expectNoSecret((await h.request('GET', h.appPath(`/batch_withdrawals/${batch.json.id}`))).body);

      // The events (what webhooks carry), through the API and as stored.
      const events = await h.request('GET', '/v1/events?type=balance.withdrawal.succeeded&limit=100');
      const mine = events.json.data.filter((e: { data: { object: { id: string } } }) => ids.includes(e.data.object.id));
      expect(mine).toHaveLength(2);
      for (const e of mine) expect(e.data.object.extra.name).toMatch(/^\*\*\*/);
      expectNoSecret(events.body);
      const stored = await h.rt.store.db.selectFrom('events').select('body').execute();
      for (const row of stored) expectNoSecret(row.body);

      // The channel was asked to pay the real recipient.
      const paid = await h.rt.store.db.selectFrom('sandbox_payouts').select(['withdrawal_id', 'recipient']).where('withdrawal_id', 'in', ids).execute();
      expect(paid.map((p) => p.recipient).sort()).toEqual([BANK.account, WX.account].sort());
    });

    it('a withdrawal with its own channel and extra echoes the extra as sent', async () => {
      const res = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user: 'mask_user', amount: 100, channel: 'alipay', order_no: orderNo(), extra: { account: 'payee@example.com', name: '张三' } },
      });
      expect(res.json.extra).toMatchObject({ account: 'payee@example.com', name: '张三' });
      await h.request('PUT', h.appPath(`/withdrawals/${res.json.id}`), { body: { status: 'canceled' } });
    });
  });

  describe('every channel call of a payout round ends inside the worker\'s lease', () => {
    interface Call {
      op: 'submit' | 'query';
      key: string;
      atMs: number;
      timeoutMs: number;
      signal: AbortSignal;
    }

    /** A channel whose calls take `slowMs` of the injected clock, and answer what the test says. */
    class SlowDriver implements ChannelDriver {
      readonly name = 'slow';
      calls: Call[] = [];
      slowMs = 0;
      submitAnswer: PayoutOutcome | 'hang' = { kind: 'unknown', message: 'lost' };
      queryAnswer: PayoutOutcome = { kind: 'not_found' };
      constructor(private readonly only: Set<string>) {}
      private record(op: Call['op'], order: PayoutOrder, call: ChannelCall) {
        this.calls.push({ op, key: order.key, atMs: clock.nowMs(), timeoutMs: call.timeoutMs, signal: call.signal });
        clock.advance(this.slowMs);
      }
      async submit(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
        if (!this.only.has(order.withdrawalId)) return { kind: 'processing', retryAfterMs: 60_000 };
        this.record('submit', order, call);
        if (this.submitAnswer === 'hang') return new Promise<PayoutOutcome>(() => {});
        return this.submitAnswer;
      }
      async query(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
        if (!this.only.has(order.withdrawalId)) return { kind: 'processing', retryAfterMs: 60_000 };
        this.record('query', order, call);
        return this.queryAnswer;
      }
    }

    async function withDriver(driver: ChannelDriver, body: () => Promise<void>) {
      const original = h.rt.drivers;
      const registry: DriverRegistry = { driverFor: () => driver };
      h.rt.drivers = registry;
      try {
        await body();
      } finally {
        h.rt.drivers = original;
      }
    }

    const payoutState = async (id: string) =>
      h.rt.store.db.selectFrom('withdrawals').select(['status', 'payout_phase', 'payout_lease_ms', 'payout_due_ms']).where('id', '=', id).executeTakeFirstOrThrow();

    // lease 10 s, the last 2 s kept free: a round's calls must end 8 s after the claim.
    const options = { batchSize: 64, leaseMs: 10_000, channelTimeoutMs: 8_000, leaseMarginMs: 2_000, minCallMs: 1_000 };

    it('skips the submit when a slow query left too little of the lease, and bounds the next submit by what is left', async () => {
      const w = await createWithdrawal();
      const driver = new SlowDriver(new Set([w]));
      const leased = new PayoutWorker(h.rt, options);
      await withDriver(driver, async () => {
        expect((await h.request('PUT', h.appPath(`/withdrawals/${w}`), { body: { status: 'pending' } })).status).toBe(200);
        // Round 1: the submit's answer is lost; the next round must ask first.
        await leased.runOnce();
        expect(driver.calls.map((c) => c.op)).toEqual(['submit']);
        expect(await payoutState(w)).toMatchObject({ status: 'pending', payout_phase: 'query', payout_lease_ms: null });

        // Round 2: the query takes 7.5 s and finds nothing. A submit now would run past the lease,
        // when another worker may claim the withdrawal and submit the same key: it waits.
        clock.advance(1_000);
        const claimMs = clock.nowMs();
        driver.slowMs = 7_500;
        await leased.runOnce();
        expect(driver.calls.map((c) => c.op)).toEqual(['submit', 'query']);
        // Each call may take what is left of the round, up to the channel timeout.
        expect(driver.calls.map((c) => c.timeoutMs)).toEqual([8_000, 8_000]);
        expect(await payoutState(w)).toMatchObject({ status: 'pending', payout_phase: 'query', payout_lease_ms: null });
        expect(Number((await payoutState(w)).payout_due_ms)).toBeLessThanOrEqual(claimMs + 7_500 + 1_000);

        // Round 3: the query takes 5 s; the submit gets the 3 s left before the round's deadline.
        clock.advance(1_000);
        const claim3Ms = clock.nowMs();
        driver.slowMs = 5_000;
        driver.submitAnswer = { kind: 'succeeded' };
        await leased.runOnce();
        const [query, submit] = driver.calls.slice(2);
        expect(query).toMatchObject({ op: 'query', atMs: claim3Ms, timeoutMs: 8_000 });
        expect(submit).toMatchObject({ op: 'submit', atMs: claim3Ms + 5_000, timeoutMs: 3_000 });
        expect(submit!.atMs + submit!.timeoutMs).toBeLessThanOrEqual(claim3Ms + options.leaseMs - options.leaseMarginMs);
        expect((await payoutState(w)).status).toBe('succeeded');
      });
    });

    it('a channel call that outlasts its time is abandoned and aborted; the withdrawal is queried later', async () => {
      const w = await createWithdrawal();
      const driver = new SlowDriver(new Set([w]));
      driver.submitAnswer = 'hang';
      // A short real-time lease: the hanging call must be given up after 300 ms, not 10 s.
      const leased = new PayoutWorker(h.rt, { batchSize: 64, leaseMs: 400, channelTimeoutMs: 10_000, leaseMarginMs: 100, minCallMs: 50 });
      await withDriver(driver, async () => {
        expect((await h.request('PUT', h.appPath(`/withdrawals/${w}`), { body: { status: 'pending' } })).status).toBe(200);
        await leased.runOnce();
      });
      expect(driver.calls).toHaveLength(1);
      expect(driver.calls[0]).toMatchObject({ op: 'submit', timeoutMs: 300 });
      expect(driver.calls[0]!.signal.aborted).toBe(true);
      expect(await payoutState(w)).toMatchObject({ status: 'pending', payout_phase: 'query', payout_lease_ms: null });
      // Clean up: the sandbox finds no order for it and submits it.
      clock.advance(60_000);
      await drain();
      expect((await payoutState(w)).status).toBe('succeeded');
    });

    it('the ledger verifies clean', async () => {
      clock.advance(15 * 60_000);
      await drain();
      expect((await h.verify()).drift).toEqual([]);
    });
  });
});
