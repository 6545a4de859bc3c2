import { randomUUID } from 'node:crypto';
import { AlipaySdk } from 'alipay-sdk';
import type { Logger } from 'pino';
import { request } from 'undici';
import type { Store } from '../store/db.ts';
import type { SecretBox } from '../security/secrets.ts';
import { observeUnverifiedChannelAnswer } from '../observability/metrics.ts';
import { DEFAULT_ALIPAY_ENDPOINT, loadCredentials, type AlipayCredentials } from './credentials.ts';
import type { ChannelCall, ChannelDriver, PayoutOrder, PayoutOutcome } from './driver.ts';

/**
 * Alipay 单笔转账到支付宝账户 through the official `alipay-sdk`: `alipay.fund.trans.uni.transfer`
 * (TRANS_ACCOUNT_NO_PWD / DIRECT_TRANSFER) and `alipay.fund.trans.common.query`, `out_biz_no` = the
 * payout key. The v2 gateway (as `exec` calls it) is used, not v3 `curl`, because the v2 answer
 * signature covers every answer, business errors included, while `curl` leaves 4xx answers
 * unverified: a forged "payee does not exist" would otherwise return the user's money while Alipay
 * paid. The SDK signs the request and verifies the answer; the HTTP request itself is undici's (see
 * `gatewayCall` for why not the SDK's). Answers map by the table in spec/channels.md §4; decisions
 * use `sub_code`, never message text.
 */

const PAYEE_FAULTS = new Set([
  'PAYEE_NOT_EXIST', 'PAYEE_ACCOUNT_NOT_EXSIT', 'PAYEE_USER_INFO_ERROR', 'PAYEE_USERINFO_ERROR', 'PAYEE_ACC_OCUPIED',
  'PAYEE_ACCOUNT_STATUS_ERROR', 'PAYEE_USERINFO_STATUS_ERROR', 'PAYEE_NOT_RELNAME_CERTIFY', 'PAYEE_USER_TYPE_ERROR',
  'PAYEE_IDENTITY_NOT_MATCH', 'PERM_AML_NOT_REALNAME_REV', 'PERMIT_NON_BANK_LIMIT_PAYEE', 'PERMIT_LIMIT_PAYEE',
  'PERMIT_CHECK_RECEIVE_LIMIT', 'EXCEED_LIMIT_UNRN_DM_AMOUNT', 'EXCEED_LIMIT_DC_RECEIVED', 'PAYEE_RECEIVE_COUNT_EXCEED_LIMIT',
  'PAYEE_TRUSTEESHIP_ACC_OVER_LIMIT', 'TRUSTEESHIP_RECIEVE_QUOTA_LIMIT', 'BLOCK_USER_FORBBIDEN_RECIEVE',
  'RELEASE_USER_FORBBIDEN_RECIEVE', 'NO_ACCOUNT_USER_FORBBIDEN_RECIEVE', 'NO_ACCOUNT_RECEIVE_PERMISSION',
  'RECEIVER_USER_RISK_FREEZE', 'PAYER_PAYEE_CANNOT_SAME', 'EXCEED_LIMIT_PERSONAL_SM_AMOUNT', 'EXCEED_LIMIT_SM_MIN_AMOUNT',
]);
/** Outcome not known: ask again (by query) before anything else. */
const UNKNOWN_CODES = new Set(['SYSTEM_ERROR', 'RESOURCE_LIMIT_EXCEED', 'REQUEST_PROCESSING', 'TRANS_ORDER_DEALING', 'PAYMENT_INFO_INCONSISTENCY']);
/** Gateway codes that reject a request before it reaches the transfer product (keys, app id, permission). */
const GATEWAY_REJECTIONS = new Set(['20001', '40001', '40002', '40006']);

const PRODUCT_CODE = 'TRANS_ACCOUNT_NO_PWD';
const BIZ_SCENE = 'DIRECT_TRANSFER';
/** The request ends on its own this long before the worker gives the call up (driver.ts ChannelCall). */
const SDK_TIMEOUT_MARGIN_MS = 250;
/** The parameters alipay-sdk's `exec` puts in the gateway URL; the others (biz_content) go in the form body. */
const URL_PARAMS = new Set([
  'app_id', 'method', 'format', 'charset', 'sign_type', 'sign', 'timestamp', 'version', 'notify_url', 'return_url',
  'auth_token', 'app_auth_token', 'app_cert_sn', 'alipay_root_cert_sn', 'ws_service_url',
]);
const DEALING_RETRY_MS = 5_000;

