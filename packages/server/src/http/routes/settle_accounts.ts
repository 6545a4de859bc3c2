import type { FastifyInstance } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { SettleAccountChannel } from '@tixian/sdk';
import type { Runtime } from '../../runtime.ts';
import { ANSWER_AT_COMMIT, scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { ListQuery } from '../schemas.ts';
import {
  createSettleAccount,
  deleteSettleAccount,
  listSettleAccounts,
  retrieveSettleAccount,
} from '../../services/settle_accounts.ts';

/** /v1/apps/:app/users/:user/settle_accounts — 用户结算账户 (§9). */

const CHANNELS: SettleAccountChannel[] = ['alipay', 'wx', 'wx_pub', 'wx_lite', 'bank_account'];

/** A plain `enum` (not TypeBox's anyOf of consts) so a bad value is answered "must be one of …". */
const OneOf = <T extends string | number>(type: 'string' | 'integer', values: readonly T[]) => Type.Unsafe<T>({ type, enum: values });
const Text = (max: number) => Type.String({ minLength: 1, maxLength: max });
/** Optional recipient keys may be sent as null (SDK examples do); the service drops them. */
const Opt = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

// Limits: bank card numbers are ≤ 19 digits and Alipay logon ids are e-mails or phone numbers;
// WeChat open_ids are 28–32 characters. The bounds leave room without admitting junk.
const Account = Text(128);
const Name = Text(64);
const PartyType = OneOf('string', ['b2c', 'b2b'] as const);

const AlipayRecipient = Type.Object(
  {
    account: Account,
    name: Name,
    type: Opt(PartyType),
    account_type: Opt(OneOf('string', ['ALIPAY_USERID', 'ALIPAY_LOGONID'] as const)),
  },
  {
    additionalProperties: false,
    // An ALIPAY_USERID is Alipay's 16-digit user id starting 2088 (§6.3); anything else would
    // only fail later, at payout time, after the user's money has been held.
    if: { required: ['account_type'], properties: { account_type: { const: 'ALIPAY_USERID' } } },
    then: { properties: { account: { pattern: '^2088[0-9]{12}$' } } },
  },
);

const WxRecipient = Type.Object(
  {
    account: Account, // the open_id under the channel's WeChat app
    name: Opt(Type.String({ maxLength: 64 })), // empty: WeChat does not check the payee's name
    force_check: Opt(Type.Boolean()),
    type: Opt(OneOf('string', ['b2c'] as const)), // WeChat pays individuals only
  },
  { additionalProperties: false },
);

const BankAccountRecipient = Type.Object(
  {
    account: Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z-]+$' }),
    name: Name,
    type: PartyType,
    open_bank_code: Type.String({ minLength: 1, maxLength: 16, pattern: '^[0-9A-Za-z]+$' }),
    open_bank: Opt(Text(64)),
    card_type: Opt(OneOf('integer', [0, 1] as const)), // 0 bank card, 1 passbook
    prov: Opt(Text(32)),
    city: Opt(Text(32)),
    sub_bank: Opt(Text(128)),
    sub_bank_code: Opt(Type.String({ minLength: 1, maxLength: 32, pattern: '^[0-9A-Za-z]+$' })),
    mobile: Opt(Type.String({ minLength: 1, maxLength: 20, pattern: '^\\+?[0-9-]+$' })),
  },
  { additionalProperties: false },
);

// `required` inside `if`: Ajv runs allOf before the object's own `required`, and an `if` that
// passes vacuously on a missing channel would report a recipient key instead of `channel`.
const whenChannel = (channels: SettleAccountChannel[], recipient: TSchema) => ({
  if: { required: ['channel'], properties: { channel: { enum: channels } } },
  then: { properties: { recipient } },
});

/**
 * `recipient` is checked against its channel's keys; errors name the key (`recipient[account]`,
 * unknown keys too). The generic `recipient: object` runs first, so a non-object is "must be an
 * object" whatever the channel.
 */
const SettleAccountCreate = Type.Unsafe<{ channel: SettleAccountChannel; recipient: Record<string, unknown> }>({
  type: 'object',
  required: ['channel', 'recipient'],
  additionalProperties: false,
  properties: {
    channel: { type: 'string', enum: CHANNELS },
    recipient: { type: 'object', maxProperties: 16 },
  },
  allOf: [
    whenChannel(['alipay'], AlipayRecipient),
    whenChannel(['wx', 'wx_pub', 'wx_lite'], WxRecipient),
    whenChannel(['bank_account'], BankAccountRecipient),
  ],
  examples: [
    { channel: 'alipay', recipient: { account: 'payee@example.com', name: '张三', type: 'b2c' } },
    { channel: 'bank_account', recipient: { account: '6214850288888888', name: '张三', type: 'b2c', open_bank_code: '0308', open_bank: '招商银行' } },
  ],
});

const Id = Type.String({ minLength: 1, maxLength: 64 });
const UserParams = Type.Object({ app: Id, user: Id });
const UserIdParams = Type.Object({ app: Id, user: Id, id: Id });
const Query = Type.Object(ListQuery);

export async function settleAccountsRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof SettleAccountCreate> }>(
    '/apps/:app/users/:user/settle_accounts',
    { schema: { params: UserParams, body: SettleAccountCreate } },
    (req) => createSettleAccount(rt, scopeOf(req), req.params.user, req.body, ANSWER_AT_COMMIT),
  );

  app.get<{ Params: Static<typeof UserIdParams> }>(
    '/apps/:app/users/:user/settle_accounts/:id',
    { schema: { params: UserIdParams } },
    (req) => retrieveSettleAccount(rt, scopeOf(req), req.params.user, req.params.id),
  );

  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof Query> }>(
    '/apps/:app/users/:user/settle_accounts',
    { schema: { params: UserParams, querystring: Query } },
    async (req) => {
      const { data, hasMore } = await listSettleAccounts(rt, scopeOf(req), req.params.user, req.query);
      // The user exists (else the service answered 404), so its id is from the path-safe alphabet.
      return listObject(`/v1/apps/${req.params.app}/users/${req.params.user}/settle_accounts`, data, hasMore);
    },
  );

  app.delete<{ Params: Static<typeof UserIdParams> }>(
    '/apps/:app/users/:user/settle_accounts/:id',
    { schema: { params: UserIdParams } },
    (req) => deleteSettleAccount(rt, scopeOf(req), req.params.user, req.params.id, ANSWER_AT_COMMIT),
  );
}
