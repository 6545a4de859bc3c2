import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { ANSWER_AT_COMMIT, scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { Amount, Fee, ListQuery, Metadata, UserId } from '../schemas.ts';
import { WITHDRAWAL_CHANNELS } from '../../domain/channels.ts';
import {
  cancelWithdrawal,
  confirmWithdrawal,
  createWithdrawal,
  listWithdrawals,
  retrieveWithdrawal,
} from '../../services/withdrawals.ts';
import { AppIdParams, AppParams } from './balance_bonuses.ts';

/** /v1/apps/:app/withdrawals — 余额提现 (§6). */

const Channel = Type.Union(WITHDRAWAL_CHANNELS.map((c) => Type.Literal(c)));
const WithdrawalCreate = Type.Object(
  {
    user: UserId,
    amount: Amount,
    user_fee: Type.Optional(Fee),
    channel: Type.Optional(Type.Union([Channel, Type.Null()])),
    // The per-channel format is checked once the channel is known (§6.4).
    order_no: Type.String({ minLength: 1, maxLength: 64 }),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 60 }), Type.Null()])),
    // Keys are validated per channel; this bounds the object itself.
    extra: Type.Optional(Type.Union([Type.Object({}, { maxProperties: 20 }), Type.Null()])),
    settle_account: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
    metadata: Type.Optional(Metadata),
  },
  {
    additionalProperties: false,
    examples: [{ user: 'user_001', amount: 1000, user_fee: 10, channel: 'alipay', order_no: '2017092100001', description: '用户提现', extra: { account: 'payee@example.com', name: '张三' } }],
  },
);
const WithdrawalUpdate = Type.Object(
  { status: Type.Union([Type.Literal('pending'), Type.Literal('canceled')]) },
  { additionalProperties: false, examples: [{ status: 'pending' }, { status: 'canceled' }] },
);
const WithdrawalsQuery = Type.Object({
  ...ListQuery,
  status: Type.Optional(Type.Union(['created', 'pending', 'succeeded', 'failed', 'canceled'].map((s) => Type.Literal(s)))),
  user: Type.Optional(Type.String({ maxLength: 64 })),
  channel: Type.Optional(Channel),
});

export async function withdrawalsRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Body: Static<typeof WithdrawalCreate> }>(
    '/apps/:app/withdrawals',
    { schema: { params: AppParams, body: WithdrawalCreate } },
    (req) => createWithdrawal(rt, scopeOf(req), req.body as Parameters<typeof createWithdrawal>[2], ANSWER_AT_COMMIT),
  );

  app.get<{ Params: Static<typeof AppIdParams> }>('/apps/:app/withdrawals/:id', { schema: { params: AppIdParams } }, (req) =>
    retrieveWithdrawal(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof AppParams>; Querystring: Static<typeof WithdrawalsQuery> }>(
    '/apps/:app/withdrawals',
    { schema: { params: AppParams, querystring: WithdrawalsQuery } },
    async (req) => {
      const page = await listWithdrawals(rt, scopeOf(req), req.query as Parameters<typeof listWithdrawals>[2]);
      return { ...listObject(`/v1/apps/${req.params.app}/withdrawals`, page.data, page.has_more), total_withdrawals_amount: page.total_withdrawals_amount };
    },
  );

  // Confirm (`pending`) or cancel (`canceled`): what every SDK's confirm/cancel sends.
  app.put<{ Params: Static<typeof AppIdParams>; Body: Static<typeof WithdrawalUpdate> }>(
    '/apps/:app/withdrawals/:id',
    { schema: { params: AppIdParams, body: WithdrawalUpdate, summary: 'Confirm (status pending) or cancel (status canceled) a withdrawal' } },
    (req) =>
      req.body.status === 'pending'
        ? confirmWithdrawal(rt, scopeOf(req), req.params.id, ANSWER_AT_COMMIT)
        : cancelWithdrawal(rt, scopeOf(req), req.params.id, ANSWER_AT_COMMIT),
  );
}
