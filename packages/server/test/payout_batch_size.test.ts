import { describe, expect, it, vi } from 'vitest';
import type { ChannelDriver, DriverRegistry } from '../src/channels/driver.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

describeEngines('the payout worker\'s round size (--payout-batch-size)', (engine) => {
  /** A harness with `count` confirmed (due) withdrawals and rounds of `batchSize`. */
  async function withDue(count: number, batchSize: number): Promise<Harness> {
    const h = await Harness.start(engine, { config: { sandboxDelayMs: 0, payoutBatchSize: batchSize } });
    await h.createUser('pb_user');
    await h.fund('pb_user', 100_000);
    for (let i = 0; i < count; i++) {
      const res = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user: 'pb_user', amount: 100, channel: 'wx_pub', order_no: orderNo(), extra: seedExtra('wx_pub', sandboxPayee('wx_pub', '')) },
      });
      expect(res.status, res.body).toBe(200);
      const confirmed = await h.request('PUT', h.appPath(`/withdrawals/${res.json.id}`), { body: { status: 'pending' } });
      expect(confirmed.status, confirmed.body).toBe(200);
    }
    return h;
  }
  const succeeded = async (h: Harness) => (await h.rt.store.db.selectFrom('withdrawals').select('id').where('status', '=', 'succeeded').execute()).length;

  it('claims and pays at most that many withdrawals a round', async () => {
    const h = await withDue(5, 2);
    try {
      const worker = new PayoutWorker(h.rt);
      const rounds = [await worker.runOnce(), await worker.runOnce(), await worker.runOnce(), await worker.runOnce()];
      expect(rounds).toEqual([2, 2, 1, 0]);
      expect(await succeeded(h)).toBe(5);
    } finally {
      await h.close();
    }
  });

  it('workers claiming at once take different withdrawals, each submitted to the channel once', async () => {
    const h = await withDue(7, 3);
    try {
      const workers = [new PayoutWorker(h.rt), new PayoutWorker(h.rt)];
      const rounds = await Promise.all(workers.map((w) => w.runOnce()));
      expect(rounds.every((n) => n <= 3)).toBe(true);
      expect(rounds.reduce((a, b) => a + b, 0)).toBe(6);
      expect(await workers[0]!.runOnce()).toBe(1);
      expect(await succeeded(h)).toBe(7);
      const submits = await h.rt.store.db.selectFrom('sandbox_payouts').select('submits').execute();
      expect(submits.map((r) => Number(r.submits))).toEqual(Array(7).fill(1));
    } finally {
      await h.close();
    }
  });

  it('a slow channel call holds its own slot only: the rest are paid while it waits', async () => {
    const h = await withDue(5, 2);
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let slow: string | null = null;
    const sandbox = h.rt.drivers;
    // The first withdrawal submitted waits for the test; every other one is paid at once.
    const drivers: DriverRegistry = {
      driverFor(channel, livemode) {
        const d = sandbox.driverFor(channel, livemode)!;
        const driver: ChannelDriver = {
          name: d.name,
          query: (order, call) => d.query(order, call),
          async submit(order, call) {
            slow ??= order.withdrawalId;
            if (order.withdrawalId === slow) await held;
            return d.submit(order, call);
          },
        };
        return driver;
      },
    };
    h.rt.drivers = drivers;
    const worker = new PayoutWorker(h.rt).start();
    try {
      await vi.waitFor(async () => expect(await succeeded(h)).toBe(4), { timeout: 10_000, interval: 20 });
      const waiting = await h.rt.store.db.selectFrom('withdrawals').select('status').where('id', '=', slow!).executeTakeFirstOrThrow();
      expect(waiting.status).toBe('pending');
      release();
      await vi.waitFor(async () => expect(await succeeded(h)).toBe(5), { timeout: 10_000, interval: 20 });
    } finally {
      release();
      await worker.stop();
      await h.close();
    }
  });
});

describe('--payout-batch-size', () => {
  it('defaults to 32 and refuses what is not 1 to 500', () => {
    expect(loadConfig({}, {}).payoutBatchSize).toBe(32);
    expect(loadConfig({ payoutBatchSize: '64' }, {}).payoutBatchSize).toBe(64);
    expect(loadConfig({}, { TIXIAN_PAYOUT_BATCH_SIZE: '500' }).payoutBatchSize).toBe(500);
    for (const bad of ['0', '501', '2.5', 'many']) {
      expect(() => loadConfig({ payoutBatchSize: bad }, {}), bad).toThrow(ConfigError);
      expect(() => loadConfig({}, { TIXIAN_PAYOUT_BATCH_SIZE: bad }), bad).toThrow(/TIXIAN_PAYOUT_BATCH_SIZE/);
    }
  });
});
