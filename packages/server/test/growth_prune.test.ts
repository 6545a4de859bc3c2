import { afterAll, beforeAll, expect, it } from 'vitest';
import { pruneHistory } from '../src/store/prune.ts';
import { parseBefore } from '../src/cli/prune.ts';
import { UsageError } from '../src/cli/shared.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra } from './helpers/withdrawals.ts';

/**
 * `tixian prune --before DATE` deletes finished webhook history and the sandbox channel's memory
 * of final withdrawals, and nothing the ledger, an open withdrawal or an unfinished delivery needs.
 */

const DAY_MS = 86_400_000;
const CUT_MS = Date.UTC(2026, 5, 1);
const OLD_S = (CUT_MS - 10 * DAY_MS) / 1000;
const NEW_S = (CUT_MS + DAY_MS) / 1000;

describeEngines('growth: prune', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start(engine);
  });
  afterAll(async () => h?.close());

  async function event(id: string, createdS: number, deliveries: { id: string; status: string }[]) {
    const db = h.rt.store.db;
    await db.insertInto('events').values({
      id, app: h.appId, account_id: h.merchant.account, livemode: 0, type: 'balance.withdrawal.succeeded', created: createdS, body: '{}',
      signature: null, request: null, pending_webhooks: deliveries.filter((d) => d.status === 'pending').length,
    }).execute();
    for (const d of deliveries) {
      await db.insertInto('webhook_deliveries').values({
        id: d.id, event_id: id, endpoint_id: 'we_x', app: h.appId, status: d.status, attempts: 1, next_attempt_ms: d.status === 'pending' ? CUT_MS : null,
        lease_ms: null, created: createdS, last_attempt_ms: createdS * 1000, last_status_code: d.status === 'succeeded' ? 200 : 500,
      }).execute();
      await db.insertInto('webhook_attempts').values({
        id: `${d.id}_a`, delivery_id: d.id, attempted_ms: createdS * 1000, status_code: 500, response_body: null, duration_ms: 5, error: null,
      }).execute();
    }
  }

  const ids = async (table: 'events' | 'webhook_deliveries' | 'webhook_attempts') =>
    (await h.rt.store.db.selectFrom(table).select('id').orderBy('id').execute()).map((r) => r.id);

  it('deletes final webhook history and final withdrawals\' sandbox payouts before the date, keeps the rest and the ledger', async () => {
    await event('evt_old_done', OLD_S, [{ id: 'wd_1', status: 'succeeded' }, { id: 'wd_2', status: 'failed' }]);
    await event('evt_old_open', OLD_S, [{ id: 'wd_3', status: 'succeeded' }, { id: 'wd_4', status: 'pending' }]);
    await event('evt_old_none', OLD_S, []);
    await event('evt_new_done', NEW_S, [{ id: 'wd_5', status: 'succeeded' }]);

    await h.createUser('pr_user');
    await h.fund('pr_user', 10_000);
    const make = async (order: string) =>
      (await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'pr_user', amount: 100, channel: 'alipay', order_no: order, extra: seedExtra('alipay') } })).json.id as string;
    const open = await make('701');
    const done = await make('702');
    expect((await h.request('PUT', h.appPath(`/withdrawals/${done}`), { body: { status: 'canceled' } })).status).toBe(200);
    for (const [key, w, at] of [['k_open', open, CUT_MS - DAY_MS], ['k_done', done, CUT_MS - DAY_MS], ['k_done_new', done, CUT_MS + DAY_MS]] as const) {
      await h.rt.store.db.insertInto('sandbox_payouts').values({ key, withdrawal_id: w, recipient: 'r', amount: 100, submitted_ms: at, queries: 0, submits: 1 }).execute();
    }
    const before = await h.snapshot();

    // A batch of one: every batch boundary is crossed.
    const report = await pruneHistory(h.rt.store, CUT_MS, 1);
    expect(report).toEqual({ events: 2, webhook_deliveries: 2, webhook_attempts: 2, sandbox_payouts: 1, complete: true });
    expect(await ids('events')).toEqual(['evt_new_done', 'evt_old_open']);
    // The unfinished event keeps every delivery and attempt: a resend or the dispatcher still needs them.
    expect(await ids('webhook_deliveries')).toEqual(['wd_3', 'wd_4', 'wd_5']);
    expect(await ids('webhook_attempts')).toEqual(['wd_3_a', 'wd_4_a', 'wd_5_a']);
    const payouts = await h.rt.store.db.selectFrom('sandbox_payouts').select('key').orderBy('key').execute();
    expect(payouts.map((p) => p.key)).toEqual(['k_done_new', 'k_open']);

    const after = await h.snapshot();
    for (const t of ['journal_entries', 'postings', 'balance_transactions', 'withdrawals', 'users', 'balance_settlements'] as const) expect(after[t]).toBe(before[t]);
    expect((await h.verify()).ok).toBe(true);
    // Idempotent: a second run finds nothing more.
    expect(await pruneHistory(h.rt.store, CUT_MS)).toMatchObject({ events: 0, webhook_deliveries: 0, webhook_attempts: 0, sandbox_payouts: 0 });
  });
});

it('--before takes a date or an ISO time, never the future', () => {
  const now = Date.UTC(2026, 10, 26, 12);
  expect(parseBefore('2026-01-31', now)).toBe(Date.UTC(2026, 0, 31));
  expect(parseBefore('2026-11-26T11:00:00Z', now)).toBe(Date.UTC(2026, 10, 26, 11));
  for (const bad of ['', 'yesterday', '2026-13-01', '1700000000', '2026-11-27']) expect(() => parseBefore(bad, now)).toThrow(UsageError);
});
