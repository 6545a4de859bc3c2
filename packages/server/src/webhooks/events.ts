import { sql } from 'kysely';
import type { Event } from '@tixian/sdk';
import type { Runtime } from '../runtime.ts';
import type { Db } from '../store/db.ts';
import { mode, type EventRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { listPage, type AnyQuery, type ListParams } from '../store/paging.ts';
import { insertDeliveries, subscribedEndpoints } from './outbox.ts';
import { redactedUrl } from './destination.ts';

/**
 * Events (§13) as merchants see them, and the operator's levers on their deliveries: resend one
 * event, recover everything that failed for an endpoint since a time.
 */

/** Who may see an event: the key's account, in the key's mode. Null = the operator (CLI). */
export interface EventScope {
  accountId: string;
  livemode: boolean;
}

export interface EventListParams extends ListParams {
  type?: string;
  /** false: events with at least one delivery not (yet) succeeded; true: events with none such. */
  delivery_success?: boolean;
}

/** Re-queuing touches at most this many deliveries per transaction (recover walks in batches). */
const REQUEUE_BATCH = 500;
/** recover stops after this many batches; run it again to go on (it reports how many it did). */
const MAX_RECOVER_BATCHES = 1000;

/** The event as stored (the delivered bytes), showing the current pending_webhooks. */
function eventObject(row: Pick<EventRow, 'body' | 'pending_webhooks'>): Event {
  const event = JSON.parse(row.body) as Event;
  event.pending_webhooks = row.pending_webhooks;
  return event;
}

/** `forUpdate`: lock the row until the transaction ends (PostgreSQL; SQLite's writers are serialised already). */
async function findEvent(db: Db, scope: EventScope | null, id: string, forUpdate = false): Promise<EventRow> {
  let q = db.selectFrom('events').selectAll().where('id', '=', id);
  if (scope) q = q.where('account_id', '=', scope.accountId).where('livemode', '=', mode(scope));
  if (forUpdate) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  // Another account's or mode's event answers exactly like one that does not exist.
  if (!row) throw errors.notFound('event', id);
  return row;
}

export async function retrieveEvent(rt: Runtime, scope: EventScope, id: string): Promise<Event> {
  return eventObject(await findEvent(rt.store.db, scope, id));
}

/**
 * GET /v1/events (extension): newest first, with type, created and delivery_success filters.
 * The filters apply to the page only, not to the cursor: an event whose deliveries succeeded since
 * it was listed still marks the place to go on from.
 */
export async function listEvents(rt: Runtime, scope: EventScope, p: EventListParams): Promise<{ data: Event[]; hasMore: boolean }> {
  const filtered = (qb: AnyQuery) => {
    let q = qb;
    if (p.type !== undefined) q = q.where('type', '=', p.type);
    if (p.delivery_success !== undefined) {
      // `limit 1 offset 0` keeps PostgreSQL from turning this into a hash join over every event
      // and undelivered delivery (then a sort): evaluated per event, walking events_list newest
      // first, a page costs the same at any table size (webhook_deliveries_unsucceeded answers).
      const unsuccessful = sql<boolean>`exists (select 1 from webhook_deliveries d where d.event_id = events.id and d.status <> 'succeeded' limit 1 offset 0)`;
      q = q.where(p.delivery_success ? sql<boolean>`not ${unsuccessful}` : unsuccessful);
    }
    return q;
  };
  const { rows, hasMore } = await listPage<EventRow>(
    rt.store.db,
    'events',
    (qb) => qb.where('account_id', '=', scope.accountId).where('livemode', '=', mode(scope)),
    p,
    'id',
    filtered,
  );
  return { data: rows.map(eventObject), hasMore };
}

/**
 * Puts deliveries back in the queue, due now, with a fresh Ping++ schedule (their earlier tries stay
 * in webhook_attempts). A delivery being sent right now (leased) is left alone: it is already
 * going out. Finished deliveries count again in their event's pending_webhooks. Deliveries of
 * removed or auto-disabled endpoints are not revived (re-enable the endpoint first). Returns how many deliveries were re-queued.
 */
async function requeue(trx: Db, ids: readonly string[], nowMs: number): Promise<number> {
  if (ids.length === 0) return 0;
  const base = () =>
    trx
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', attempts: 0, next_attempt_ms: nowMs, lease_ms: null })
      .where('id', 'in', ids)
      .where('endpoint_id', 'in', (eb) => eb.selectFrom('webhook_endpoints').select('id').where('disabled', '=', 0).where('auto_disabled_ms', 'is', null));
  // Pending ones first (the revived would match otherwise): not leased, or the lease ran out (the
  // sender crashed). Checked in the UPDATE itself so a dispatcher claiming the row at this moment on
  // PostgreSQL is not overtaken.
  const hurried = await base()
    .where('status', '=', 'pending')
    .where((eb) => eb.or([eb('lease_ms', 'is', null), eb('lease_ms', '<=', nowMs)]))
    .executeTakeFirst();
  const revived = await base().where('status', 'in', ['succeeded', 'failed']).returning('event_id').execute();
  const perEvent = new Map<string, number>();
  for (const r of revived) perEvent.set(r.event_id, (perEvent.get(r.event_id) ?? 0) + 1);
  for (const [eventId, n] of perEvent) {
    await trx
      .updateTable('events')
      .set((eb) => ({ pending_webhooks: eb('pending_webhooks', '+', n) }))
      .where('id', '=', eventId)
      .execute();
  }
  return revived.length + Number(hurried.numUpdatedRows);
}

/**
 * POST /v1/events/{id}/resend and `tixian events resend`: every delivery of the event to an endpoint
 * that still exists is sent again now. An event with no such delivery (no endpoint was subscribed
 * when it happened, or every one it went to has been removed since) gets one per endpoint
 * subscribed now.
 */
export async function resendEvent(rt: Runtime, scope: EventScope | null, id: string): Promise<{ event: Event; requeued: number }> {
  const nowMs = rt.clock.nowMs();
  const result = await rt.store.transaction(async (trx) => {
    // Locked: two resends at once on PostgreSQL must not both find no delivery and both add them.
    const event = await findEvent(trx, scope, id, rt.store.engine === 'postgres');
    const deliveries = await trx
      .selectFrom('webhook_deliveries as d')
      .leftJoin('webhook_endpoints as ep', 'ep.id', 'd.endpoint_id')
      .select(['d.id', 'd.endpoint_id', 'ep.disabled'])
      .where('d.event_id', '=', id)
      .limit(REQUEUE_BATCH)
      .execute();
    const active = deliveries.filter((d) => d.disabled === 0);
    let requeued: number;
    if (active.length > 0) {
      requeued = await requeue(trx, active.map((d) => d.id), nowMs);
    } else {
      const had = new Set(deliveries.map((d) => d.endpoint_id));
      const subscribed = await subscribedEndpoints(trx, event.app, event.livemode, event.type);
      const endpoints = subscribed.filter((ep) => !had.has(ep.id));
      await insertDeliveries(trx, event, endpoints, nowMs);
      if (endpoints.length > 0) {
        await trx.updateTable('events').set((eb) => ({ pending_webhooks: eb('pending_webhooks', '+', endpoints.length) })).where('id', '=', id).execute();
      }
      requeued = endpoints.length;
    }
    const fresh = await trx.selectFrom('events').select(['body', 'pending_webhooks']).where('id', '=', id).executeTakeFirstOrThrow();
    return { event: eventObject(fresh), requeued };
  });
  wakeDispatcher(rt);
  return result;
}

/**
 * `tixian events recover --endpoint WE_ID --since S`: re-queues every delivery to the endpoint that
 * finally failed, for events created at or after S (Unix seconds). Works in batches, each its own
 * short transaction, so a large backlog never holds the database for long.
 */
export async function recoverEndpoint(rt: Runtime, endpointId: string, sinceS: number): Promise<{ requeued: number; complete: boolean }> {
  const endpoint = await rt.store.db.selectFrom('webhook_endpoints').select('id').where('id', '=', endpointId).where('disabled', '=', 0).executeTakeFirst();
  if (!endpoint) throw errors.notFound('webhook_endpoint', endpointId, 'endpoint');
  let requeued = 0;
  for (let batch = 0; batch < MAX_RECOVER_BATCHES; batch++) {
    const n = await rt.store.transaction(async (trx) => {
      const rows = await trx
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('endpoint_id', '=', endpointId)
        .where('status', '=', 'failed')
        .where('created', '>=', sinceS)
        .limit(REQUEUE_BATCH)
        .execute();
      return requeue(trx, rows.map((r) => r.id), rt.clock.nowMs());
    });
    requeued += n;
    if (n > 0) wakeDispatcher(rt);
    if (n < REQUEUE_BATCH) return { requeued, complete: true };
  }
  return { requeued, complete: false };
}

/** Tells a dispatcher in this process that work is due (other processes find it at their next poll). */
export function wakeDispatcher(rt: Runtime): void {
  rt.bus.emit('webhook');
}

/** A delivery of an event to one endpoint, with its latest tries (GET /v1/events/{id}/deliveries). */
export interface WebhookDeliveryView {
  id: string;
  object: 'webhook_delivery';
  event: string;
  endpoint: string;
  /** The endpoint's URL without query or fragment (they may hold a receiver's secret). */
  url: string | null;
  /** pending (tries left), succeeded, failed (schedule exhausted or endpoint disabled), canceled (endpoint removed). */
  status: string;
  attempt_count: number;
  /** When the next try is due (Unix seconds); null when none is. */
  next_attempt: number | null;
  created: number;
  attempts: WebhookAttemptView[];
}

export interface WebhookAttemptView {
  id: string;
  object: 'webhook_attempt';
  /** Unix seconds, and the exact time in ms (tries of one second keep their order). */
  created: number;
  attempted_ms: number;
  /** null when no answer came (timeout, refused connection, refused destination). */
  status_code: number | null;
  /** The first KiB of the answer. */
  response_body: string | null;
  error: string | null;
  duration_ms: number;
}

/** Bounds of the deliveries view: an event fans out to at most 16 endpoints per mode; resends add tries. */
const MAX_DELIVERIES_SHOWN = 64;
const MAX_ATTEMPTS_SHOWN = 50;

/**
 * Every delivery of an event and its latest MAX_ATTEMPTS_SHOWN tries, oldest first: what each
 * receiver answered and when. `scope` null is the operator (CLI).
 */
export async function listEventDeliveries(rt: Runtime, scope: EventScope | null, id: string): Promise<WebhookDeliveryView[]> {
  const db = rt.store.db;
  await findEvent(db, scope, id);
  const deliveries = await db
    .selectFrom('webhook_deliveries as d')
    .leftJoin('webhook_endpoints as ep', 'ep.id', 'd.endpoint_id')
    .select(['d.id', 'd.endpoint_id', 'd.status', 'd.attempts', 'd.next_attempt_ms', 'd.lease_ms', 'd.created', 'ep.url'])
    .where('d.event_id', '=', id)
    .orderBy('d.created')
    .orderBy('d.id')
    .limit(MAX_DELIVERIES_SHOWN)
    .execute();
  const out: WebhookDeliveryView[] = [];
  for (const d of deliveries) {
    const attempts = await db
      .selectFrom('webhook_attempts')
      .selectAll()
      .where('delivery_id', '=', d.id)
      .orderBy('attempted_ms', 'desc')
      .orderBy('id', 'desc')
      .limit(MAX_ATTEMPTS_SHOWN)
      .execute();
    attempts.reverse();
    // A leased delivery is being sent: its next_attempt_ms is the lease end, not a scheduled try.
    const dueMs = d.lease_ms !== null ? null : d.next_attempt_ms;
    out.push({
      id: d.id,
      object: 'webhook_delivery',
      event: id,
      endpoint: d.endpoint_id,
      url: d.url === null ? null : redactedUrl(d.url),
      status: d.status,
      attempt_count: d.attempts,
      next_attempt: dueMs === null ? null : Math.ceil(Number(dueMs) / 1000),
      created: Number(d.created),
      attempts: attempts.map((a) => ({
        id: a.id,
        object: 'webhook_attempt',
        created: Math.floor(Number(a.attempted_ms) / 1000),
        attempted_ms: Number(a.attempted_ms),
        status_code: a.status_code,
        response_body: a.response_body,
        error: a.error,
        duration_ms: a.duration_ms,
      })),
    });
  }
  return out;
}
