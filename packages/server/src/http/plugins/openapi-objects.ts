import { Type, type TSchema } from '@sinclair/typebox';
import { WITHDRAWAL_CHANNELS } from '../../domain/channels.ts';

/**
 * The API's objects as JSON schemas, for the OpenAPI reference only: responses are serialised with
 * JSON.stringify as before (see openapi.ts), so these describe the wire types of @tixian/sdk
 * (src/types.ts) and never filter a field out of an answer. Each carries an example that
 * test/openapi.test.ts validates against it.
 */

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Ref = (id: string) => Type.Unsafe<unknown>({ $ref: `${id}#` });
const Fen = (description: string) => Type.Integer({ description: `${description} (fen)` });
const Time = (description: string) => Type.Integer({ description: `${description} (Unix seconds)` });
const Metadata = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]));
const Channel = Type.Union(WITHDRAWAL_CHANNELS.map((c) => Type.Literal(c)));

const APP = 'app_1Gqj58ynP0mHeX1q';
const USER = 'user_001';

const withdrawalExample = {
  id: '1701709011052380697', object: 'withdrawal', app: APP, amount: 1000, asset_transaction: null,
  balance_transaction: '601170921711000000000', channel: 'alipay', created: 1505992661, description: '用户提现',
  extra: { account: 'payee@example.com', name: '张三' }, failure_msg: null, fee: 0, livemode: false, metadata: {},
  operation_url: null, order_no: '2017092100001', source: 'tr_1701709011052380697_1', status: 'succeeded',
  time_canceled: null, time_succeeded: 1505992666, user: USER, user_fee: 10, settle_account: null,
};

const settleAccountExample = {
  id: '320217092116322500001801', object: 'settle_account', created: 1505982745, livemode: false, channel: 'alipay',
  recipient: { account: 'pay***@example.com', name: '张*', type: 'b2c' },
};

