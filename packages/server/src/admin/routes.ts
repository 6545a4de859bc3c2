import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { WithdrawalChannel } from '@tixian/sdk';
import type { Runtime } from '../runtime.ts';
import { ApiError, errors } from '../domain/errors.ts';
import { WITHDRAWAL_CHANNELS } from '../domain/channels.ts';
import type { Scope } from '../services/common.ts';
import { cancelWithdrawal, confirmWithdrawal, withdrawalToWire } from '../services/withdrawals.ts';
import { listPage, type AnyQuery } from '../store/paging.ts';
import type { WithdrawalRow } from '../store/schema.ts';
import type { Db } from '../store/db.ts';
import { MAX_TIMESTAMP } from '../http/schemas.ts';
import { csrfMatches, csrfTokenFor, login, LoginThrottle, logout, sessionOperator, SESSION_TTL_MS, writeAudit, type Operator } from './operators.ts';
import { PASSWORD_MAX } from './passwords.ts';
import { withdrawalDetail } from './views.ts';
import { auditLines } from './audit.ts';
import { overview } from './overview.ts';
import { settingsRoutes } from './routes-settings.ts';
import { usersRoutes } from './routes-users.ts';
import { channelRoutes } from './routes-channels.ts';

/**
 * The management API of the console (/admin/…): operator sessions, not secret keys. A session is
 * an HttpOnly SameSite=Strict cookie; every change also needs the session's CSRF token in
 * `x-csrf-token` (and, when the browser sends one, an Origin of this host). Operators of one
 * account see only its apps; any other app answers 404 as if it did not exist. Every change goes
 * through the same service functions as the v1 API and writes its audit line in their transaction.
 */
export const SESSION_COOKIE = 'tixian_session';
/** Batch confirm/cancel of selected rows: the same bound as Ping++'s batch_withdrawals. */
export const BATCH_MAX = 200;
const LIST_MAX = 100;

declare module 'fastify' {
  interface FastifyRequest {
    operator: Operator | null;
  }
}

const sessionRequired = () => new ApiError({ status: 401, code: 'session_required', zh: '请先登录管理平台。', en: 'Log in to the console first.' });
const csrfFailed = () => new ApiError({ status: 403, code: 'csrf_token_invalid', zh: 'CSRF 校验失败，请刷新页面后重试。', en: 'CSRF check failed: reload the page and try again.' });
const badLogin = () => new ApiError({ status: 401, code: 'login_failed', zh: '邮箱或密码错误。', en: 'Wrong e-mail or password.' });
const tooManyLogins = (s: number) => new ApiError({ status: 429, code: 'too_many_logins', zh: `登录失败次数过多，请 ${s} 秒后重试。`, en: `Too many failed logins: try again in ${s} s.` });

function cookieToken(req: FastifyRequest): string | null {
  const header = req.headers.cookie;
  if (typeof header !== 'string' || header.length > 8192) return null;
  for (const part of header.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) return rest.join('=') || null;
  }
  return null;
}

/** `Secure` when the browser used https: to this server, or (--trust-proxy) to the proxy in front. */
function setCookie(req: FastifyRequest, reply: FastifyReply, value: string, maxAgeS: number): void {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  reply.header('set-cookie', `${SESSION_COOKIE}=${value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure}`);
}

const Mode = Type.Union([Type.Literal('test'), Type.Literal('live')]);
const AppParams = Type.Object({ app: Type.String({ maxLength: 64 }) });
const AppIdParams = Type.Object({ app: Type.String({ maxLength: 64 }), id: Type.String({ maxLength: 64 }) });
const ModeQuery = Type.Object({ mode: Type.Optional(Mode) });
const ModeBody = Type.Object({ mode: Mode }, { additionalProperties: false });
const LoginBody = Type.Object(
  { email: Type.String({ minLength: 1, maxLength: 255 }), password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX }) },
  { additionalProperties: false },
);
const Status = Type.Union(['created', 'pending', 'succeeded', 'failed', 'canceled'].map((s) => Type.Literal(s)));
const WithdrawalsQuery = Type.Object({
  mode: Type.Optional(Mode),
  status: Type.Optional(Status),
  channel: Type.Optional(Type.Union(WITHDRAWAL_CHANNELS.map((c) => Type.Literal(c)))),
  user: Type.Optional(Type.String({ maxLength: 64 })),
  order_no: Type.Optional(Type.String({ maxLength: 64 })),
  // Bounded as the v1 list's: a larger value overflowed PostgreSQL's bigint (a 500, not a 400).
  'created[gte]': Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
  'created[lte]': Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_MAX })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
});
const BatchBody = Type.Object(
  {
    mode: Mode,
    action: Type.Union([Type.Literal('confirm'), Type.Literal('cancel')]),
    ids: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: BATCH_MAX, uniqueItems: true }),
  },
  { additionalProperties: false },
);
const AuditQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_MAX })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
  target: Type.Optional(Type.String({ maxLength: 64 })),
});

