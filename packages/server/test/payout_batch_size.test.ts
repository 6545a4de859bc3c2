import { describe, expect, it } from 'vitest';
import { PayoutWorker } from '../src/channels/worker.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { orderNo, sandboxPayee, seedExtra } from './helpers/withdrawals.ts';

describeEngines('the payout worker\'s round size (--payout-batch-size)', (engine) => {
  it('claims and pays at most that many withdrawals a round', async () => {
    const h = await Harness.start(engine, { config: { sandboxDelayMs: 0, payoutBatchSize: 2 } });
    try {
      await h.createUser('pb_user');
      await h.fund('pb_user', 100_000);
      for (let i = 0; i < 5; i++) {
        const res = await h.request('POST', h.appPath('/withdrawals'), {
          body: { user: 'pb_user', amount: 100, channel: 'wx_pub', order_no: orderNo(), extra: seedExtra('wx_pub', sandboxPayee('wx_pub', '')) },
        });
        expect(res.status, res.body).toBe(200);
        const confirmed = await h.request('PUT', h.appPath(`/withdrawals/${res.json.id}`), { body: { status: 'pending' } });
        expect(confirmed.status, confirmed.body).toBe(200);
      }
      const worker = new PayoutWorker(h.rt);
      const rounds = [await worker.runOnce(), await worker.runOnce(), await worker.runOnce(), await worker.runOnce()];
      expect(rounds).toEqual([2, 2, 1, 0]);
      const succeeded = await h.rt.store.db.selectFrom('withdrawals').select('id').where('status', '=', 'succeeded').execute();
      expect(succeeded).toHaveLength(5);
    } finally {
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
