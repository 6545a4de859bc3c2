import { afterAll, beforeAll, expect, it } from 'vitest';
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
});