/** Fen → Alipay's yuan string with two decimals, without floats. */
export function yuan(fen: number): string {
  if (!Number.isSafeInteger(fen) || fen < 0) throw new Error(`amount must be a non-negative integer in fen, got ${fen}`);
  return `${Math.floor(fen / 100)}.${String(fen % 100).padStart(2, '0')}`;
}

interface ExecResult {
  code?: string;
  msg?: string;
  subCode?: string;
  subMsg?: string;
  status?: string;
  errorCode?: string;
  failReason?: string;
}

export function sdkFor(c: AlipayCredentials, timeoutMs: number): AlipaySdk {
  const endpoint = (c.endpoint ?? DEFAULT_ALIPAY_ENDPOINT).replace(/\/$/, '');
  const keyType = c.private_key.includes('BEGIN PRIVATE KEY') ? 'PKCS8' : 'PKCS1';
  return new AlipaySdk({
    appId: c.app_id,
    privateKey: c.private_key,
    keyType,
    ...(c.alipay_public_key
      ? { alipayPublicKey: c.alipay_public_key }
      : { appCertContent: c.app_cert!, alipayPublicCertContent: c.alipay_public_cert!, alipayRootCertContent: c.alipay_root_cert! }),
    endpoint,
    gateway: `${endpoint}/gateway.do`,
    timeout: timeoutMs,
    camelcase: true,
  });
}

export class AlipayDriver implements ChannelDriver {
  readonly name = 'alipay';

  constructor(
    private readonly deps: { store: Store; box: SecretBox; log: Logger },
  ) {}

  async submit(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
    const c = await this.credentials(order);
    if (!c) return { kind: 'unknown', message: `no live alipay credentials for app ${order.app}` };
    const account = String(order.extra.account ?? '');
    const identityType = order.extra.account_type === 'ALIPAY_USERID' ? 'ALIPAY_USER_ID' : 'ALIPAY_LOGON_ID';
    const bizContent: Record<string, unknown> = {
      out_biz_no: order.key,
      trans_amount: yuan(order.amount),
      product_code: PRODUCT_CODE,
      biz_scene: BIZ_SCENE,
      payee_info: { identity: account, identity_type: identityType, ...(order.extra.name ? { name: String(order.extra.name) } : {}) },
      ...(c.order_title ? { order_title: c.order_title } : {}),
    };
    const r = await this.exec(c, 'alipay.fund.trans.uni.transfer', bizContent, call);
    if ('outcome' in r) return r.outcome;
    const res = r.result;
    if (res.code === '10000') return this.byStatus(order, res);
    if (GATEWAY_REJECTIONS.has(res.code ?? '')) {
      // Refused at the gateway (keys, app id, permission): no order exists under this key.
      return { kind: 'failed', blame: 'merchant', message: `alipay refused the transfer: ${res.code} ${res.subCode ?? ''}`.trim() };
    }
    if (res.code === '40004') return this.byCode(order, res.subCode ?? '', res.subMsg ?? res.msg ?? '');
    return { kind: 'unknown', message: `alipay answered code ${res.code ?? '?'} ${res.subCode ?? ''}`.trim() };
  }

  async query(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
    const c = await this.credentials(order);
    if (!c) return { kind: 'unknown', message: `no live alipay credentials for app ${order.app}` };
    const r = await this.exec(c, 'alipay.fund.trans.common.query', { out_biz_no: order.key, product_code: PRODUCT_CODE, biz_scene: BIZ_SCENE }, call);
    if ('outcome' in r) return r.outcome;
    const res = r.result;
    if (res.code === '10000') return this.byStatus(order, res);
    if (res.code === '40004' && res.subCode === 'ORDER_NOT_EXIST') return { kind: 'not_found' };
    // Any other refusal of a query says nothing about the order: it may have been paid.
    return { kind: 'unknown', message: `alipay query answered ${res.code ?? '?'} ${res.subCode ?? ''}`.trim() };
  }

  /** A signed, harmless call: query an order that cannot exist. Proves the keys, app id and endpoint. */
  static async check(c: AlipayCredentials, timeoutMs: number): Promise<{ ok: boolean; message: string }> {
    try {
      const res = await gatewayCall(sdkFor(c, timeoutMs), 'alipay.fund.trans.common.query',
        { out_biz_no: `tixiancheck${Date.now()}`, product_code: PRODUCT_CODE, biz_scene: BIZ_SCENE }, AbortSignal.timeout(timeoutMs));
      if (res.code === '10000' || (res.code === '40004' && res.subCode === 'ORDER_NOT_EXIST')) return { ok: true, message: 'alipay accepted a signed query and its signed answer verified' };
      return { ok: false, message: `alipay answered ${res.code ?? '?'} ${res.subCode ?? ''} ${res.subMsg ?? ''}`.trim() };
    } catch (err) {
      return { ok: false, message: `alipay call failed: ${safeMessage(err)}` };
    }
  }