const hidden = { hide: true };

const adminRouteLists = new WeakMap<Runtime, { method: string; url: string }[]>();
/** Every /admin route of the app built on `rt` (the security tests walk each one). */
export const adminRouteList = (rt: Runtime) => adminRouteLists.get(rt) ?? [];

export async function adminRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  const throttle = new LoginThrottle(() => rt.clock.nowMs());
  app.decorateRequest('operator', null);
  const registered: { method: string; url: string }[] = [];
  adminRouteLists.set(rt, registered);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') registered.push({ method, url: r.url });
  });

  app.addHook('onRequest', async (req) => {
    const mutating = req.method !== 'GET' && req.method !== 'HEAD';
    if (mutating) {
      // A browser names the page that sent a request; a change from another site is refused even
      // before the CSRF token is looked at. req.host is the Host header, or behind a trusted proxy
      // (--trust-proxy) its X-Forwarded-Host: the address the browser used.
      const origin = req.headers.origin;
      if (typeof origin === 'string' && origin !== 'null') {
        let host: string | null = null;
        try {
          host = new URL(origin).host;
        } catch {
          host = null;
        }
        if (host !== req.host) throw csrfFailed();
      }
    }
    const isLogin = req.method === 'POST' && req.routeOptions.url === '/admin/session';
    if (isLogin) return;
    const token = cookieToken(req);
    const operator = token ? await sessionOperator(rt, token) : null;
    if (!token || !operator) throw sessionRequired();
    if (mutating && !csrfMatches(token, req.headers['x-csrf-token'] as string | undefined)) throw csrfFailed();
    req.operator = operator;
  });

  const operatorOf = (req: FastifyRequest): Operator => {
    if (!req.operator) throw new Error('an /admin route was reached without a session');
    return req.operator;
  };
  // The client's address: the socket's, or (--trust-proxy) the one the trusted proxies forwarded.
  const ipOf = (req: FastifyRequest) => req.ip.slice(0, 64);

  /** The app if this operator may see it: another account's app answers 404 like one that does not exist. */
  async function scopeFor(req: FastifyRequest, appId: string, modeName: 'test' | 'live' | undefined): Promise<Scope> {
    const operator = operatorOf(req);
    const row = await rt.store.db.selectFrom('apps').select(['id', 'account_id']).where('id', '=', appId).executeTakeFirst();
    if (!row || (operator.account_id !== null && row.account_id !== operator.account_id)) throw errors.notFound('app', appId, 'app');
    return { accountId: row.account_id, app: row.id, livemode: modeName === 'live', requestId: req.id };
  }

  const audited = (req: FastifyRequest, scope: Scope, action: string, target: string) => async (trx: Db, row: WithdrawalRow) =>
    writeAudit(trx, rt, {
      operator: operatorOf(req), action, app: scope.app, livemode: scope.livemode, target, accountId: scope.accountId, ip: ipOf(req),
      detail: { amount: row.amount, status: row.status, order_no: row.order_no, user: row.user },
    });

  app.get('/admin/session', { schema: hidden }, async (req) => ({ operator: operatorOf(req), csrf_token: csrfTokenFor(cookieToken(req)!) }));

  app.post<{ Body: Static<typeof LoginBody> }>('/admin/session', { schema: { ...hidden, body: LoginBody } }, async (req, reply) => {
    const email = req.body.email.trim().toLowerCase();
    const ip = ipOf(req);
    const waitMs = throttle.blockedFor(email, ip);
    if (waitMs > 0) {
      reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
      throw tooManyLogins(Math.ceil(waitMs / 1000));
    }
    throttle.tried(email, ip);
    const session = await login(rt, email, req.body.password, ip);
    if (!session) {
      req.log.warn({ ip }, 'console login failed');
      throw badLogin();
    }
    throttle.succeeded(email, ip);
    setCookie(req, reply, session.token, Math.floor(SESSION_TTL_MS / 1000));
    return { operator: session.operator, csrf_token: csrfTokenFor(session.token) };
  });

  app.delete('/admin/session', { schema: hidden }, async (req, reply) => {
    await logout(rt, cookieToken(req)!, operatorOf(req), ipOf(req));
    setCookie(req, reply, '', 0);
    return { deleted: true };
  });

  app.get('/admin/apps', { schema: hidden }, async (req) => {
    const operator = operatorOf(req);
    const rows = await rt.store.db
      .selectFrom('apps')
      .innerJoin('accounts', 'accounts.id', 'apps.account_id')
      .select(['apps.id', 'apps.name', 'apps.created', 'accounts.id as account', 'accounts.name as account_name'])
      .$if(operator.account_id !== null, (qb) => qb.where('apps.account_id', '=', operator.account_id!))
      .orderBy('apps.created')
      .limit(500)
      .execute();
    return { data: rows };
  });

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof WithdrawalsQuery> }>(
    '/admin/apps/:app/withdrawals',
    { schema: { ...hidden, params: AppParams, querystring: WithdrawalsQuery } },
    async (req) => {
      const q = req.query;
      const scope = await scopeFor(req, req.params.app, q.mode);
      // The same (app, livemode[, status|user|channel], created, id) indexes as the v1 list; cursor
      // pages only (no offset, no total), so page N costs what page 1 does at any table size.
      const scoped = (qb: AnyQuery) => qb.where('app', '=', scope.app).where('livemode', '=', scope.livemode ? 1 : 0);
      // The filters narrow the page, not the cursor look-up: an operator confirms the withdrawals of
      // a `created` page, then asks for the next one after a row no longer `created` (as the v1 list).
      // Empty form fields are no filter here.
      const filtered = (qb: AnyQuery) => {
        if (q.status) qb = qb.where('status', '=', q.status);
        if (q.user) qb = qb.where('user', '=', q.user);
        if (q.channel) qb = qb.where('channel', '=', q.channel as WithdrawalChannel);
        if (q.order_no) qb = qb.where('order_no', '=', q.order_no);
        return qb;
      };
      const { rows, hasMore } = await listPage<WithdrawalRow>(rt.store.db, 'withdrawals', scoped, {
        limit: q.limit ?? 20,
        ...(q.starting_after ? { starting_after: q.starting_after } : {}),
        ...(q['created[gte]'] !== undefined ? { 'created[gte]': q['created[gte]'] } : {}),
        ...(q['created[lte]'] !== undefined ? { 'created[lte]': q['created[lte]'] } : {}),
      }, 'id', filtered);
      return { data: rows.map(withdrawalToWire), has_more: hasMore };
    },
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof ModeQuery> }>(
    '/admin/apps/:app/overview',
    { schema: { ...hidden, params: AppParams, querystring: ModeQuery } },
    async (req) => overview(rt, await scopeFor(req, req.params.app, req.query.mode)),
  );

  app.get<{ Params: Static<typeof AppIdParams>; Querystring: Static<typeof ModeQuery> }>(
    '/admin/apps/:app/withdrawals/:id',
    { schema: { ...hidden, params: AppIdParams, querystring: ModeQuery } },
    async (req) => withdrawalDetail(rt, await scopeFor(req, req.params.app, req.query.mode), req.params.id),
  );

  for (const action of ['confirm', 'cancel'] as const) {
    app.post<{ Params: Static<typeof AppIdParams>; Body: Static<typeof ModeBody> }>(
      `/admin/apps/:app/withdrawals/:id/${action}`,
      { schema: { ...hidden, params: AppIdParams, body: ModeBody } },
      async (req) => {
        const scope = await scopeFor(req, req.params.app, req.body.mode);
        const within = audited(req, scope, `withdrawal.${action}`, req.params.id);
        return action === 'confirm'
          ? confirmWithdrawal(rt, scope, req.params.id, { within })
          : cancelWithdrawal(rt, scope, req.params.id, { within });
      },
    );
  }

  // Each selected withdrawal is confirmed or canceled on its own (its own transaction and audit
  // line), so one that cannot move does not hold back the others; the answer says which did what.
  app.post<{ Params: Static<typeof AppParams>; Body: Static<typeof BatchBody> }>(
    '/admin/apps/:app/withdrawals/batch',
    { schema: { ...hidden, params: AppParams, body: BatchBody } },
    async (req) => {
      const scope = await scopeFor(req, req.params.app, req.body.mode);
      const results: { id: string; ok: boolean; status?: string; error?: { code: string | undefined; message: string } }[] = [];
      for (const id of req.body.ids) {
        const within = audited(req, scope, `withdrawal.${req.body.action}`, id);
        try {
          const w = req.body.action === 'confirm' ? await confirmWithdrawal(rt, scope, id, { within }) : await cancelWithdrawal(rt, scope, id, { within });
          results.push({ id, ok: true, status: w.status });
        } catch (err) {
          if (!(err instanceof ApiError) || err.status >= 500) throw err;
          results.push({ id, ok: false, error: { code: err.code, message: req.headers['accept-language']?.startsWith('en') ? err.en : err.zh } });
        }
      }
      return { data: results, succeeded: results.filter((r) => r.ok).length, failed: results.filter((r) => !r.ok).length };
    },
  );

  await settingsRoutes(app, rt, { scopeFor, operatorOf, ipOf });
  await usersRoutes(app, rt, { scopeFor, operatorOf, ipOf });
  await channelRoutes(app, rt, { scopeFor, operatorOf, ipOf });

  app.get<{ Querystring: Static<typeof AuditQuery> }>('/admin/audit', { schema: { ...hidden, querystring: AuditQuery } }, async (req) =>
    auditLines(rt, { accountId: operatorOf(req).account_id, target: req.query.target, limit: req.query.limit ?? 50, startingAfter: req.query.starting_after }),
  );
}
