/**
 * Request parameters, named after the API's nouns (`WithdrawalCreateParams` is the body of
 * POST …/withdrawals). Money is integer fen. Unions encode the spec's conditional rules, so a
 * wrong channel, a missing `extra` key or a forbidden combination fails to compile.
 */
import type { BalanceTransactionType, BatchWithdrawal, EventType, Metadata, WithdrawalChannel, WithdrawalStatus } from './types.ts';

/** Unix-seconds range filter: `created[gte]=…` on the wire. */
export interface RangeFilter {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

/**
 * Both of Ping++'s pagination schemes (§5.2). Use `page`/`per_page` or `limit` with a cursor
 * (`starting_after`/`ending_before`); auto-pagination continues in the scheme you started with.
 */
export interface ListParams {
  page?: number;
  per_page?: number;
  limit?: number;
  starting_after?: string;
  ending_before?: string;
  created?: number | RangeFilter;
}

// ---------------------------------------------------------------- withdrawals (§6)

interface BankRecipient {
  /** Card or passbook number. */
  account: string;
  /** Payee's name. */
  name: string;
}

/** unionpay: `open_bank_code` (preferred, e.g. `0308`) or `open_bank`, at least one. */
export type UnionpayWithdrawalExtra = BankRecipient & { prov?: string; city?: string; sub_bank?: string } & (
    | { open_bank_code: string; open_bank?: string }
    | { open_bank: string; open_bank_code?: string }
  );

export interface AlipayWithdrawalExtra {
  /** Alipay login id (e-mail/phone) or 2088… user id. */
  account: string;
  name: string;
  account_type?: 'ALIPAY_USERID' | 'ALIPAY_LOGONID';
}

/** WeChat: the seed guide spells it `openid`, the SDK examples `open_id`; the server takes either. */
export type WxWithdrawalExtra = ({ open_id: string; openid?: never } | { openid: string; open_id?: never }) & {
  name?: string;
  /** Enforce the name check; only effective when `name` is non-empty. */
  force_check?: boolean;
};

export interface AllinpayWithdrawalExtra extends BankRecipient {
  open_bank_code: string;
  business_code?: string;
  /** 0 bank card, 1 passbook. */
  card_type?: 0 | 1;
}

export interface JdpayWithdrawalExtra extends BankRecipient {
  open_bank_code: string;
}

interface WithdrawalCreateCommon {
  user: string;
  /** What leaves the user's withdrawable balance, fen, > 0. */
  amount: number;
  /** Unique per app and mode; also the idempotency key: an identical retry returns the first object. */
  order_no: string;
  /** Part of `amount` kept as the user's fee, fen, ≥ 0. */
  user_fee?: number;
  description?: string | null;
  metadata?: Metadata | null;
}

/**
 * Where the money goes: a channel with its `extra`, or a bound settle_account. The API ignores
 * `settle_account` when `channel` and `extra` are also sent, so the types forbid the mix.
 */
export type WithdrawalDestination =
  | { channel: 'unionpay'; extra: UnionpayWithdrawalExtra; settle_account?: never }
  | { channel: 'alipay'; extra: AlipayWithdrawalExtra; settle_account?: never }
  | { channel: 'wx' | 'wx_pub' | 'wx_lite'; extra: WxWithdrawalExtra; settle_account?: never }
  | { channel: 'allinpay'; extra: AllinpayWithdrawalExtra; settle_account?: never }
  | { channel: 'jdpay'; extra: JdpayWithdrawalExtra; settle_account?: never }
  /** No payee details: the merchant pays it itself; `extra` may be left out or sent empty. */
  | { channel: 'custom'; extra?: Record<string, never>; settle_account?: never }
  | { settle_account: string; channel?: never; extra?: never };

export type WithdrawalCreateParams = WithdrawalCreateCommon & WithdrawalDestination;

export interface WithdrawalListParams extends ListParams {
  status?: WithdrawalStatus;
  user?: string;
  channel?: WithdrawalChannel;
}

// ---------------------------------------------------------------- batch withdrawals (§7)

export interface BatchWithdrawalCreateParams {
  /** Ids of withdrawals in status `created`, 1 … 200. */
  withdrawals: string[];
  /** `pending` confirms them all (the default), `canceled` cancels them all. */
  status?: 'pending' | 'canceled';
  metadata?: Metadata | null;
}

export interface BatchWithdrawalListParams extends ListParams {
  status?: BatchWithdrawal['status'];
}

// ---------------------------------------------------------------- users (§8)

export interface UserProfileParams {
  address?: string | null;
  avatar?: string | null;
  email?: string | null;
  gender?: 'MALE' | 'FEMALE' | null;
  mobile?: string | null;
  name?: string | null;
  metadata?: Metadata | null;
  parent_user_id?: string | null;
}

export interface UserCreateParams extends UserProfileParams {
  /** Merchant-chosen, ≤ 64 chars of `[0-9A-Za-z_@.-]`, first a letter, digit or underscore. */
  id: string;
}

/** Profile fields, or `disabled` alone: the API refuses the two mixed. */
export type UserUpdateParams =
  | (UserProfileParams & { disabled?: never })
  | ({ disabled: boolean } & { [K in keyof UserProfileParams]?: never });

export interface UserListParams extends ListParams {
  type?: 'customer' | 'business';
}

// ---------------------------------------------------------------- settle accounts (§9)

export interface AlipaySettleAccountRecipient {
  account: string;
  name: string;
  type?: 'b2c' | 'b2b';
  account_type?: 'ALIPAY_USERID' | 'ALIPAY_LOGONID';
}

export interface WxSettleAccountRecipient {
  /** The open id. */
  account: string;
  name?: string;
  force_check?: boolean;
  type?: 'b2c';
}

export interface BankAccountSettleAccountRecipient {
  account: string;
  name: string;
  type: 'b2c' | 'b2b';
  open_bank_code: string;
  open_bank?: string;
  card_type?: 0 | 1;
  prov?: string;
  city?: string;
  sub_bank?: string;
  sub_bank_code?: string;
  mobile?: string;
}

export type SettleAccountCreateParams =
  | { channel: 'alipay'; recipient: AlipaySettleAccountRecipient }
  | { channel: 'wx' | 'wx_pub' | 'wx_lite'; recipient: WxSettleAccountRecipient }
  | { channel: 'bank_account'; recipient: BankAccountSettleAccountRecipient };

export type SettleAccountListParams = ListParams;

// ---------------------------------------------------------------- money in and between users (§10, §11)

export interface BalanceBonusCreateParams {
  user: string;
  amount: number;
  order_no: string;
  description?: string | null;
  metadata?: Metadata | null;
}

export interface BalanceBonusListParams extends ListParams {
  user?: string;
}

/** 余额结算, a tixian extension: same parameters as a bonus, credited as withdrawable money. */
export type BalanceSettlementCreateParams = BalanceBonusCreateParams;
export type BalanceSettlementListParams = BalanceBonusListParams;

export interface BalanceTransferCreateParams {
  /** Sender. */
  user: string;
  /** Receiver; `"0"` is the app's system user. */
  recipient: string;
  /** What the recipient receives, fen. */
  amount: number;
  order_no: string;
  /** Charged to the sender on top of `amount`. */
  user_fee?: number;
  description?: string | null;
  metadata?: Metadata | null;
}

export interface BalanceTransferListParams extends ListParams {
  /** Sender or recipient (tixian). */
  user?: string;
  /** Recipient only (tixian). */
  recipient?: string;
}

// ---------------------------------------------------------------- ledger and events (§12, §13)

export interface BalanceTransactionListParams extends ListParams {
  user?: string;
  type?: BalanceTransactionType;
}

export interface EventListParams extends ListParams {
  type?: EventType;
  /** tixian: only events whose every webhook delivery succeeded (true), or with one that has not (yet) (false). */
  delivery_success?: boolean;
}
