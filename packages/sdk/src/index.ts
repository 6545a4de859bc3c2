/**
 * @tixian/sdk — a typed client of the Ping++ v1 balance API (tixian or Ping++) and webhook
 * verification. Zero runtime dependencies: Node's fetch and crypto.
 */
export { Tixian, DEFAULT_BASE_URL, DEFAULT_TIMEOUT_MS, DEFAULT_MAX_NETWORK_RETRIES } from './client.ts';
export type { TixianOptions, Webhooks } from './client.ts';
export type { RequestOptions } from './http.ts';
export { VERSION } from './http.ts';
export {
  TixianError,
  InvalidRequestError,
  AuthenticationError,
  ChannelError,
  RateLimitError,
  ApiError,
  ConnectionError,
  SignatureVerificationError,
} from './errors.ts';
/** The webhook helpers, one name: `webhooks.constructEvent(…)`, `webhooks.readRawBody(req)` … */
export * as webhooks from './webhooks.ts';
export type { RawBody, HeaderValue, HeadersLike, IncomingLike, FastifyLike, StandardVerifyOptions, ReadRawBodyOptions } from './webhooks.ts';
export type { PrivateKeyInput, PublicKeyInput } from './signing.ts';
export type { Page, ListPromise, PageMethods } from './pagination.ts';
export type { Withdrawals } from './resources/withdrawals.ts';
export type { BatchWithdrawals } from './resources/batch_withdrawals.ts';
export type { Users } from './resources/users.ts';
export type { SettleAccounts } from './resources/settle_accounts.ts';
export type { BalanceBonuses } from './resources/balance_bonuses.ts';
export type { BalanceSettlements } from './resources/balance_settlements.ts';
export type { BalanceTransfers } from './resources/balance_transfers.ts';
export type { BalanceTransactions } from './resources/balance_transactions.ts';
export type { Events } from './resources/events.ts';
export type * from './params.ts';
export type * from './types.ts';
export { Tixian as default } from './client.ts';
