import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';
import { withdrawalToWire } from '../services/withdrawals.ts';
import { balanceTransactionToWire } from '../services/balance_transactions.ts';
import { maskSettleAccountExtra } from '../services/settle_accounts_view.ts';
import { errors } from '../domain/errors.ts';
import { auditLines } from './audit.ts';

/** How many events, deliveries and attempts the detail view shows at most: a withdrawal has a handful. */
const DETAIL_MAX = 50;
/** Events are looked for in the week after the withdrawal was made (a payout settles well within it). */
const EVENT_WINDOW_S = 7 * 86_400;

/**
 * One withdrawal as the console shows it: the object (recipient always masked, also when the
 * merchant sent the account in `extra`), its ledger lines, its events with every webhook attempt,
 * and the operator actions on it. Every read is bounded and uses an index.
 */
export async function withdrawalDetail(rt: Runtime, scope: Scope, id: string) {
  const db = rt.store.db;
  const row = await db.selectFrom('withdrawals').selectAll()
    .where('id', '=', id).where('app', '=', scope.app).where('livemode', '=', scope.livemode ? 1 : 0).executeTakeFirst();
  if (!row) throw errors.notFound('withdrawal', id);
  const withdrawal = { ...withdrawalToWire(row), extra: maskSettleAccountExtra(JSON.parse(row.extra) as Record<string, unknown>) };
  // The user's lines (btx_user index) from the withdrawal's creation on, whose source is this withdrawal.
  const lines = await db.selectFrom('balance_transactions').selectAll()
    .where('app', '=', scope.app).where('livemode', '=', scope.livemode ? 1 : 0).where('user', '=', row.user)
    .where('created', '>=', row.created).where('source', '=', id)
    .orderBy('created', 'asc').orderBy('id', 'asc').limit(DETAIL_MAX).execute();
  // Events carry the object in their body; the events_list index bounds the scan to the window.
  const events = await db.selectFrom('events').select(['id', 'type', 'created', 'pending_webhooks'])
    .where('account_id', '=', scope.accountId).where('livemode', '=', scope.livemode ? 1 : 0)
    .where('created', '>=', row.created).where('created', '<=', row.created + EVENT_WINDOW_S)
    .where('body', 'like', `%"id":"${row.id}"%`)
    .orderBy('created', 'asc').limit(DETAIL_MAX).execute();
  const deliveries = events.length === 0 ? [] : await db.selectFrom('webhook_deliveries')
    .innerJoin('webhook_endpoints', 'webhook_endpoints.id', 'webhook_deliveries.endpoint_id')
    .select(['webhook_deliveries.id', 'webhook_deliveries.event_id', 'webhook_deliveries.status', 'webhook_deliveries.attempts',
      'webhook_deliveries.last_status_code', 'webhook_deliveries.next_attempt_ms', 'webhook_endpoints.url'])
    .where('webhook_deliveries.event_id', 'in', events.map((e) => e.id)).limit(DETAIL_MAX).execute();
  const attempts = deliveries.length === 0 ? [] : await db.selectFrom('webhook_attempts').selectAll()
    .where('delivery_id', 'in', deliveries.map((d) => d.id)).orderBy('attempted_ms', 'asc').limit(DETAIL_MAX).execute();
  const actions = await auditLines(rt, { accountId: scope.accountId, app: scope.app, target: id, limit: DETAIL_MAX });
  return {
    withdrawal,
    balance_transactions: lines.map(balanceTransactionToWire),
    events: events.map((e) => ({ ...e, created: Number(e.created) })),
    webhook_deliveries: deliveries.map((d) => ({
      ...d, next_attempt_ms: d.next_attempt_ms === null ? null : Number(d.next_attempt_ms),
      attempts_list: attempts.filter((a) => a.delivery_id === d.id).map((a) => ({
        id: a.id, attempted_ms: Number(a.attempted_ms), status_code: a.status_code, duration_ms: Number(a.duration_ms), error: a.error,
        // The receiver's answer, cut short: it is the merchant's text, shown only to operators.
        response_body: a.response_body === null ? null : a.response_body.slice(0, 500),
      })),
    })),
    audit: actions.data,
  };
}
