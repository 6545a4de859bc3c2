import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';
import { errors } from '../domain/errors.ts';
import { CredentialsError, listCredentials, removeCredentials, type ChannelCredentials } from '../channels/credentials.ts';
import { checkCredentials, saveCredentials } from '../channels/manage.ts';
import { writeAudit } from './operators.ts';
import type { AdminContext } from './routes-settings.ts';

/**
 * The console's live payout channels (Developers page): an app's own Alipay / WeChat Pay
 * credentials, set or replaced from uploaded files, sealed with the master key and never answered
 * back (only a fingerprint and the non-secret summary), removed, and checked with the signed,
 * harmless call of `tixian channels check`. The same service functions as the CLI; each change is
 * audited, without key material, right after it commits.
 */
const Mode = Type.Union([Type.Literal('test'), Type.Literal('live')]);
const ChannelName = Type.Union([Type.Literal('alipay'), Type.Literal('wechat')]);
const AppParams = Type.Object({ app: Type.String({ maxLength: 64 }) });
const ChannelParams = Type.Object({ app: Type.String({ maxLength: 64 }), channel: ChannelName });
const ModeQuery = Type.Object({ mode: Mode });
const ModeBody = Type.Object({ mode: Mode }, { additionalProperties: false });
// A PEM key or certificate is a few KiB; credentials.ts refuses fields above 16 KiB as well.
const Pem = Type.String({ minLength: 1, maxLength: 16_384 });
const Short = (max: number) => Type.String({ minLength: 1, maxLength: max });
const Alipay = Type.Object(
  {
    channel: Type.Literal('alipay'),
    app_id: Short(32),
    private_key: Pem,
    alipay_public_key: Type.Optional(Pem),
    app_cert: Type.Optional(Pem),
    alipay_public_cert: Type.Optional(Pem),
    alipay_root_cert: Type.Optional(Pem),
    endpoint: Type.Optional(Short(2048)),
    order_title: Type.Optional(Short(64)),
  },
  { additionalProperties: false },
);
const Wechat = Type.Object(
  {
    channel: Type.Literal('wechat'),
    mchid: Short(32),
    merchant_serial: Short(64),
    private_key: Pem,
    wechatpay_public_key: Pem,
    wechatpay_public_key_id: Short(128),
    appids: Type.Object(
      { wx: Type.Optional(Short(64)), wx_pub: Type.Optional(Short(64)), wx_lite: Type.Optional(Short(64)) },
      { additionalProperties: false },
    ),
    transfer_scene_id: Short(32),
    report_infos: Type.Array(Type.Object({ info_type: Short(64), info_content: Short(256) }, { additionalProperties: false }), { minItems: 1, maxItems: 10 }),
    remark: Type.Optional(Short(32)),
    endpoint: Type.Optional(Short(2048)),
  },
  { additionalProperties: false },
);
const SetBody = Type.Object({ mode: Mode, credentials: Type.Union([Alipay, Wechat]) }, { additionalProperties: false });
const hidden = { hide: true };

export async function channelRoutes(app: FastifyInstance, rt: Runtime, ctx: AdminContext): Promise<void> {
  const audit = (req: FastifyRequest, scope: Scope, action: string, target: string, detail: Record<string, unknown>) =>
    writeAudit(rt.store.db, rt, { operator: ctx.operatorOf(req), action, app: scope.app, livemode: scope.livemode, target, accountId: scope.accountId, ip: ctx.ipOf(req), detail });

  app.get<{ Params: Static<typeof AppParams> }>('/admin/apps/:app/channel_credentials', { schema: { ...hidden, params: AppParams } }, async (req) => {
    const scope = await ctx.scopeFor(req, req.params.app, 'test');
    return { data: await listCredentials(rt, scope.app) };
  });

  app.post<{ Params: Static<typeof AppParams>; Body: Static<typeof SetBody> }>(
    '/admin/apps/:app/channel_credentials',
    { schema: { ...hidden, params: AppParams, body: SetBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      let info;
      try {
        info = await saveCredentials(rt, scope.app, scope.livemode, req.body.credentials as ChannelCredentials);
      } catch (err) {
        // The messages of credentials.ts name the field, never its value.
        if (err instanceof CredentialsError) throw errors.invalidParam('credentials', err.message.replace(/\.$/, ''));
        throw err;
      }
      const { previous, ...shown } = info;
      await audit(req, scope, previous ? 'channel_credentials.replace' : 'channel_credentials.set', info.channel, {
        fingerprint: info.fingerprint, ...(previous ? { previous_fingerprint: previous } : {}), summary: info.summary,
      });
      return shown;
    },
  );

  app.delete<{ Params: Static<typeof ChannelParams>; Querystring: Static<typeof ModeQuery> }>(
    '/admin/apps/:app/channel_credentials/:channel',
    { schema: { ...hidden, params: ChannelParams, querystring: ModeQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
      if (!(await removeCredentials(rt, scope.app, scope.livemode, req.params.channel))) throw errors.notFound('channel_credentials', req.params.channel, 'channel');
      await audit(req, scope, 'channel_credentials.remove', req.params.channel, {});
      return { channel: req.params.channel, mode: req.query.mode, deleted: true };
    },
  );

  app.post<{ Params: Static<typeof ChannelParams>; Body: Static<typeof ModeBody> }>(
    '/admin/apps/:app/channel_credentials/:channel/check',
    { schema: { ...hidden, params: ChannelParams, body: ModeBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      const result = await checkCredentials(rt, scope.app, scope.livemode, req.params.channel);
      if (!result) throw errors.notFound('channel_credentials', req.params.channel, 'channel');
      await audit(req, scope, 'channel_credentials.check', req.params.channel, { fingerprint: result.fingerprint, ok: result.ok, message: result.message.slice(0, 300) });
      return { channel: req.params.channel, mode: req.body.mode, ...result };
    },
  );
}
