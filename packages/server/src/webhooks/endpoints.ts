import type { Runtime } from '../runtime.ts';
import type { Db } from '../store/db.ts';
import { isPostgres } from '../store/engine.ts';
import { mode, type WebhookEndpointRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { newInternalId } from '../domain/ids.ts';
import { seconds } from '../clock.ts';
import { DEFAULT_ENDPOINT_EVENTS, MAX_ENDPOINTS_PER_APP_MODE, SUBSCRIBABLE_EVENTS } from './outbox.ts';
import { newStandardWebhookSecret } from './signing.ts';
import { isTestModeAddress, refusedLiteral, urlHost } from './destination.ts';

/**
 * Webhook endpoints: per app and per mode, any number of URLs (up to a bound), each with the event
 * types it wants. Used by the CLI (`tixian apps update --webhook-url`, `tixian apps webhooks …`)
 * and meant for the console as well, so every rule lives here and not in a command.
 */

export const MAX_URL_LENGTH = 2048;

export interface WebhookEndpoint {
  id: string;
  object: 'webhook_endpoint';
  app: string;
  livemode: boolean;
  url: string;
  events: string[];
  standard_webhooks: boolean;
  /** The `whsec_…` secret; only present where the caller asked to reveal it. */
  secret?: string;
  created: number;
  /** 'disabled': turned off by the dispatcher after a long run of failures (re-enable it to resume). */
  status: 'enabled' | 'disabled';
  /** When and why it was disabled (Unix seconds); null while enabled. */
  disabled_at: number | null;
  disabled_reason: string | null;
  /** Tries that failed in a row, and since when (Unix seconds; null while it answers 2xx). */
  consecutive_failures: number;
  failing_since: number | null;
}

export interface EndpointInput {
  app: string;
  livemode: boolean;
  url: string;
  /** Replaces the subscribed types; a new endpoint without it gets DEFAULT_ENDPOINT_EVENTS. */
  events?: readonly string[] | undefined;
  /** true: make (or keep) a Standard Webhooks secret; false: drop it; undefined: leave as is. */
  standardWebhooks?: boolean | undefined;
}

const notHttpUrl = () => errors.invalidParam('url', 'must be an absolute http:// or https:// URL', '必须是以 http:// 或 https:// 开头的完整地址');

/**
 * A live endpoint must use https (the body carries money movements) and must not name a non-public
 * IP address (SSRF; names are checked again on every try, at connect time, by the dispatcher).
 * An operator who allows private destinations (receivers inside their own network, which often
 * speak plain http) lifts both. Test mode keeps http and loopback for development.
 */
function validateEndpointUrl(raw: string, livemode: boolean, allowPrivate: boolean): string {
  const url = raw.trim();
  if (url.length === 0) throw errors.missingParam('url');
  if (url.length > MAX_URL_LENGTH) throw errors.invalidParam('url', `must be at most ${MAX_URL_LENGTH} characters`, `长度不能超过 ${MAX_URL_LENGTH}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw notHttpUrl();
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.hostname) throw notHttpUrl();
  // Credentials in the URL would be stored and shown in clear; receivers authenticate us by signature.
  if (parsed.username || parsed.password) throw errors.invalidParam('url', 'must not contain credentials', '不能包含用户名或密码');
  if (livemode && !allowPrivate) {
    if (parsed.protocol !== 'https:') {
      throw errors.invalidParam('url', 'a live-mode endpoint must use https:// (the operator may allow http with --allow-private-webhooks)', '正式模式的地址必须使用 https://');
    }
    const host = urlHost(parsed).toLowerCase();
    if (refusedLiteral(parsed) !== null || host === 'localhost' || host.endsWith('.localhost')) {
      throw errors.invalidParam(
        'url',
        'a live-mode endpoint must not point to a loopback, private, link-local or otherwise non-public address (the operator may allow it with --allow-private-webhooks)',
        '正式模式的地址不能指向本机、内网或其他非公网地址',
      );
    }
  } else if (!allowPrivate && refusedLiteral(parsed, isTestModeAddress) !== null) {
    throw errors.invalidParam(
      'url',
      'an endpoint must not point to a link-local (169.254.0.0/16, fe80::/10), metadata, multicast or unspecified address (the operator may allow it with --allow-private-webhooks)',
      '地址不能指向链路本地、元数据服务或其他不可用地址',
    );
  }
  return url;
}

function validateEventTypes(types: readonly string[]): string[] {
  const unique = [...new Set(types.map((t) => t.trim()).filter((t) => t.length > 0))];
  if (unique.length === 0) throw errors.invalidParam('events', 'name at least one event type', '至少需要一个事件类型');
  for (const t of unique) {
    if (!(SUBSCRIBABLE_EVENTS as readonly string[]).includes(t)) {
      throw errors.invalidParam('events', `unknown event type ${t.slice(0, 64)}; known: ${SUBSCRIBABLE_EVENTS.join(', ')}`, `未知的事件类型 ${t.slice(0, 64)}`);
    }
  }
  return unique;
}

/**
 * Refuses what upsertEndpoint would refuse of the input itself (the URL, the event types), without
 * writing anything: a command that changes several settings at once checks them all first.
 */
export function checkEndpointInput(rt: Runtime, input: Pick<EndpointInput, 'livemode' | 'url' | 'events'>): void {
  validateEndpointUrl(input.url, input.livemode, rt.config.allowPrivateWebhooks);
  if (input.events !== undefined) validateEventTypes(input.events);
}

function toEndpoint(rt: Runtime, row: WebhookEndpointRow, reveal: boolean): WebhookEndpoint {
  const out: WebhookEndpoint = {
    id: row.id,
    object: 'webhook_endpoint',
    app: row.app,
    livemode: row.livemode === 1,
    url: row.url,
    events: JSON.parse(row.events) as string[],
    standard_webhooks: row.secret !== null,
    created: row.created,
    status: row.auto_disabled_ms === null ? 'enabled' : 'disabled',
    disabled_at: row.auto_disabled_ms === null ? null : Math.floor(row.auto_disabled_ms / 1000),
    disabled_reason: row.auto_disabled_reason,
    consecutive_failures: row.failure_streak,
    failing_since: row.failing_since_ms === null ? null : Math.floor(row.failing_since_ms / 1000),
  };
  if (reveal && row.secret !== null) out.secret = rt.box.open(row.secret);
  return out;
}

async function lockApp(rt: Runtime, trx: Db, app: string): Promise<void> {
  let q = trx.selectFrom('apps').select('id').where('id', '=', app);
  // Serialise endpoint changes of one app on PostgreSQL so two writers cannot both pass the bound;
  // SQLite already serialises writers from BEGIN IMMEDIATE.
  if (rt.store.engine === 'postgres') q = q.forUpdate();
  if (!(await q.executeTakeFirst())) throw errors.notFound('app', app, 'app');
}

/**
 * Adds an endpoint, or changes the one with the same URL in this app and mode (so running the same
 * command twice does not deliver every event twice). Returns the endpoint with its secret revealed,
 * since this is the moment an operator needs to copy it.
 */
export async function upsertEndpoint(rt: Runtime, input: EndpointInput): Promise<{ endpoint: WebhookEndpoint; created: boolean }> {
  const url = validateEndpointUrl(input.url, input.livemode, rt.config.allowPrivateWebhooks);
  const events = input.events === undefined ? undefined : validateEventTypes(input.events);
  const livemode = mode(input);
  return rt.store.transaction(async (trx) => {
    await lockApp(rt, trx, input.app);
    const active = await trx
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('app', '=', input.app)
      .where('livemode', '=', livemode)
      .where('disabled', '=', 0)
      .limit(MAX_ENDPOINTS_PER_APP_MODE + 1)
      .execute();
    const existing = active.find((e) => e.url === url);
    if (existing) {
      const secret =
        input.standardWebhooks === undefined ? existing.secret
        : input.standardWebhooks ? (existing.secret ?? rt.box.seal(newStandardWebhookSecret()))
        : null;
      const eventsText = events ? JSON.stringify(events) : existing.events;
      await trx.updateTable('webhook_endpoints').set({ events: eventsText, secret }).where('id', '=', existing.id).execute();
      return { endpoint: toEndpoint(rt, { ...existing, events: eventsText, secret }, true), created: false };
    }
    if (active.length >= MAX_ENDPOINTS_PER_APP_MODE) throw errors.tooManyWebhookEndpoints(MAX_ENDPOINTS_PER_APP_MODE);
    const row: WebhookEndpointRow = {
      id: newInternalId('we'),
      app: input.app,
      livemode,
      url,
      events: JSON.stringify(events ?? DEFAULT_ENDPOINT_EVENTS),
      secret: input.standardWebhooks ? rt.box.seal(newStandardWebhookSecret()) : null,
      created: seconds(rt.clock),
      disabled: 0,
      failure_streak: 0,
      failing_since_ms: null,
      auto_disabled_ms: null,
      auto_disabled_reason: null,
    };
    await trx.insertInto('webhook_endpoints').values(row).execute();
    return { endpoint: toEndpoint(rt, row, true), created: true };
  });
}

/** The active endpoints of an app, both modes unless one is named; test first, then oldest first. */
export async function listEndpoints(
  rt: Runtime,
  app: string,
  options: { livemode?: boolean; revealSecrets?: boolean } = {},
): Promise<WebhookEndpoint[]> {
  let q = rt.store.db.selectFrom('webhook_endpoints').selectAll().where('app', '=', app).where('disabled', '=', 0);
  if (options.livemode !== undefined) q = q.where('livemode', '=', mode({ livemode: options.livemode }));
  const rows = await q.orderBy('livemode').orderBy('created').orderBy('id').limit(2 * MAX_ENDPOINTS_PER_APP_MODE).execute();
  return rows.map((r) => toEndpoint(rt, r, options.revealSecrets ?? false));
}

/**
 * Removes an endpoint: it gets no new events, and deliveries still waiting for it are canceled
 * (their events' pending_webhooks drop, since nothing will be delivered there any more). The row is
 * kept, disabled, so past deliveries and attempts still name a known endpoint.
 */
export async function removeEndpoint(rt: Runtime, app: string, id: string): Promise<{ canceledDeliveries: number }> {
  return rt.store.transaction(async (trx) => {
    await lockApp(rt, trx, app);
    const row = await trx.selectFrom('webhook_endpoints').select('id').where('id', '=', id).where('app', '=', app).where('disabled', '=', 0).executeTakeFirst();
    if (!row) throw errors.notFound('webhook_endpoint', id);
    await trx.updateTable('webhook_endpoints').set({ disabled: 1 }).where('id', '=', id).execute();
    return { canceledDeliveries: await endWaitingDeliveries(trx, id, 'canceled') };
  });
}

/**
 * Ends every delivery still waiting for an endpoint: 'canceled' (removed; nothing will be sent) or
 * 'failed' (auto-disabled; `tixian events recover --endpoint` sends them again after re-enabling).
 * Their events' pending_webhooks drop. Returns how many deliveries ended.
 */
export async function endWaitingDeliveries(trx: Db, endpointId: string, status: 'canceled' | 'failed'): Promise<number> {
  const ended = { status, next_attempt_ms: null, lease_ms: null };
  if (isPostgres(trx)) {
    // One statement: the deliveries this ends (locked, and looked at again once another process's
    // record of one commits) are the ones taken out of their events' counts. Counting the events
    // first, from a snapshot, took a delivery another process was recording as done out twice.
    const row = await trx
      .with('ended', (db) => db.updateTable('webhook_deliveries').set(ended).where('endpoint_id', '=', endpointId).where('status', '=', 'pending').returning('event_id'))
      .with('counted', (db) => db.updateTable('events')
        .set((eb) => ({ pending_webhooks: eb('pending_webhooks', '-', 1) }))
        .where('id', 'in', (eb) => eb.selectFrom('ended').select('event_id'))
        .where('pending_webhooks', '>', 0))
      .selectFrom('ended')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
  // SQLite has one writer: nothing records a delivery between these two statements.
  // One statement each, not a loop: the number of waiting deliveries is not bounded by us.
  await trx
    .updateTable('events')
    .set((eb) => ({ pending_webhooks: eb('pending_webhooks', '-', 1) }))
    .where('id', 'in', (eb) => eb.selectFrom('webhook_deliveries').select('event_id').where('endpoint_id', '=', endpointId).where('status', '=', 'pending'))
    .where('pending_webhooks', '>', 0)
    .execute();
  const res = await trx
    .updateTable('webhook_deliveries')
    .set(ended)
    .where('endpoint_id', '=', endpointId)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/**
 * `tixian apps webhooks enable APP WE`: turns an auto-disabled endpoint back on with a clean
 * record (breaker closed). Deliveries that failed while it was down are not re-sent by this;
 * `tixian events recover --endpoint WE --since S` does that. Returns the endpoint and whether it was disabled.
 */
export async function enableEndpoint(rt: Runtime, app: string, id: string): Promise<{ endpoint: WebhookEndpoint; wasDisabled: boolean }> {
  return rt.store.transaction(async (trx) => {
    await lockApp(rt, trx, app);
    const row = await trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).where('app', '=', app).where('disabled', '=', 0).executeTakeFirst();
    if (!row) throw errors.notFound('webhook_endpoint', id);
    const fresh = { failure_streak: 0, failing_since_ms: null, auto_disabled_ms: null, auto_disabled_reason: null };
    await trx.updateTable('webhook_endpoints').set(fresh).where('id', '=', id).execute();
    return { endpoint: toEndpoint(rt, { ...row, ...fresh }, false), wasDisabled: row.auto_disabled_ms !== null };
  });
}
