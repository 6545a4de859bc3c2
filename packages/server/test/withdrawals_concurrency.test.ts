import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyPayoutResult } from '../src/services/withdrawals.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra } from './helpers/withdrawals.ts';

/**
 * 200 parallel creates for one user whose balance covers only some of them. The check and the
 * debit are one conditional UPDATE, so exactly as many succeed as the balance allows, whatever
 * the interleaving; the rest get a 400 and change nothing.
 */
describeEngines('parallel withdrawal creates cannot overdraw', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start(engine, { config: { poolSize: 20 } });
  });
  afterAll(async () => h?.close());

  it('200 parallel creates against a balance that covers 37 of them', async () => {
    const amount = 1_000;
    const covered = 37;
    await h.createUser('racer');
    await h.fund('racer', amount * covered + amount - 1); // one fen short of a 38th
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        h.request('POST', h.appPath('/withdrawals'), {
          body: { user: 'racer', amount, channel: 'alipay', order_no: `race${i}`, extra: seedExtra('alipay') },
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const rejected = results.filter((r) => r.status !== 200);
    expect(ok).toHaveLength(covered);
    expect(rejected).toHaveLength(200 - covered);
    for (const r of rejected) {
      expect(r.status).toBe(400);
      expect(r.json.error).toMatchObject({ type: 'invalid_request_error', code: 'insufficient_balance', param: 'amount' });
    }
    const user = await h.request('GET', h.appPath('/users/racer'));
    expect(user.json).toMatchObject({ withdrawable_balance: amount - 1, available_balance: amount - 1 });
    const created = await h.request('GET', h.appPath('/withdrawals?user=racer&per_page=100'));
    expect(created.json.data).toHaveLength(covered);
    expect(created.json.total_withdrawals_amount).toBe(amount * covered);
    const lines = await h.rt.store.db.selectFrom('balance_transactions').select('id').where('user', '=', 'racer').where('type', '=', 'withdrawal').execute();
    expect(lines).toHaveLength(covered);
    const report = await h.verify();
    expect(report.drift).toEqual([]);
  });

  it('parallel confirm and cancel of one withdrawal: exactly one wins', async () => {
    await h.createUser('toggler');
    await h.fund('toggler', 10_000);
    for (let i = 0; i < 10; i++) {
      const w = await h.request('POST', h.appPath('/withdrawals'), {
        body: { user: 'toggler', amount: 500, channel: 'wx', order_no: `tog${i}`, extra: seedExtra('wx') },
      });
      const [a, b, c, d] = await Promise.all([
        h.request('PUT', h.appPath(`/withdrawals/${w.json.id}`), { body: { status: 'pending' } }),
        h.request('PUT', h.appPath(`/withdrawals/${w.json.id}`), { body: { status: 'canceled' } }),
        h.request('PUT', h.appPath(`/withdrawals/${w.json.id}`), { body: { status: 'canceled' } }),
        h.request('PUT', h.appPath(`/withdrawals/${w.json.id}`), { body: { status: 'pending' } }),
      ]);
      const winners = [a!, b!, c!, d!].filter((r) => r.status === 200);
      expect(winners).toHaveLength(1);
      for (const loser of [a!, b!, c!, d!].filter((r) => r.status !== 200)) expect(loser.json.error.param).toBe('status');
    }
    const revoked = await h.rt.store.db.selectFrom('balance_transactions').select('id').where('user', '=', 'toggler').where('type', '=', 'withdrawal_revoked').execute();
    const canceled = await h.rt.store.db.selectFrom('withdrawals').select('id').where('user', '=', 'toggler').where('status', '=', 'canceled').execute();
    expect(revoked.length).toBe(canceled.length);
    expect((await h.verify()).ok).toBe(true);
  });

  it('an identical retry racing its original gets the original withdrawal, not "insufficient balance"', async () => {
    await h.createUser('retrier');
    await h.fund('retrier', 1_000);
    const body = { user: 'retrier', amount: 1_000, channel: 'alipay', order_no: 'retryrace1', extra: seedExtra('alipay') };
    const results = await Promise.all(Array.from({ length: 6 }, () => h.request('POST', h.appPath('/withdrawals'), { body })));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
    expect((await h.request('GET', h.appPath('/users/retrier'))).json.withdrawable_balance).toBe(0);
  });

  it('a batch cancel racing transfers between the same users neither deadlocks nor errors', async () => {
    const users = ['dl_a', 'dl_b', 'dl_c', 'dl_d'];
    for (const u of users) {
      await h.createUser(u);
      await h.fund(u, 100_000);
    }
    for (let round = 0; round < 5; round++) {
      const ids: string[] = [];
      // Listed in reverse user order, the opposite of the order transfers lock users in.
      for (const u of [...users].reverse()) {
        const w = await h.request('POST', h.appPath('/withdrawals'), { body: { user: u, amount: 10, channel: 'wx', order_no: `dl${round}${u.slice(-1)}`, extra: seedExtra('wx') } });
        ids.push(w.json.id);
      }
      const requests = [
        h.request('POST', h.appPath('/batch_withdrawals'), { body: { withdrawals: ids, status: 'canceled' } }),
        ...users.flatMap((u, i) => [
          h.request('POST', h.appPath('/balance_transfers'), { body: { user: u, recipient: users[(i + 1) % users.length], amount: 1, order_no: `dlf${round}${i}` } }),
          h.request('POST', h.appPath('/balance_transfers'), { body: { user: users[(i + 1) % users.length], recipient: u, amount: 1, order_no: `dlb${round}${i}` } }),
        ]),
      ];
      const results = await Promise.all(requests);
      for (const r of results) expect(r.status, r.body).toBe(200);
    }
    expect((await h.verify()).drift).toEqual([]);
  });

  it('a payout result from a worker that lost its lease is not applied', async () => {
    await h.createUser('fenced');
    await h.fund('fenced', 1_000);
    const w = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'fenced', amount: 500, channel: 'wx', order_no: 'fence1', extra: seedExtra('wx') } });
    await h.request('PUT', h.appPath(`/withdrawals/${w.json.id}`), { body: { status: 'pending' } });
    // Another worker holds the claim now (lease 2000); the stale worker still believes in lease 1000.
    await h.rt.store.db.updateTable('withdrawals').set({ payout_lease_ms: 2000 }).where('id', '=', w.json.id).execute();
    const stale = await applyPayoutResult(h.rt, { id: w.json.id, round: 1, leaseMs: 1000 }, { kind: 'succeeded' }, h.merchant.account);
    expect(stale).toBe(false);
    expect((await h.request('GET', h.appPath(`/withdrawals/${w.json.id}`))).json.status).toBe('pending');
    const holder = await applyPayoutResult(h.rt, { id: w.json.id, round: 1, leaseMs: 2000 }, { kind: 'succeeded' }, h.merchant.account);
    expect(holder).toBe(true);
    expect((await h.request('GET', h.appPath(`/withdrawals/${w.json.id}`))).json.status).toBe('succeeded');
    expect((await h.verify()).ok).toBe(true);
  });
});
