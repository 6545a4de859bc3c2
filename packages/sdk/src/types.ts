/**
 * Wire types of the Ping++ v1 balance API as tixian serves it. The server builds its responses
 * as these types, so a field is named once. Money is integer fen; times are Unix seconds.
 */

export type Metadata = Record<string, string | number | boolean>;

/** `custom`: paid by the merchant outside any channel; a confirm makes it `succeeded` at once. */
export type WithdrawalChannel = 'unionpay' | 'alipay' | 'wx' | 'wx_pub' | 'wx_lite' | 'allinpay' | 'jdpay' | 'custom';
export type WithdrawalStatus = 'created' | 'pending' | 'succeeded' | 'failed' | 'canceled';
export type SettleAccountChannel = 'alipay' | 'wx' | 'wx_pub' | 'wx_lite' | 'bank_account';

export interface List<T> {
  object: 'list';
  url: string | null;
  has_more: boolean;
  data: T[];
}

export interface WithdrawalList extends List<Withdrawal> {
  total_withdrawals_amount: number;
}

export interface ErrorBody {
  error: { type: 'invalid_request_error' | 'api_error' | 'channel_error'; message: string; code?: string; param?: string };
}

export interface User {
  id: string;
  object: 'user';
  app: string;
  type: 'customer' | 'business';
  related_app: string | null;
  address: string | null;
  avatar: string | null;
  available_coupons: number;
  available_balance: number;
  withdrawable_balance: number;
  created: number;
  disabled: boolean;
  email: string | null;
  gender: 'MALE' | 'FEMALE' | null;
  identified: boolean;
  livemode: boolean;
  mobile: string | null;
  name: string | null;
  metadata: Metadata;
  settle_accounts: SettleAccount[];
  parent_user_id: string | null;
}

export type BalanceTransactionType =
  | 'recharge' | 'recharge_refund' | 'recharge_refund_failed'
  | 'withdrawal' | 'withdrawal_failed' | 'withdrawal_revoked'
  | 'payment' | 'payment_refund' | 'transfer' | 'receipts_extra'
  | 'credited' | 'credited_refund' | 'credited_refund_failed';

export interface BalanceTransaction {
  id: string;
  object: 'balance_transaction';
  app: string;
  amount: number;
  available_balance: number;
  created: number;
  livemode: boolean;
  description: string | null;
  source: string;
  type: BalanceTransactionType;
  user: string;
}

export interface BalanceBonus {
  id: string;
  object: 'balance_bonus';
  app: string;
  created: number;
  livemode: boolean;
  paid: boolean;
  refunded: boolean;
  amount: number;
  amount_refunded: number;
  time_paid: number | null;
  user: string;
  order_no: string;
  balance_transaction: string | null;
  description: string | null;
  metadata: Metadata;
}

/** 余额结算 (入账): the platform credits a user's earnings as withdrawable money. A tixian extension. */
export interface BalanceSettlement {
  id: string;
  object: 'balance_settlement';
  app: string;
  created: number;
  livemode: boolean;
  status: 'succeeded';
  amount: number;
  user: string;
  order_no: string;
  balance_transaction: string | null;
  time_succeeded: number | null;
  description: string | null;
  metadata: Metadata;
}

export interface BalanceTransfer {
  id: string;
  object: 'balance_transfer';
  app: string;
  created: number;
  livemode: boolean;
  status: 'succeeded';
  amount: number;
  order_no: string;
  user: string;
  recipient: string;
  user_fee: number;
  user_balance_transaction: string | null;
  recipient_balance_transaction: string | null;
  description: string | null;
  metadata: Metadata;
}

export interface Withdrawal {
  id: string;
  object: 'withdrawal';
  app: string;
  amount: number;
  asset_transaction: string | null;
  balance_transaction: string | null;
  channel: WithdrawalChannel;
  created: number;
  description: string | null;
  extra: Record<string, unknown>;
  failure_msg: string | null;
  fee: number;
  livemode: boolean;
  metadata: Metadata;
  operation_url: string | null;
  order_no: string;
  source: string | null;
  status: WithdrawalStatus;
  time_canceled: number | null;
  time_succeeded: number | null;
  user: string;
  user_fee: number;
  settle_account: string | null;
}

export interface BatchWithdrawal {
  id: string;
  object: 'batch_withdrawal';
  app: string;
  created: number;
  livemode: boolean;
  amount: number;
  amount_succeeded: number;
  amount_failed: number;
  amount_canceled: number;
  count: number;
  count_succeeded: number;
  count_failed: number;
  count_canceled: number;
  fee: number;
  metadata: Metadata;
  operation_url: string | null;
  source: string | null;
  status: 'pending' | 'succeeded' | 'failed' | 'canceled' | 'partially_succeeded';
  time_finished: number | null;
  user_fee: number;
  withdrawals: List<Withdrawal>;
}

export interface SettleAccount {
  id: string;
  object: 'settle_account';
  created: number;
  livemode: boolean;
  channel: SettleAccountChannel;
  recipient: Record<string, unknown>;
}

export interface Deleted {
  id: string;
  object?: string;
  deleted: true;
}

export type EventType =
  | 'balance.withdrawal.succeeded'
  | 'balance.withdrawal.failed'
  /** Extension (WeChat transfer-bills): the payee must confirm in WeChat; `data.object.extra.wx_confirmation` has what the app needs. Sent only to endpoints that subscribe to it. */
  | 'balance.withdrawal.pending_confirmation';

export interface EventBase<T extends string, O> {
  id: string;
  object: 'event';
  created: number;
  livemode: boolean;
  type: T;
  data: { object: O };
  pending_webhooks: number;
  request: string | null;
  scope: string;
  acct_id: string;
}

export type WithdrawalSucceededEvent = EventBase<'balance.withdrawal.succeeded', Withdrawal>;
export type WithdrawalFailedEvent = EventBase<'balance.withdrawal.failed', Withdrawal>;
/** Discriminated on `type`: checking `event.type` narrows `event.data.object`. */
export type Event = WithdrawalSucceededEvent | WithdrawalFailedEvent;