  private async credentials(order: PayoutOrder): Promise<AlipayCredentials | null> {
    const loaded = await loadCredentials(this.deps, order.app, order.livemode, 'alipay');
    return loaded?.credentials.channel === 'alipay' ? loaded.credentials : null;
  }

  private async exec(c: AlipayCredentials, method: string, bizContent: Record<string, unknown>, call: ChannelCall): Promise<{ result: ExecResult } | { outcome: PayoutOutcome }> {
    if (call.signal.aborted) return { outcome: { kind: 'unknown', message: 'the call was given up before it started' } };
    // The worker's signal, and a deadline of our own just before it, so the outcome is ours to report.
    const signal = AbortSignal.any([call.signal, AbortSignal.timeout(Math.max(50, call.timeoutMs - SDK_TIMEOUT_MARGIN_MS))]);
    try {
      return { result: await gatewayCall(sdkFor(c, call.timeoutMs), method, bizContent, signal) };
    } catch (err) {
      // Network failure, abort, non-200, non-JSON, or an answer whose signature does not verify:
      // the order may or may not exist. Never a success, never a failure.
      const message = safeMessage(err);
      if (err instanceof UnverifiedAnswer) {
        observeUnverifiedChannelAnswer('alipay');
        this.deps.log.error({ method }, 'alipay answer failed signature verification; treated as unknown');
      }
      return { outcome: { kind: 'unknown', message: `alipay ${method}: ${message}` } };
    }
  }

  private byStatus(order: PayoutOrder, res: ExecResult): PayoutOutcome {
    switch (res.status) {
      case 'SUCCESS':
        return { kind: 'succeeded' };
      case 'DEALING':
      case 'WAIT_PAY':
        return { kind: 'processing', retryAfterMs: DEALING_RETRY_MS, message: `alipay status ${res.status}` };
      case 'FAIL':
        return this.byCode(order, res.errorCode ?? '', res.failReason ?? 'alipay: transfer failed', true);
      case 'CLOSED':
        return { kind: 'failed', blame: 'merchant', message: 'alipay closed the transfer order' };
      default:
        // REFUND (bank-card payees only) or a status this driver does not know: an operator decides.
        this.deps.log.error({ withdrawal: order.withdrawalId, status: res.status }, 'alipay answered an unexpected transfer status');
        return { kind: 'unknown', message: `alipay status ${String(res.status)}` };
    }
  }

  /** A business error code. `terminal`: the order is known to have failed (a query said FAIL). */
  private byCode(order: PayoutOrder, code: string, reason: string, terminal = false): PayoutOutcome {
    const message = `alipay: ${code}${reason ? ` ${reason.slice(0, 200)}` : ''}`;
    if (PAYEE_FAULTS.has(code)) return { kind: 'failed', blame: 'user', message };
    if (!terminal && (UNKNOWN_CODES.has(code) || code.startsWith('isp.') || code === '')) {
      if (code === 'PAYMENT_INFO_INCONSISTENCY') this.deps.log.error({ withdrawal: order.withdrawalId }, 'alipay: a payout key was reused with different parameters (a bug); the first request may have paid');
      return { kind: 'unknown', message };
    }
    // The payer's account, contract or configuration; or an unlisted definitive refusal (logged so
    // it can be classified). A synchronous refusal leaves no order, so a re-confirm may use a new key.
    if (!MERCHANT_FAULTS.has(code)) this.deps.log.warn({ withdrawal: order.withdrawalId, code }, 'alipay: unclassified refusal treated as the merchant\'s');
    return { kind: 'failed', blame: 'merchant', message };
  }
}

