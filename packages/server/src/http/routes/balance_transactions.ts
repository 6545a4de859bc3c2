import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { ListQuery } from '../schemas.ts';
import { AppIdParams, AppParams } from './balance_bonuses.ts';
import { listBalanceTransactions, retrieveBalanceTransaction } from '../../services/balance_transactions.ts';

/** /v1/apps/:app/balance_transactions — 余额明细 (§12), read-only. */

const Query = Type.Object({
  ...ListQuery,
  user: Type.Optional(Type.String({ maxLength: 64 })),
  type: Type.Optional(Type.String({ maxLength: 32 })),
});

export async function balanceTransactionsRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.get<{ Params: Static<typeof AppIdParams> }>('/apps/:app/balance_transactions/:id', { schema: { params: AppIdParams } }, (req) =>
    retrieveBalanceTransaction(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof Query> }>(
    '/apps/:app/balance_transactions',
    { schema: { params: AppParams, querystring: Query } },
    async (req) => {
      const { data, hasMore } = await listBalanceTransactions(rt, scopeOf(req), req.query);
      return listObject(`/v1/apps/${req.params.app}/balance_transactions`, data, hasMore);
    },
  );
}
