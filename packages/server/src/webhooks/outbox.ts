import type { Db } from '../store/db.ts';
import { mode } from '../store/schema.ts';
import { newEventId, newTimeOrderedId } from '../domain/ids.ts';
import type { EventType } from '@tixian/sdk';

export interface EmitEvent {
  app: string;
  accountId: string;
  livemode: boolean;
  type: EventType;
  /** The resource as it is at this moment (`data.object`). */
  object: unknown;
  /** Id of the API request that caused the event; null for asynchronous results. */
  request: string | null;
  nowMs: number;
}

/** A bound on fan-out: every event writes one delivery row per subscribed endpoint. */
export const MAX_ENDPOINTS_PER_APP_MODE = 16;

/**
 * The event types tixian emits, the two documented ones (Ping++ §6.10, §13.1; see issue 5): the
 * types an endpoint may subscribe to, and the ones it gets when it names none.
 */
export const DEFAULT_ENDPOINT_EVENTS: readonly EventType[] = ['balance.withdrawal.succeeded', 'balance.withdrawal.failed'];

/**
 * Every type an endpoint may subscribe to: the documented two, plus the extension
 * `balance.withdrawal.pending_confirmation` (a live wx payout waits for the payee to confirm in
 * WeChat), sent only to endpoints that name it.
 */
export const SUBSCRIBABLE_EVENTS: readonly EventType[] = [...DEFAULT_ENDPOINT_EVENTS, 'balance.withdrawal.pending_confirmation'];

/**
 * Transactional outbox: writes the event and one delivery row per subscribed endpoint inside the
 * caller's transaction, so the state change and its notification commit together or not at all.
 * The dispatcher delivers the rows later; a crash loses nothing (a delivery may repeat).
 * The body is serialised once here and delivered byte-for-byte on every attempt (its signature is
 * computed once and every retry carries the same id and bytes, so receivers can dedupe); hence its
 * `pending_webhooks` is the count at creation, while GET /v1/events/{id} shows the current count.
 */
export async function emitEvent(trx: Db, e: EmitEvent): Promise<string> {
  const id = newEventId(e.nowMs);
  const created = Math.floor(e.nowMs / 1000);
  const livemode = mode(e);
  const subscribed = await subscribedEndpoints(trx, e.app, livemode, e.type);
  const body = JSON.stringify({
    id,
    object: 'event',
    created,
    livemode: e.livemode,
    type: e.type,
    data: { object: e.object },
    pending_webhooks: subscribed.length,
    request: e.request,
    scope: e.app,
    acct_id: e.accountId,
  });
  await trx
    .insertInto('events')
    .values({ id, app: e.app, account_id: e.accountId, livemode, type: e.type, created, body, signature: null, signature_kid: null, request: e.request, pending_webhooks: subscribed.length })
    .execute();
  await insertDeliveries(trx, { id, app: e.app, created }, subscribed, e.nowMs);
  return id;
}

/** The active (not removed, not auto-disabled) endpoints of an app and mode that want this event type. */
export async function subscribedEndpoints(trx: Db, app: string, livemode: number, type: string): Promise<{ id: string }[]> {
  const endpoints = await trx
    .selectFrom('webhook_endpoints')
    .select(['id', 'events'])
    .where('app', '=', app)
    .where('livemode', '=', livemode)
    .where('disabled', '=', 0)
    // An auto-disabled endpoint gets nothing new until it is re-enabled.
    .where('auto_disabled_ms', 'is', null)
    .limit(MAX_ENDPOINTS_PER_APP_MODE)
    .execute();
  return endpoints.filter((ep) => (JSON.parse(ep.events) as string[]).includes(type));
}

/** One pending delivery per endpoint, due at once. */
export async function insertDeliveries(
  trx: Db,
  event: { id: string; app: string; created: number },
  endpoints: readonly { id: string }[],
  nowMs: number,
): Promise<void> {
  if (endpoints.length === 0) return;
  await trx
    .insertInto('webhook_deliveries')
    .values(
      endpoints.map((ep) => ({
        id: newTimeOrderedId('whd', nowMs), event_id: event.id, endpoint_id: ep.id, app: event.app, status: 'pending', attempts: 0,
        next_attempt_ms: nowMs, lease_ms: null, created: event.created, last_attempt_ms: null, last_status_code: null,
      })),
    )
    .execute();
}
