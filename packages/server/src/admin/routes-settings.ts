import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';
import { getSignatureSettings, updateSignatureSettings } from '../services/app_settings.ts';
import { listEndpoints, MAX_URL_LENGTH, removeEndpoint, upsertEndpoint } from '../webhooks/endpoints.ts';
import { signingKeyForApp } from '../security/signing-keys.ts';
import { trigger } from '../cli/trigger.ts';
import { recoverEndpoint, resendEvent } from '../webhooks/events.ts';
import { errors } from '../domain/errors.ts';
import { listSecretKeys, rollSecretKey, ROLL_EXPIRY_MAX_S } from '../services/accounts.ts';
import { WITHDRAWAL_CHANNELS } from '../domain/channels.ts';
import { canPayOut, hasLiveCredentials } from '../services/withdrawals.ts';
import { MAX_TIMESTAMP } from '../http/schemas.ts';
import { writeAudit, type Operator } from './operators.ts';

export interface AdminContext {
  scopeFor(req: FastifyRequest, appId: string, mode: 'test' | 'live' | undefined): Promise<Scope>;
  operatorOf(req: FastifyRequest): Operator;
  ipOf(req: FastifyRequest): string;
}

const Mode = Type.Union([Type.Literal('test'), Type.Literal('live')]);
const AppParams = Type.Object({ app: Type.String({ maxLength: 64 }) });
const AppIdParams = Type.Object({ app: Type.String({ maxLength: 64 }), id: Type.String({ maxLength: 64 }) });
const ModeQuery = Type.Object({ mode: Type.Optional(Mode) });
const RequiredModeQuery = Type.Object({ mode: Mode });
const ModeBody = Type.Object({ mode: Mode }, { additionalProperties: false });
const SignatureBody = Type.Object(
  {
    // A PEM public key is under 2 KiB even at 8192 bits.
    rsa_public_key: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 16_384 }), Type.Null()])),
    require_signature_test: Type.Optional(Type.Boolean()),
    require_signature_live: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const EndpointBody = Type.Object(
  {
    mode: Mode,
    url: Type.String({ minLength: 1, maxLength: MAX_URL_LENGTH }),
    events: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 20, uniqueItems: true })),
  },
  { additionalProperties: false },
);
const TestEventBody = Type.Object(
  { event: Type.Union([Type.Literal('balance.withdrawal.succeeded'), Type.Literal('balance.withdrawal.failed')]) },
  { additionalProperties: false },
);

const DeliveriesQuery = Type.Object({
  mode: Type.Optional(Mode),
  status: Type.Optional(Type.Union(['pending', 'succeeded', 'failed', 'canceled'].map((x) => Type.Literal(x)))),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
});
// Bounded as the list filters are: a larger `since` would overflow PostgreSQL's bigint (a 500, not a 400).
const RecoverBody = Type.Object({ mode: Mode, since: Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP }) }, { additionalProperties: false });
const RollBody = Type.Object(
  { mode: Mode, expire_old_in_s: Type.Integer({ minimum: 0, maximum: ROLL_EXPIRY_MAX_S }) },
  { additionalProperties: false },
);
const hidden = { hide: true };

/**
 * The console's Developers and Webhooks pages: request-signature settings (the merchant's RSA
 * public key and the test/live switches), the key that signs webhooks, the base URL for the
 * official SDKs, webhook endpoints and test events. The same service functions as the CLI; each
 * change is audited right after it commits (these services own their transactions).
 */
