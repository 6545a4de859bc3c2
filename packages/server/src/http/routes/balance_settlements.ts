import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { ANSWER_AT_COMMIT, scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { AppIdParams, AppParams, CreditCreate, UserListQuery } from './balance_bonuses.ts';
import { createBalanceSettlement, listBalanceSettlements, retrieveBalanceSettlement } from '../../services/balance_settlements.ts';

/**
 * /v1/apps/:app/balance_settlements — 入账, a tixian extension: credit a user's earnings as
 * withdrawable money. Same parameters as balance_bonuses; the official SDKs already read it.
 */
export async function balanceSettlementsRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Body: Static<typeof CreditCreate> }>(
    '/apps/:app/balance_settlements',
    { schema: { params: AppParams, body: CreditCreate } },
    (req) => createBalanceSettlement(rt, scopeOf(req), req.body, ANSWER_AT_COMMIT),
  );

  app.get<{ Params: Static<typeof AppIdParams> }>('/apps/:app/balance_settlements/:id', { schema: { params: AppIdParams } }, (req) =>
    retrieveBalanceSettlement(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof UserListQuery> }>(
    '/apps/:app/balance_settlements',
    { schema: { params: AppParams, querystring: UserListQuery } },
    async (req) => {
      const { data, hasMore } = await listBalanceSettlements(rt, scopeOf(req), req.query);
      return listObject(`/v1/apps/${req.params.app}/balance_settlements`, data, hasMore);
    },
  );
}
