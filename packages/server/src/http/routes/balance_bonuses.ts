import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { ANSWER_AT_COMMIT, scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { Amount, Description, ListQuery, Metadata, OrderNo, UserId } from '../schemas.ts';
import { createBalanceBonus, listBalanceBonuses, retrieveBalanceBonus } from '../../services/balance_bonuses.ts';

/** /v1/apps/:app/balance_bonuses — 余额赠送 (§10). */

export const CreditCreate = Type.Object(
  {
    user: UserId,
    amount: Amount,
    order_no: OrderNo,
    description: Type.Optional(Description),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false, examples: [{ user: 'user_001', amount: 500, order_no: 'bonus20170921', description: '注册奖励' }] },
);
export const AppParams = Type.Object({ app: Type.String({ maxLength: 64 }) });
export const AppIdParams = Type.Object({ app: Type.String({ maxLength: 64 }), id: Type.String({ maxLength: 64 }) });
export const UserListQuery = Type.Object({ ...ListQuery, user: Type.Optional(Type.String({ maxLength: 64 })) });

export async function balanceBonusesRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Body: Static<typeof CreditCreate> }>('/apps/:app/balance_bonuses', { schema: { params: AppParams, body: CreditCreate } }, (req) =>
    createBalanceBonus(rt, scopeOf(req), req.body, ANSWER_AT_COMMIT),
  );

  app.get<{ Params: Static<typeof AppIdParams> }>('/apps/:app/balance_bonuses/:id', { schema: { params: AppIdParams } }, (req) =>
    retrieveBalanceBonus(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof UserListQuery> }>(
    '/apps/:app/balance_bonuses',
    { schema: { params: AppParams, querystring: UserListQuery } },
    async (req) => {
      const { data, hasMore } = await listBalanceBonuses(rt, scopeOf(req), req.query);
      return listObject(`/v1/apps/${req.params.app}/balance_bonuses`, data, hasMore);
    },
  );
}
