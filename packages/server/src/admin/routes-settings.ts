import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';
import { getSignatureSettings, updateSignatureSettings } from '../services/app_settings.ts';
import { listEndpoints, MAX_URL_LENGTH, removeEndpoint, upsertEndpoint } from '../webhooks/endpoints.ts';
import { signingKeyForApp } from '../security/signing-keys.ts';
import { trigger } from '../cli/trigger.ts';
import { errors } from '../domain/errors.ts';
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
    const host = req.headers.host ?? `${rt.config.host}:${rt.config.port}`;
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
      return endpoint;
    },
  );

  app.delete<{ Params: Static<typeof AppIdParams>; Querystring: Static<typeof ModeQuery> }>(
    '/admin/apps/:app/webhook_endpoints/:id',
    { schema: { ...hidden, params: AppIdParams, querystring: ModeQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
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
}
