import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../runtime.ts';
import { listUsers, retrieveUser, updateUser } from '../services/users.ts';
import { listBalanceTransactions } from '../services/balance_transactions.ts';
import { writeAudit } from './operators.ts';
import type { AdminContext } from './routes-settings.ts';

const Mode = Type.Union([Type.Literal('test'), Type.Literal('live')]);
const AppParams = Type.Object({ app: Type.String({ maxLength: 64 }) });
const UserParams = Type.Object({ app: Type.String({ maxLength: 64 }), user: Type.String({ maxLength: 64 }) });
const UsersQuery = Type.Object({
  mode: Type.Optional(Mode),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
});
const UserQuery = Type.Object({
  mode: Type.Optional(Mode),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
});
const DisableBody = Type.Object({ mode: Mode, disabled: Type.Boolean() }, { additionalProperties: false });
const hidden = { hide: true };

/** The console's Users page: the v1 services' users, balances, lines and settle accounts; disable/enable audited. */
export async function usersRoutes(app: FastifyInstance, rt: Runtime, ctx: AdminContext): Promise<void> {
  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof UsersQuery> }>(
    '/admin/apps/:app/users',
    { schema: { ...hidden, params: AppParams, querystring: UsersQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
      const page = await listUsers(rt, scope, { limit: req.query.limit ?? 20, ...(req.query.starting_after ? { starting_after: req.query.starting_after } : {}) });
      return { data: page.data, has_more: page.hasMore };
    },
  );

  // One user (search is by exact id: the unique (app, livemode, id) index) and their latest lines.
  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof UserQuery> }>(
    '/admin/apps/:app/users/:user',
    { schema: { ...hidden, params: UserParams, querystring: UserQuery } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.query.mode);
      const user = await retrieveUser(rt, scope, req.params.user);
      const lines = await listBalanceTransactions(rt, scope, {
        user: req.params.user, limit: req.query.limit ?? 20, ...(req.query.starting_after ? { starting_after: req.query.starting_after } : {}),
      });
      return { user, balance_transactions: lines.data, has_more: lines.hasMore };
    },
  );

  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof DisableBody> }>(
    '/admin/apps/:app/users/:user/disabled',
    { schema: { ...hidden, params: UserParams, body: DisableBody } },
    async (req) => {
      const scope = await ctx.scopeFor(req, req.params.app, req.body.mode);
      const user = await updateUser(rt, scope, req.params.user, { disabled: req.body.disabled });
      await writeAudit(rt.store.db, rt, {
        operator: ctx.operatorOf(req), action: req.body.disabled ? 'user.disable' : 'user.enable', app: scope.app, livemode: scope.livemode,
        target: req.params.user, accountId: scope.accountId, ip: ctx.ipOf(req), detail: {},
      });
      return user;
    },
  );
}