export async function settingsRoutes(app: FastifyInstance, rt: Runtime, ctx: AdminContext): Promise<void> {
  const audit = (req: FastifyRequest, scope: Scope, action: string, target: string | null, detail: Record<string, unknown>) =>
    writeAudit(rt.store.db, rt, { operator: ctx.operatorOf(req), action, app: scope.app, livemode: scope.livemode, target, accountId: scope.accountId, ip: ctx.ipOf(req), detail });

  app.get<{ Params: Static<typeof AppParams> }>('/admin/apps/:app/developers', { schema: { ...hidden, params: AppParams } }, async (req) => {
    const scope = await ctx.scopeFor(req, req.params.app, 'test');
    const key = await signingKeyForApp(rt, scope.app);
    // Behind a trusted proxy (--trust-proxy), its X-Forwarded-Proto and -Host: the public address.
    const host = req.host || `${rt.config.host}:${rt.config.port}`;
    return {
      signature: await getSignatureSettings(rt, scope.app),
      platform_public_key: key?.publicKeyPem ?? rt.platformKey.publicKeyPem,
      // What to pass to the official SDKs' setHost / api_base (the console is served by the API itself).
      api_base: `${req.protocol}://${host}`,
    };
  });

  app.post<{ Params: Static<typeof AppParams>; Body: Static<typeof SignatureBody> }>(
    '/admin/apps/:app/signature',
    { schema: { ...hidden, params: AppParams, body: SignatureBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, 'test');
      const settings = await updateSignatureSettings(rt, scope.app, req.body);
      await audit(req, { ...scope, livemode: false }, 'signature.update', scope.app, {
        rsa_public_key_fingerprint: settings.rsa_public_key_fingerprint,
        require_signature_test: settings.require_signature_test,
        require_signature_live: settings.require_signature_live,
      });
      return settings;
    },
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof ModeQuery> }>(
    '/admin/apps/:app/webhook_endpoints',
    { schema: { ...hidden, params: AppParams, querystring: ModeQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
      return { data: await listEndpoints(rt, scope.app, { livemode: scope.livemode }) };
    },
  );

  app.post<{ Params: Static<typeof AppParams>; Body: Static<typeof EndpointBody> }>(
    '/admin/apps/:app/webhook_endpoints',
    { schema: { ...hidden, params: AppParams, body: EndpointBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      const { endpoint, created } = await upsertEndpoint(rt, { app: scope.app, livemode: scope.livemode, url: req.body.url, events: req.body.events });
      await audit(req, scope, created ? 'webhook_endpoint.create' : 'webhook_endpoint.update', endpoint.id, { url: endpoint.url, events: endpoint.events });
      // upsertEndpoint reveals a Standard Webhooks secret (the CLI's one moment to show it); the
      // console never shows one, as its list does not: saving an endpoint again is no way to read it.
      const { secret: _secret, ...shown } = endpoint;
      return shown;
    },
  );

  // The mode is required and must be the endpoint's: the audit line records the mode it names.
  app.delete<{ Params: Static<typeof AppIdParams>; Querystring: Static<typeof RequiredModeQuery> }>(
    '/admin/apps/:app/webhook_endpoints/:id',
    { schema: { ...hidden, params: AppIdParams, querystring: RequiredModeQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
      await endpointOf(scope, req.params.id);
      const result = await removeEndpoint(rt, scope.app, req.params.id);
      await audit(req, scope, 'webhook_endpoint.remove', req.params.id, { canceled_deliveries: result.canceledDeliveries });
      return { id: req.params.id, deleted: true, canceled_deliveries: result.canceledDeliveries };
    },
  );

  // A test event: `tixian trigger` from the console. A test-mode withdrawal on the sandbox channel
  // goes all the way to the chosen outcome and its event goes to every test endpoint of the app.
  app.post<{ Params: Static<typeof AppParams>; Body: Static<typeof TestEventBody> }>(
    '/admin/apps/:app/webhook_endpoints/test',
    { schema: { ...hidden, params: AppParams, body: TestEventBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, 'test');
      const result = await trigger(rt, scope.app, req.body.event, 100);
      if (!result.event) throw errors.invalidParam('event', 'no event was produced', '未产生事件');
      await audit(req, { ...scope, livemode: false }, 'webhook.test_event', result.event.id, { type: result.event.type, withdrawal: result.withdrawal.id });
      return { event: result.event, withdrawal: result.withdrawal.id };
    },
  );

  /** The endpoint if it belongs to the app and mode the operator may see. */
  async function endpointOf(scope: Scope, id: string) {
    const row = await rt.store.db.selectFrom('webhook_endpoints').select(['id', 'url']).where('id', '=', id)
      .where('app', '=', scope.app).where('livemode', '=', scope.livemode ? 1 : 0).executeTakeFirst();
    if (!row) throw errors.notFound('webhook_endpoint', id);
    return row;
  }

  // Newest deliveries to one endpoint in one status (the (endpoint_id, status, created) index), with each one's latest answer.
  app.get<{ Params: Static<typeof AppIdParams>; Querystring: Static<typeof DeliveriesQuery> }>(
    '/admin/apps/:app/webhook_endpoints/:id/deliveries',
    { schema: { ...hidden, params: AppIdParams, querystring: DeliveriesQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
      await endpointOf(scope, req.params.id);
      const rows = await rt.store.db.selectFrom('webhook_deliveries as d').innerJoin('events as e', 'e.id', 'd.event_id')
        .select(['d.id', 'd.event_id', 'e.type', 'd.status', 'd.attempts', 'd.last_status_code', 'd.created', 'd.last_attempt_ms', 'd.next_attempt_ms'])
        .where('d.endpoint_id', '=', req.params.id).where('d.status', '=', req.query.status ?? 'failed')
        .orderBy('d.created', 'desc').limit(req.query.limit ?? 50).execute();
      const last = rows.length === 0 ? [] : await rt.store.db.selectFrom('webhook_attempts').select(['delivery_id', 'response_body', 'error', 'attempted_ms'])
        .where('delivery_id', 'in', rows.map((r) => r.id)).orderBy('attempted_ms', 'desc').limit(500).execute();
      return {
        data: rows.map((r) => {
          const a = last.find((x) => x.delivery_id === r.id);
          return {
            ...r, created: Number(r.created), last_attempt_ms: r.last_attempt_ms === null ? null : Number(r.last_attempt_ms),
            next_attempt_ms: r.next_attempt_ms === null ? null : Number(r.next_attempt_ms),
            last_answer: a ? (a.error ?? a.response_body ?? '').slice(0, 300) : null,
          };
        }),
      };
    },
  );

  app.post<{ Params: Static<typeof AppIdParams>; Body: Static<typeof ModeBody> }>(
    '/admin/apps/:app/events/:id/resend',
    { schema: { ...hidden, params: AppIdParams, body: ModeBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      const event = await rt.store.db.selectFrom('events').select('app').where('id', '=', req.params.id).executeTakeFirst();
      if (!event || event.app !== scope.app) throw errors.notFound('event', req.params.id);
      const result = await resendEvent(rt, { accountId: scope.accountId, livemode: scope.livemode }, req.params.id);
      await audit(req, scope, 'event.resend', req.params.id, { requeued: result.requeued });
      return { id: req.params.id, requeued: result.requeued };
    },
  );

  app.post<{ Params: Static<typeof AppIdParams>; Body: Static<typeof RecoverBody> }>(
    '/admin/apps/:app/webhook_endpoints/:id/recover',
    { schema: { ...hidden, params: AppIdParams, body: RecoverBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      await endpointOf(scope, req.params.id);
      const result = await recoverEndpoint(rt, req.params.id, req.body.since);
      await audit(req, scope, 'webhook_endpoint.recover', req.params.id, { since: req.body.since, requeued: result.requeued, complete: result.complete });
      return result;
    },
  );

  // Secret keys: hints and dates only; a new key is shown once, in the answer to its roll.
  app.get<{ Params: Static<typeof AppParams> }>('/admin/apps/:app/keys', { schema: { ...hidden, params: AppParams } }, async (req) => {
    const scope = await ctx.scopeFor(req, req.params.app, 'test');
    return { data: await listSecretKeys(rt, scope.app) };
  });

  app.post<{ Params: Static<typeof AppParams>; Body: Static<typeof RollBody> }>(
    '/admin/apps/:app/keys/roll',
    { schema: { ...hidden, params: AppParams, body: RollBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      const rolled = await rollSecretKey(rt, { appId: scope.app, livemode: scope.livemode, expireOldInS: req.body.expire_old_in_s });
      await audit(req, scope, 'secret_key.roll', rolled.hint, { old_keys: rolled.old_keys, old_keys_expire_at: rolled.old_keys_expire_at });
      return rolled;
    },
  );

  // Which payout channels can pay in each mode (test: the sandbox; live: a driver and this app's credentials for it).
  app.get<{ Params: Static<typeof AppParams> }>('/admin/apps/:app/channels', { schema: { ...hidden, params: AppParams } }, async (req) => {
    const scope = await ctx.scopeFor(req, req.params.app, 'test');
    const data = [];
    for (const channel of WITHDRAWAL_CHANNELS) {
      const live = canPayOut(rt, channel, true) && (await hasLiveCredentials(rt, scope.app, channel));
      data.push({ channel, test: canPayOut(rt, channel, false), live });
    }
    return { data };
  });
}
