import type { WithdrawalChannel } from '@tixian/sdk';
import type { WithdrawalRow } from '../store/schema.ts';

/** What a payout channel is asked to do: pay `amount` fen to the payee, once per `key`. */
export interface PayoutOrder {
  /** Idempotency key (Alipay out_biz_no, WeChat out_detail_no): the withdrawal id, plus the confirm round after the first. */
  key: string;
  withdrawalId: string;
  /** The app whose withdrawal this is: live drivers pay with that app's channel credentials. */
  app: string;
  channel: WithdrawalChannel;
  /** What the payee receives: the withdrawal amount less the user's fee. */
  amount: number;
  extra: Record<string, unknown>;
  livemode: boolean;
  /**
   * When this key's round was confirmed (ms): nothing was sent under the key before it, so no
   * channel order under it is older. A channel's `not_found` proves nothing past its query window.
   */
  confirmedMs: number;
}

/** The order a withdrawal's row stands for, under `key` (its round's: services/withdrawals.ts payoutKey). */
export function payoutOrder(row: WithdrawalRow, key: string): PayoutOrder {
  return {
    key,
    withdrawalId: row.id,
    app: row.app,
    channel: row.channel as WithdrawalChannel,
    amount: row.amount - row.user_fee,
    extra: JSON.parse(row.extra) as Record<string, unknown>,
    livemode: row.livemode === 1,
    // Rows confirmed before the column was kept: the withdrawal's creation, earlier still.
    confirmedMs: row.confirmed_ms ?? row.created * 1000,
  };
}

/**
 * A channel's answer. `unknown` (a timeout, a system error) is never a failure: the worker queries
 * by key before it ever submits again. `not_found` (query only) means the channel never got the
 * order, so submitting it is safe.
 */
export type PayoutOutcome =
  | { kind: 'succeeded' }
  | { kind: 'failed'; blame: 'user' | 'merchant'; message: string }
  | {
      kind: 'processing';
      retryAfterMs: number;
      /** The channel's own status words (code and/or message), shown by `tixian withdrawals stuck`. */
      message?: string;
      /** WeChat transfer-bills: the payee must confirm in WeChat; what the merchant's app needs to open that page. */
      confirmation?: PayeeConfirmation;
    }
  | { kind: 'unknown'; message: string }
  | { kind: 'not_found' };

/**
 * The time a channel call may take. The worker gives up on the call at `timeoutMs` (the outcome is
 * then unknown) and aborts `signal`: a driver passes the signal to its HTTP client, so a request
 * the worker gave up on cannot reach the channel after the worker's lease is over, when another
 * worker may already be asking the channel about the same key.
 */
export interface ChannelCall {
  timeoutMs: number;
  signal: AbortSignal;
  /**
   * The worker's clock when the call began. A channel whose query forgets old orders (WeChat
   * transfer-bills: after 30 days) answers `unknown`, not `not_found`, for an order older than
   * that (`now − confirmedMs`): the worker submits again on `not_found`, which could pay twice.
   */
  nowMs: number;
}

export interface ChannelDriver {
  readonly name: string;
  submit(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome>;
  query(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome>;
}

/** Picks the driver for a withdrawal; null when the mode/channel has none configured. */
export interface DriverRegistry {
  driverFor(channel: WithdrawalChannel, livemode: boolean): ChannelDriver | null;
}

/**
 * WeChat transfer-bills: the payee confirms the transfer in WeChat. The merchant's app opens the
 * confirm page with these (wx.requestMerchantTransfer / WeixinJSBridge / WXOpenBusinessView);
 * tixian shows them on the pending withdrawal as `extra.wx_confirmation`.
 */
export interface PayeeConfirmation {
  package_info: string;
  mch_id: string;
  app_id: string;
  /** The channel order waiting for the confirmation (a later round has another). */
  out_bill_no: string;
}
