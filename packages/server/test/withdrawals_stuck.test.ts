import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WithdrawalChannel } from '@tixian/sdk';
import { ManualClock } from '../src/clock.ts';
import { PayoutWorker } from '../src/channels/worker.ts';
import type { ChannelDriver, DriverRegistry } from '../src/channels/driver.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { findStuckWithdrawals } from '../src/services/withdrawals_stuck.ts';
import { formatStuck, stuckWithdrawals } from '../src/cli/withdrawals.ts';
import { UsageError } from '../src/cli/shared.ts';
import { describeEngines, Harness, shownKey } from './helpers/harness.ts';
import { orderNo, seedExtra } from './helpers/withdrawals.ts';

const MINUTE = 60_000;

/** A channel that never settles: every call is an unknown outcome (a timeout, a system error). */
const silentChannel: ChannelDriver = {
  name: 'silent',
  submit: async () => ({ kind: 'unknown', message: 'gateway timeout' }),
  query: async () => ({ kind: 'unknown', message: 'gateway timeout' }),
};
const silentDrivers: DriverRegistry = { driverFor: () => silentChannel };

describeEngines('tixian withdrawals stuck', (engine) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  let h: Harness;
  let other: CreatedApp;
  const ids: Record<string, string> = {};

  async function withdrawal(appId: string, key: string, user: string, confirm: boolean): Promise<string> {
    const path = `/v1/apps/${appId}/withdrawals`;
    const res = await h.request('POST', path, { key, body: { user, amount: 100, channel: 'unionpay' satisfies WithdrawalChannel, order_no: orderNo(), extra: seedExtra('unionpay') } });
    expect(res.status).toBe(200);
    const id = res.json.id as string;
    if (confirm) expect((await h.request('PUT', `${path}/${id}`, { key, body: { status: 'pending' } })).json.status).toBe('pending');
    return id;
  }

  beforeAll(async () => {
    h = await Harness.start(engine, { clock });
    other = await createApp(h.rt, { name: 'other', account: 'other' });
    await h.createUser('u1');
    await h.fund('u1', 10_000);
    await h.request('POST', `/v1/apps/${other.id}/users`, { key: shownKey(other.secret_key_test), body: { id: 'u1' } });
    await h.request('POST', `/v1/apps/${other.id}/balance_settlements`, { key: shownKey(other.secret_key_test), body: { user: 'u1', amount: 10_000, order_no: 'fundother' } });
    // t0: one confirmed here, one only created, one confirmed in the other app.
    ids.old = await withdrawal(h.appId, h.testKey, 'u1', true);
    ids.unconfirmed = await withdrawal(h.appId, h.testKey, 'u1', false);
    ids.otherApp = await withdrawal(other.id, shownKey(other.secret_key_test), 'u1', true);
    clock.advance(20 * MINUTE);
    ids.young = await withdrawal(h.appId, h.testKey, 'u1', true);
  });
  afterAll(async () => h?.close());

  const stuckIds = async (q: Partial<Parameters<typeof findStuckWithdrawals>[1]> = {}) =>
    (await findStuckWithdrawals(h.rt, { olderThanMs: 30 * MINUTE, limit: 200, ...q })).withdrawals.map((w) => w.id);

  it('reports nothing before the bound, then only confirmed withdrawals older than it, oldest first', async () => {
    clock.advance(9 * MINUTE); // t0 + 29 min
    expect(await stuckIds()).toEqual([]);
    clock.advance(2 * MINUTE); // t0 + 31 min
    expect((await stuckIds()).sort()).toEqual([ids.old, ids.otherApp].sort());
    expect(await stuckIds({ app: h.appId })).toEqual([ids.old]);
    expect((await stuckIds({ olderThanMs: 10 * MINUTE, app: h.appId })).sort()).toEqual([ids.old, ids.young].sort());
  });

  it('says a withdrawal was never submitted when no worker has picked it up', async () => {
    const report = await findStuckWithdrawals(h.rt, { app: h.appId, olderThanMs: 30 * MINUTE, limit: 200 });
    expect(report.withdrawals[0]).toMatchObject({
      id: ids.old, app: h.appId, livemode: false, user: 'u1', channel: 'unionpay', amount: 100, age_s: 31 * 60,
      payout_phase: 'submit', payout_tries: 0, in_flight: false, last_answer: expect.stringContaining('not yet submitted'),
    });
    expect(report.withdrawals[0]!.last_answer).toContain('is a payout worker running?');
    expect(report.withdrawals[0]).toMatchObject({ channel_answer: null, channel_answer_at: null, confirmed: Math.floor(Date.UTC(2026, 0, 1) / 1000) });
  });

  it('shows the open outcome after the channel answered without a result', async () => {
    h.rt.drivers = silentDrivers;
    const worker = new PayoutWorker(h.rt);
    expect(await worker.runOnce()).toBe(3);
    const [w] = (await findStuckWithdrawals(h.rt, { app: h.appId, olderThanMs: 30 * MINUTE, limit: 200 })).withdrawals;
    expect(w).toMatchObject({ id: ids.old, payout_phase: 'query', payout_tries: 1, in_flight: false });
    expect(w!.last_answer).toMatch(/after 1 channel answer/);
    expect(w!.last_answer).not.toContain('overdue'); // the next query is scheduled in the future
    expect(w!.next_try_at).toBeGreaterThanOrEqual(Math.floor(clock.nowMs() / 1000));
    expect(w).toMatchObject({ channel_answer: 'unknown: gateway timeout', channel_answer_at: Math.floor(clock.nowMs() / 1000) });
  });

  it("shows the channel's own words of a processing answer, payee details masked, bounded", async () => {
    const account = String(seedExtra('unionpay').account);
    // The channel echoes the payee's card number and name: neither may be stored or shown.
    const processing: ChannelDriver = {
      name: 'processing',
      submit: async () => ({ kind: 'processing', retryAfterMs: 60_000, message: `BANK_PROCESSING 银行处理中 ${account} 张三` }),
      query: async () => ({ kind: 'processing', retryAfterMs: 60_000, message: `BANK_PROCESSING 银行处理中 card ${account} of 张三\n${'x'.repeat(600)}` }),
    };
    h.rt.drivers = { driverFor: () => processing };
    clock.advance(MINUTE); // past every next try
    expect(await new PayoutWorker(h.rt).runOnce()).toBe(3);
    const answeredAt = Math.floor(clock.nowMs() / 1000);
    const report = await findStuckWithdrawals(h.rt, { app: h.appId, olderThanMs: 30 * MINUTE, limit: 200 });
    const w = report.withdrawals.find((x) => x.id === ids.old)!;
    expect(w.channel_answer).toMatch(/^processing: BANK_PROCESSING 银行处理中 card \*\*\* of \*\*\* x+…$/);
    expect(w.channel_answer!.length).toBeLessThanOrEqual(255);
    expect(w.channel_answer_at).toBe(answeredAt);
    expect(w.payout_tries).toBe(2);
    const text = formatStuck(report);
    const json = JSON.stringify(report);
    expect(text).toContain('channel said: processing: BANK_PROCESSING 银行处理中');
    for (const out of [text, json]) {
      expect(out).not.toContain(account);
      expect(out).not.toContain('张三');
    }
    const stored = await h.rt.store.db.selectFrom('withdrawals').select(['payout_answer']).where('id', '=', ids.old!).executeTakeFirstOrThrow();
    expect(stored.payout_answer).toBe(w.channel_answer);
  });

  it('is bounded by its limit and says there is more', async () => {
    const report = await findStuckWithdrawals(h.rt, { olderThanMs: 0, limit: 1 });
    expect(report.withdrawals).toHaveLength(1);
    expect(report.has_more).toBe(true);
    await expect(findStuckWithdrawals(h.rt, { olderThanMs: 0, limit: 1001 })).rejects.toThrow(RangeError);
  });

  it('runs as the CLI command does: flags, storage, text and usage errors', async () => {
    const storage = { dataDir: h.rt.config.dataDir, ...(h.rt.config.databaseUrl ? { databaseUrl: h.rt.config.databaseUrl } : {}) };
    // The command uses the system clock: the withdrawals (made at the test clock's 2026-01-01) are old.
    const report = await stuckWithdrawals({ ...storage, app: h.appId, olderThan: '30m', limit: '200' });
    expect(report.withdrawals.map((w) => w.id).sort()).toEqual([ids.old, ids.young].sort());
    const text = formatStuck(report);
    expect(text).toContain(ids.old);
    expect(text).not.toContain(ids.unconfirmed);
    expect(formatStuck({ ...report, withdrawals: [] })).toMatch(/^no stuck withdrawals/);
    await expect(stuckWithdrawals({ ...storage, olderThan: '30', limit: '200' })).rejects.toThrow(UsageError);
    await expect(stuckWithdrawals({ ...storage, olderThan: '30m', limit: '0' })).rejects.toThrow(UsageError);
    await expect(stuckWithdrawals({ ...storage, app: 'app_nope', olderThan: '30m', limit: '10' })).rejects.toThrow('no such app');
  });

  it('counts the age from the confirm, not from creation, and a new confirm forgets the old answer', async () => {
    const late = await withdrawal(h.appId, h.testKey, 'u1', false);
    clock.advance(40 * MINUTE);
    const path = `/v1/apps/${h.appId}/withdrawals/${late}`;
    expect((await h.request('PUT', path, { key: h.testKey, body: { status: 'pending' } })).json.status).toBe('pending');
    clock.advance(10 * MINUTE); // created 50 min ago, confirmed 10 min ago
    expect(await stuckIds({ app: h.appId })).not.toContain(late);
    const w = (await findStuckWithdrawals(h.rt, { app: h.appId, olderThanMs: 5 * MINUTE, limit: 200 })).withdrawals.find((x) => x.id === late);
    expect(w).toMatchObject({ age_s: 10 * 60, confirmed: Math.floor(clock.nowMs() / 1000) - 600, channel_answer: null });
    // The oldest confirm first.
    expect((await stuckIds({ app: h.appId, olderThanMs: 5 * MINUTE })).at(-1)).toBe(late);
  });
});
