import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { Runtime } from '../runtime.ts';
import type { Scope } from '../services/common.ts';
import { errors } from '../domain/errors.ts';
import { CREDENTIAL_FIELDS, CredentialsError, listCredentials, removeCredentials, type ChannelCredentials, type CredentialField } from '../channels/credentials.ts';
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
const CHANNELS = Object.keys(CREDENTIAL_FIELDS) as (keyof typeof CREDENTIAL_FIELDS)[];
const ChannelName = Type.Union(CHANNELS.map((c) => Type.Literal(c)));
const AppParams = Type.Object({ app: Type.String({ maxLength: 64 }) });
const ChannelParams = Type.Object({ app: Type.String({ maxLength: 64 }), channel: ChannelName });
const ModeQuery = Type.Object({ mode: Mode });
const ModeBody = Type.Object({ mode: Mode }, { additionalProperties: false });
const Short = (max: number | undefined) => Type.String({ minLength: 1, ...(max !== undefined ? { maxLength: max } : {}) });

/**
 * A credential set's body schema, from the same field descriptions the console's form is drawn
 * from (credentials.ts): a key or certificate is a few KiB (refused above 16 KiB), a field outside
 * the description is refused, and which verification group is given is left to credentials.ts.
 */
function credentialsSchema(channel: string, fields: readonly CredentialField[]): TSchema {
  const value = (f: CredentialField): TSchema => {
    switch (f.kind) {
      case 'text':
      case 'pem':
        return Short(f.max_length);
      case 'map':
        return Type.Object(Object.fromEntries((f.keys ?? []).map((k) => [k, Type.Optional(Short(f.max_length))])), { additionalProperties: false });
      case 'list':
        return Type.Array(
          Type.Object(Object.fromEntries((f.items ?? []).map((i) => [i.name, Short(i.max_length)])), { additionalProperties: false }),
          { ...(f.min_items !== undefined ? { minItems: f.min_items } : {}), ...(f.max_items !== undefined ? { maxItems: f.max_items } : {}) },
        );
    }
  };
  const properties = Object.fromEntries(fields.map((f) => [f.name, f.required && !f.group ? value(f) : Type.Optional(value(f))]));
  return Type.Object({ channel: Type.Literal(channel), ...properties }, { additionalProperties: false });
}
const SetBody = Type.Object(
  { mode: Mode, credentials: Type.Union(CHANNELS.map((c) => credentialsSchema(c, CREDENTIAL_FIELDS[c]))) },
  { additionalProperties: false },
);

/** The answer of the fields route: descriptions only; a property not named here is never serialized. */
const FieldAnswer = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('text'), Type.Literal('pem'), Type.Literal('map'), Type.Literal('list')]),
  required: Type.Boolean(),
  secret: Type.Boolean(),
  max_length: Type.Optional(Type.Integer()),
  group: Type.Optional(Type.String()),
  keys: Type.Optional(Type.Array(Type.String())),
  items: Type.Optional(Type.Array(Type.Object({ name: Type.String(), max_length: Type.Integer(), example: Type.Optional(Type.String()) }))),
  min_items: Type.Optional(Type.Integer()),
  max_items: Type.Optional(Type.Integer()),
  default: Type.Optional(Type.String()),
  example: Type.Optional(Type.String()),
});
const FieldsAnswer = Type.Object({ data: Type.Array(Type.Object({ channel: ChannelName, fields: Type.Array(FieldAnswer) })) });
const hidden = { hide: true };

export async function channelRoutes(app: FastifyInstance, rt: Runtime, ctx: AdminContext): Promise<void> {
  const audit = (req: FastifyRequest, scope: Scope, action: string, target: string, detail: Record<string, unknown>) =>
    writeAudit(rt.store.db, rt, { operator: ctx.operatorOf(req), action, app: scope.app, livemode: scope.livemode, target, accountId: scope.accountId, ip: ctx.ipOf(req), detail });

  app.get<{ Params: Static<typeof AppParams> }>('/admin/apps/:app/channel_credentials', { schema: { ...hidden, params: AppParams } }, async (req) => {
    const scope = await ctx.scopeFor(req, req.params.app, 'test');
    return { data: await listCredentials(rt, scope.app) };
  });

  // What the form asks for, per channel: field names and kinds, never a value. Any operator who
  // may see the app may read it (the list is the same for every app).
  app.get<{ Params: Static<typeof AppParams> }>(
    '/admin/apps/:app/channel_credentials/fields',
    { schema: { ...hidden, params: AppParams, response: { 200: FieldsAnswer } } },
    async (req) => {
      await ctx.scopeFor(req, req.params.app, 'test');
      return { data: CHANNELS.map((channel) => ({ channel, fields: CREDENTIAL_FIELDS[channel] })) };
    },
  );

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
