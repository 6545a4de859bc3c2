import type { Db } from '../store/db.ts';
import { newEventId, newInternalId } from '../domain/ids.ts';
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

/** Event types an endpoint gets when it names none: the two documented ones (see issue 5). */
export const DEFAULT_ENDPOINT_EVENTS: readonly EventType[] = ['balance.withdrawal.succeeded', 'balance.withdrawal.failed'];

/**
 * Transactional outbox: writes the event and one delivery row per subscribed endpoint inside the
 * caller's transaction, so the state change and its notification commit together or not at all.
 * The dispatcher delivers the rows later; a crash loses nothing (a delivery may repeat).
 * The body is serialised once here and delivered byte-for-byte on every attempt.
 */
export async function emitEvent(trx: Db, e: EmitEvent): Promise<string> {
  const id = newEventId();
  const created = Math.floor(e.nowMs / 1000);
  const livemode = e.livemode ? 1 : 0;
  const endpoints = await trx
    .selectFrom('webhook_endpoints')
    .select(['id', 'events'])
    .where('app', '=', e.app)
    .where('livemode', '=', livemode)
    .where('disabled', '=', 0)
    .execute();
  const subscribed = endpoints.filter((ep) => (JSON.parse(ep.events) as string[]).includes(e.type));
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
    .values({ id, app: e.app, account_id: e.accountId, livemode, type: e.type, created, body, signature: null, request: e.request, pending_webhooks: subscribed.length })
    .execute();
  if (subscribed.length > 0) {
    await trx
      .insertInto('webhook_deliveries')
      .values(
        subscribed.map((ep) => ({
          id: newInternalId('whd'), event_id: id, endpoint_id: ep.id, app: e.app, status: 'pending', attempts: 0,
          next_attempt_ms: e.nowMs, lease_ms: null, created, last_attempt_ms: null, last_status_code: null,
        })),
      )
      .execute();
  }
  return id;
}