const MERCHANT_FAULTS = new Set([
  'BALANCE_IS_NOT_ENOUGH', 'PAYER_BALANCE_NOT_ENOUGH', 'BALANCE_NOT_ENOUGH', 'PAYCARD_UNABLE_PAYMENT', 'PAYER_STATUS_ERROR',
  'PAYER_CERTIFY_CHECK_FAIL', 'PAYER_USER_INFO_ERROR', 'PAYER_DATA_INCOMPLETE', 'PAYER_CERT_EXPIRED', 'PAYER_NOT_EXIST',
  'PAYER_PERMLIMIT_CHECK_FAILURE', 'ACCOUNT_NOT_EXIST', 'PERMIT_CHECK_PERM_LIMITED', 'PERMIT_CHECK_PERM_IDENTITY_THEFT',
  'PERMIT_PAYER_LOWEST_FORBIDDEN', 'PERMIT_PAYER_FORBIDDEN', 'PERMIT_CHECK_PERM_AML_CERT_EXPIRED', 'CERT_MISS_TRANS_LIMIT',
  'CERT_MISS_ACC_LIMIT', 'PRODUCT_NOT_SIGN', 'NO_ACCOUNT_PAYMENT_PERMISSION', 'NO_PERMISSION_ACCOUNT', 'INVALID_PAYER_ACCOUNT',
  'ISV_AUTH_ERROR', 'MONEY_PAY_CLOSED', 'NOT_IN_WHITE_LIST', 'BLOCK_USER_FORBBIDEN_SEND', 'EXCEED_LIMIT_SM_AMOUNT',
  'EXCEED_LIMIT_DM_AMOUNT', 'EXCEED_LIMIT_DM_MAX_AMOUNT', 'EXCEED_LIMIT_MM_AMOUNT', 'EXCEED_LIMIT_MM_MAX_AMOUNT',
  'EXCEED_LIMIT_ENT_SM_AMOUNT', 'MEMO_REQUIRED_IN_TRANSFER_ERROR', 'REMARK_HAS_SENSITIVE_WORD', 'INVALID_PARAMETER',
]);

/** An answer whose signature did not verify (or that carried none). */
class UnverifiedAnswer extends Error {}

/**
 * One v2 gateway call, as alipay-sdk's `exec(method, { bizContent }, { validateSign: true })` makes
 * it, but over undici with `signal`. `exec` takes no signal, and its HTTP client (urllib) turns its
 * `timeout` into a wait for the headers plus an idle limit between body chunks, so a slowly
 * dribbled answer never ends; it also resends the whole request once after a socket error, with
 * fresh limits. Either way a transfer could reach Alipay after the worker gave the call up and
 * another round asked about the same key. Here the signal ends the request whatever its stage (the
 * socket is destroyed) and nothing is ever resent. The SDK still signs the request and verifies
 * the answer over its exact text.
 */
async function gatewayCall(sdk: AlipaySdk, method: string, bizContent: Record<string, unknown>, signal: AbortSignal): Promise<ExecResult> {
  // The parameters exec would sign, signed the same way; biz_content's keys are already snake_case.
  const signed = new URLSearchParams(sdk.sdkExecute(method, { bizContent }, { bizContentAutoSnakeCase: false }));
  const url = new URL(sdk.config.gateway);
  const form = new URLSearchParams();
  for (const [k, v] of signed) (URL_PARAMS.has(k) ? url.searchParams : form).set(k, v);
  const res = await request(url, {
    method: 'POST',
    body: form.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'user-agent': sdk.version, 'alipay-request-id': randomUUID().replaceAll('-', '') },
    signal,
  });
  const raw = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP status ${res.statusCode}`);
  let answer: unknown;
  try {
    answer = JSON.parse(raw);
  } catch {
    throw new Error('the answer is not JSON');
  }
  const responseKey = `${method.replaceAll('.', '_')}_response`;
  const fields = answer as Record<string, unknown> | null;
  const data = fields?.[responseKey] ?? fields?.error_response;
  if (typeof data !== 'object' || data === null) throw new Error(`the answer has no ${responseKey}`);
  // checkResponseSign skips the check (with a warning) when it has no Alipay public key: never here.
  if (!sdk.config.alipayPublicKey) throw new UnverifiedAnswer('no Alipay public key to verify the answer with');
  try {
    // The SDK's own check, over the answer's exact text, as exec with validateSign runs it.
    sdk.checkResponseSign(raw, responseKey, fields!.sign as string, String(res.headers.trace_id ?? ''));
  } catch {
    // The SDK's message quotes the signed text and the signature: it stays out of logs and records.
    throw new UnverifiedAnswer('the answer\'s signature did not verify');
  }
  // The SDK's answers are camelCased (camelcase: true): the fields read here are top-level.
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase()), v])) as ExecResult;
}

/** An SDK error's message without echoed request or response content (it can quote signed strings). */
function safeMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/(validateStr|签名字符串为|验证字符串为|sign)[:：]?\s*'?[^,，]*/gi, '$1 …').slice(0, 200);
}
