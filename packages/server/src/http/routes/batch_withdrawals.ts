import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { ListQuery, Metadata } from '../schemas.ts';
import { createBatchWithdrawal, listBatchWithdrawals, MAX_BATCH_SIZE, retrieveBatchWithdrawal } from '../../services/batch_withdrawals.ts';
import { AppIdParams, AppParams } from './balance_bonuses.ts';

/** /v1/apps/:app/batch_withdrawals — 批量提现 (§7). */

const BatchCreate = Type.Object(
  {
    withdrawals: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: MAX_BATCH_SIZE }),
    status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('canceled')])),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false, examples: [{ withdrawals: ['1701709011052380697', '1701709011052380698'], status: 'pending' }] },
);
// Each batch embeds up to 200 withdrawals: a page holds at most 20 batches (4,000 items).
const MAX_BATCHES_PER_PAGE = 20;
const BatchQuery = Type.Object({
  ...ListQuery,
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_BATCHES_PER_PAGE })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_BATCHES_PER_PAGE })),
  // A batch's statuses, plus `created`: the filter's values in the C# SDK example (and the Go demo's
  // comment) are a withdrawal's statuses. No batch is ever `created`, so it matches nothing.
  status: Type.Optional(Type.Union(['created', 'pending', 'succeeded', 'failed', 'canceled', 'partially_succeeded'].map((s) => Type.Literal(s)))),
});

export async function batchWithdrawalsRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Body: Static<typeof BatchCreate> }>('/apps/:app/batch_withdrawals', { schema: { params: AppParams, body: BatchCreate } }, (req) =>
    createBatchWithdrawal(rt, scopeOf(req), req.body as Parameters<typeof createBatchWithdrawal>[2]),
  );

  app.get<{ Params: Static<typeof AppIdParams> }>('/apps/:app/batch_withdrawals/:id', { schema: { params: AppIdParams } }, (req) =>
    retrieveBatchWithdrawal(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof BatchQuery> }>(
    '/apps/:app/batch_withdrawals',
    { schema: { params: AppParams, querystring: BatchQuery } },
    async (req) => {
      const { data, hasMore } = await listBatchWithdrawals(rt, scopeOf(req), req.query);
      return listObject(`/v1/apps/${req.params.app}/batch_withdrawals`, data, hasMore);
    },
  );
}
