import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { ANSWER_AT_COMMIT, scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { Amount, Description, Fee, ListQuery, Metadata, OrderNo, UserId } from '../schemas.ts';
import { AppIdParams, AppParams } from './balance_bonuses.ts';
import { createBalanceTransfer, listBalanceTransfers, retrieveBalanceTransfer } from '../../services/balance_transfers.ts';

/** /v1/apps/:app/balance_transfers — 余额转账 (§11). */

const BalanceTransferCreate = Type.Object(
  {
    user: UserId,
    recipient: UserId,
    amount: Amount,
    user_fee: Type.Optional(Fee),
    order_no: OrderNo,
    description: Type.Optional(Description),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false, examples: [{ user: 'user_001', recipient: 'user_002', amount: 100, user_fee: 0, order_no: 'transfer20170921', description: '转账' }] },
);

/** `user` matches the sender or the recipient; `recipient` only the recipient. */
const Query = Type.Object({
  ...ListQuery,
  user: Type.Optional(Type.String({ maxLength: 64 })),
  recipient: Type.Optional(Type.String({ maxLength: 64 })),
});

export async function balanceTransfersRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Body: Static<typeof BalanceTransferCreate> }>(
    '/apps/:app/balance_transfers',
    { schema: { params: AppParams, body: BalanceTransferCreate } },
    (req) => createBalanceTransfer(rt, scopeOf(req), req.body, ANSWER_AT_COMMIT),
  );

  app.get<{ Params: Static<typeof AppIdParams> }>('/apps/:app/balance_transfers/:id', { schema: { params: AppIdParams } }, (req) =>
    retrieveBalanceTransfer(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof Query> }>(
    '/apps/:app/balance_transfers',
    { schema: { params: AppParams, querystring: Query } },
    async (req) => {
      const { data, hasMore } = await listBalanceTransfers(rt, scopeOf(req), req.query);
      return listObject(`/v1/apps/${req.params.app}/balance_transfers`, data, hasMore);
    },
  );
}
