import { checkRetries, checkTimeout, HttpClient } from './http.ts';
import { parsePrivateKey, parsePublicKey, type PrivateKeyInput, type PublicKeyInput } from './signing.ts';
import * as webhooks from './webhooks.ts';
import { Withdrawals } from './resources/withdrawals.ts';
import { BatchWithdrawals } from './resources/batch_withdrawals.ts';
import { Users } from './resources/users.ts';
import { SettleAccounts } from './resources/settle_accounts.ts';
import { BalanceBonuses } from './resources/balance_bonuses.ts';
import { BalanceSettlements } from './resources/balance_settlements.ts';
import { BalanceTransfers } from './resources/balance_transfers.ts';
import { BalanceTransactions } from './resources/balance_transactions.ts';
import { Events } from './resources/events.ts';

export const DEFAULT_BASE_URL = 'https://api.pingxx.com';
/** Ping++'s own SDKs allow 80 s to read an answer (Go, Python, PHP, Java); so do we. */
export const DEFAULT_TIMEOUT_MS = 80_000;
export const DEFAULT_MAX_NETWORK_RETRIES = 1;

/** The webhook helpers (every value export of webhooks.ts), as `tixian.webhooks` and `import { webhooks }`. */
export type Webhooks = typeof webhooks;

export interface TixianOptions {
  /** `sk_test_…` or `sk_live_…`; the key decides the mode. */
  apiKey: string;
  /**
   * Merchant RSA private key (PEM, PKCS#1 or PKCS#8, or a KeyObject). When set, every request
   * carries `Pingplusplus-Signature` (§3); upload the public half to the server.
   */
  privateKey?: PrivateKeyInput;
  /**
   * Platform public key (PEM or KeyObject). When set, every 2xx answer must carry a valid
   * `X-Pingplusplus-Signature` over its body, else the call throws SignatureVerificationError.
   */
  platformPublicKey?: PublicKeyInput;
  /** Scheme and host (and an optional path prefix), without `/v1`. Default `https://api.pingxx.com`. */
  baseUrl?: string;
  /** Per attempt, from sending to the last byte of the answer. Default 80 000. */
  timeoutMs?: number;
  /** Retries of safe requests after a connection error or timeout. Default 1, at most 10. */
  maxNetworkRetries?: number;
  /** Used by app-scoped methods when their app id argument is left out. */
  appId?: string;
  /** `Accept-Language` (error messages: `en…` English, else Chinese). */
  acceptLanguage?: string;
  /** A fetch implementation (a proxy agent, a test double). Default: Node's global fetch. */
  fetch?: typeof fetch;
}

/**
 * A client of the Ping++ v1 balance API, served by tixian or by Ping++ itself.
 *
 *   const tixian = new Tixian({ apiKey: 'sk_test_…', appId: 'app_…', baseUrl: 'http://127.0.0.1:8080' });
 *   const w = await tixian.withdrawals.create({ user: 'u1', amount: 100, order_no: '1', channel: 'alipay', extra: { account: 'a@b.c', name: '张三' } });
 */
export class Tixian {
  readonly withdrawals: Withdrawals;
  readonly batchWithdrawals: BatchWithdrawals;
  readonly users: Users;
  readonly settleAccounts: SettleAccounts;
  readonly balanceBonuses: BalanceBonuses;
  readonly balanceSettlements: BalanceSettlements;
  readonly balanceTransfers: BalanceTransfers;
  readonly balanceTransactions: BalanceTransactions;
  readonly events: Events;
  readonly webhooks: Webhooks = webhooks;

  constructor(options: TixianOptions) {
    if (typeof options?.apiKey !== 'string' || options.apiKey === '') throw new TypeError('new Tixian({ apiKey }) needs an API key');
    const timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const maxNetworkRetries = checkRetries(options.maxNetworkRetries ?? DEFAULT_MAX_NETWORK_RETRIES);
    const http = new HttpClient({
      apiKey: options.apiKey,
      baseUrl: normaliseBaseUrl(options.baseUrl ?? DEFAULT_BASE_URL),
      timeoutMs,
      maxNetworkRetries,
      privateKey: options.privateKey === undefined ? undefined : parsePrivateKey(options.privateKey),
      platformPublicKey: options.platformPublicKey === undefined ? undefined : parsePublicKey(options.platformPublicKey),
      acceptLanguage: options.acceptLanguage,
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    });
    const app = options.appId;
    this.withdrawals = new Withdrawals(http, app);
    this.batchWithdrawals = new BatchWithdrawals(http, app);
    this.users = new Users(http, app);
    this.settleAccounts = new SettleAccounts(http, app);
    this.balanceBonuses = new BalanceBonuses(http, app);
    this.balanceSettlements = new BalanceSettlements(http, app);
    this.balanceTransfers = new BalanceTransfers(http, app);
    this.balanceTransactions = new BalanceTransactions(http, app);
    this.events = new Events(http);
  }
}

/**
 * `https://host`, `https://host/`, and Go-style `https://host/v1` all mean the same server:
 * the client adds `/v1` itself.
 */
function normaliseBaseUrl(raw: string): string {
  const url = new URL(raw);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`baseUrl must be http(s), got ${raw}`);
  if (url.search || url.hash) throw new TypeError(`baseUrl must not carry a query or fragment: ${raw}`);
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return url.origin + path;
}