export const objectSchemas: Record<string, TSchema> = {
  Error: Type.Object(
    {
      error: Type.Object({
        type: Type.Union([Type.Literal('invalid_request_error'), Type.Literal('api_error'), Type.Literal('channel_error')]),
        message: Type.String({ description: 'In Chinese, or English when Accept-Language starts with en.' }),
        code: Type.Optional(Type.String()),
        param: Type.Optional(Type.String({ description: 'The request parameter at fault, in bracket form (extra[account]).' })),
      }),
    },
    {
      description: "Ping++'s error body; the HTTP status tells the class of the error.",
      examples: [{ error: { type: 'invalid_request_error', message: '参数 amount 无效：must be >= 1。', code: 'invalid_parameter', param: 'amount' } }],
    },
  ),

  User: Type.Object(
    {
      id: Type.String(), object: Type.Literal('user'), app: Type.String(),
      type: Type.Union([Type.Literal('customer'), Type.Literal('business')]), related_app: Nullable(Type.String()),
      address: Nullable(Type.String()), avatar: Nullable(Type.String()), available_coupons: Type.Integer(),
      available_balance: Fen('Balance the user may spend'), withdrawable_balance: Fen('Part of the available balance the user may withdraw'),
      created: Time('Created'), disabled: Type.Boolean(), email: Nullable(Type.String()),
      gender: Nullable(Type.Union([Type.Literal('MALE'), Type.Literal('FEMALE')])), identified: Type.Boolean(), livemode: Type.Boolean(),
      mobile: Nullable(Type.String()), name: Nullable(Type.String()), metadata: Metadata,
      settle_accounts: Type.Array(Ref('SettleAccount')), parent_user_id: Nullable(Type.String()),
    },
    {
      examples: [{
        id: USER, object: 'user', app: APP, type: 'customer', related_app: null, address: null, avatar: null, available_coupons: 0,
        available_balance: 9500, withdrawable_balance: 9000, created: 1505982745, disabled: false, email: 'user@example.com',
        gender: null, identified: false, livemode: false, mobile: null, name: '张三', metadata: {}, settle_accounts: [settleAccountExample],
        parent_user_id: null,
      }],
    },
  ),

  SettleAccount: Type.Object(
    {
      id: Type.String(), object: Type.Literal('settle_account'), created: Time('Created'), livemode: Type.Boolean(),
      channel: Type.Union(['alipay', 'wx', 'wx_pub', 'wx_lite', 'bank_account'].map((c) => Type.Literal(c))),
      recipient: Type.Record(Type.String(), Type.Unknown(), { description: 'The payee, masked as Ping++ shows it.' }),
    },
    { examples: [settleAccountExample] },
  ),

  Deleted: Type.Object(
    { id: Type.String(), object: Type.Optional(Type.String()), deleted: Type.Literal(true) },
    { examples: [{ id: '320217092116322500001801', object: 'settle_account', deleted: true }] },
  ),

  BalanceTransaction: Type.Object(
    {
      id: Type.String(), object: Type.Literal('balance_transaction'), app: Type.String(), amount: Fen('Signed change of the available balance'),
      available_balance: Fen('Available balance after this line'), created: Time('Created'), livemode: Type.Boolean(),
      description: Nullable(Type.String()), source: Type.String({ description: 'Id of the object that moved the money.' }),
      type: Type.String({ description: 'recharge, withdrawal, withdrawal_failed, withdrawal_revoked, transfer, receipts_extra, credited …' }),
      user: Type.String(),
    },
    {
      examples: [{
        id: '601170921711000000000', object: 'balance_transaction', app: APP, amount: -1000, available_balance: 8500,
        created: 1505992661, livemode: false, description: '用户提现', source: '1701709011052380697', type: 'withdrawal', user: USER,
      }],
    },
  ),

  BalanceBonus: Type.Object(
    {
      id: Type.String(), object: Type.Literal('balance_bonus'), app: Type.String(), created: Time('Created'), livemode: Type.Boolean(),
      paid: Type.Boolean(), refunded: Type.Boolean(), amount: Fen('Amount given'), amount_refunded: Fen('Amount refunded'),
      time_paid: Nullable(Type.Integer()), user: Type.String(), order_no: Type.String(), balance_transaction: Nullable(Type.String()),
      description: Nullable(Type.String()), metadata: Metadata,
    },
    {
      examples: [{
        id: '640170921700000000001', object: 'balance_bonus', app: APP, created: 1505982745, livemode: false, paid: true, refunded: false,
        amount: 500, amount_refunded: 0, time_paid: 1505982745, user: USER, order_no: 'bonus20170921', balance_transaction: '601170921700000000001',
        description: '注册奖励', metadata: {},
      }],
    },
  ),

  BalanceSettlement: Type.Object(
    {
      id: Type.String(), object: Type.Literal('balance_settlement'), app: Type.String(), created: Time('Created'), livemode: Type.Boolean(),
      status: Type.Literal('succeeded'), amount: Fen('Amount credited as withdrawable'), user: Type.String(), order_no: Type.String(),
      balance_transaction: Nullable(Type.String()), time_succeeded: Nullable(Type.Integer()), description: Nullable(Type.String()), metadata: Metadata,
    },
    {
      description: '余额结算 (入账): the platform credits a user\'s earnings as withdrawable money. A tixian extension.',
      examples: [{
        id: '650170921700000000001', object: 'balance_settlement', app: APP, created: 1505982745, livemode: false, status: 'succeeded',
        amount: 10000, user: USER, order_no: 'settle20170921', balance_transaction: '601170921700000000002', time_succeeded: 1505982745,
        description: null, metadata: {},
      }],
    },
  ),

  BalanceTransfer: Type.Object(
    {
      id: Type.String(), object: Type.Literal('balance_transfer'), app: Type.String(), created: Time('Created'), livemode: Type.Boolean(),
      status: Type.Literal('succeeded'), amount: Fen('Amount moved'), order_no: Type.String(), user: Type.String(), recipient: Type.String(),
      user_fee: Fen('Fee paid by the sender'), user_balance_transaction: Nullable(Type.String()),
      recipient_balance_transaction: Nullable(Type.String()), description: Nullable(Type.String()), metadata: Metadata,
    },
    {
      examples: [{
        id: '660170921700000000001', object: 'balance_transfer', app: APP, created: 1505982745, livemode: false, status: 'succeeded',
        amount: 100, order_no: 'transfer20170921', user: USER, recipient: 'user_002', user_fee: 0, user_balance_transaction: '601170921700000000003',
        recipient_balance_transaction: '601170921700000000004', description: null, metadata: {},
      }],
    },
  ),

  Withdrawal: Type.Object(
    {
      id: Type.String(), object: Type.Literal('withdrawal'), app: Type.String(), amount: Fen('Amount taken from the user, user_fee included'),
      asset_transaction: Nullable(Type.String()), balance_transaction: Nullable(Type.String()), channel: Channel, created: Time('Created'),
      description: Nullable(Type.String()), extra: Type.Record(Type.String(), Type.Unknown(), { description: 'The payee, per channel.' }),
      failure_msg: Nullable(Type.String()), fee: Fen('Platform fee'), livemode: Type.Boolean(), metadata: Metadata,
      operation_url: Nullable(Type.String()), order_no: Type.String(), source: Nullable(Type.String({ description: 'The payout (tr_…), once confirmed.' })),
      status: Type.Union(['created', 'pending', 'succeeded', 'failed', 'canceled'].map((s) => Type.Literal(s))),
      time_canceled: Nullable(Type.Integer()), time_succeeded: Nullable(Type.Integer()), user: Type.String(),
      user_fee: Fen('Fee the user pays'), settle_account: Nullable(Type.String()),
    },
    { examples: [withdrawalExample] },
  ),

  BatchWithdrawal: Type.Object(
    {
      id: Type.String(), object: Type.Literal('batch_withdrawal'), app: Type.String(), created: Time('Created'), livemode: Type.Boolean(),
      amount: Fen('Sum of the items'), amount_succeeded: Type.Integer(), amount_failed: Type.Integer(), amount_canceled: Type.Integer(),
      count: Type.Integer(), count_succeeded: Type.Integer(), count_failed: Type.Integer(), count_canceled: Type.Integer(),
      fee: Type.Integer(), metadata: Metadata, operation_url: Nullable(Type.String()), source: Nullable(Type.String()),
      status: Type.Union(['pending', 'succeeded', 'failed', 'canceled', 'partially_succeeded'].map((s) => Type.Literal(s))),
      time_finished: Nullable(Type.Integer()), user_fee: Type.Integer(),
      withdrawals: Type.Object({
        object: Type.Literal('list'), url: Nullable(Type.String()), has_more: Type.Boolean(), data: Type.Array(Ref('Withdrawal')),
      }),
    },
    {
      examples: [{
        id: '1801709211630000001', object: 'batch_withdrawal', app: APP, created: 1505992661, livemode: false, amount: 1000,
        amount_succeeded: 1000, amount_failed: 0, amount_canceled: 0, count: 1, count_succeeded: 1, count_failed: 0, count_canceled: 0,
        fee: 0, metadata: {}, operation_url: null, source: null, status: 'succeeded', time_finished: 1505992666, user_fee: 10,
        withdrawals: { object: 'list', url: null, has_more: false, data: [withdrawalExample] },
      }],
    },
  ),

  Event: Type.Object(
    {
      id: Type.String(), object: Type.Literal('event'), created: Time('Created'), livemode: Type.Boolean(),
      type: Type.Union([Type.Literal('balance.withdrawal.succeeded'), Type.Literal('balance.withdrawal.failed'), Type.Literal('balance.withdrawal.pending_confirmation')]),
      data: Type.Object({ object: Ref('Withdrawal') }), pending_webhooks: Type.Integer(), request: Nullable(Type.String()),
      scope: Type.String({ description: 'The app the event belongs to.' }), acct_id: Type.String(),
    },
    {
      examples: [{
        id: 'evt_401170921163000000001', object: 'event', created: 1505992666, livemode: false, type: 'balance.withdrawal.succeeded',
        data: { object: withdrawalExample }, pending_webhooks: 0, request: 'iar_qH4y1KbTy5eLGm1ep1rbTy5e', scope: APP,
        acct_id: 'acct_1Gqj58ynP0mHeX1q',
      }],
    },
  ),
};

/** The object each resource's routes answer with, by the resource's tag. */
export const objectOfTag: Record<string, string> = {
  users: 'User',
  settle_accounts: 'SettleAccount',
  balance_bonuses: 'BalanceBonus',
  balance_settlements: 'BalanceSettlement',
  balance_transactions: 'BalanceTransaction',
  balance_transfers: 'BalanceTransfer',
  withdrawals: 'Withdrawal',
  batch_withdrawals: 'BatchWithdrawal',
  events: 'Event',
};
