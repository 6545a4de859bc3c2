import { Rsa, Wechatpay } from 'wechatpay-axios-plugin';
import type { Logger } from 'pino';
import { observeUnverifiedChannelAnswer } from '../observability/metrics.ts';
import type { ChannelCall, ChannelDriver, PayoutOrder, PayoutOutcome } from './driver.ts';
import { outBillNo } from './wechat-bill.ts';
import { DEFAULT_WECHAT_ENDPOINT } from './credentials.ts';

/**
 * WeChat Pay 商家转账 (`transfer-bills`, APIv3) through `wechatpay-axios-plugin`: submit, query and
 * cancel by `out_bill_no` (cancel: wechat-cancel.ts; notifications: wechat-notify.ts). Every 2xx answer is verified by the plugin (WeChat Pay public key and its id);
 * answers mapped by spec/channels.md §4.
 *
 * A bill normally waits for the payee to confirm it in WeChat (`WAIT_USER_CONFIRM` +
 * `package_info`): the driver reports it as `processing.confirmation`, which the worker shows on the
 * withdrawal as `extra.wx_confirmation` for the merchant's app to open WeChat's confirm page.
 */
export interface WechatCredentials {
  channel: 'wechat';
  mchid: string;
  /** The merchant API certificate's serial number and its private key (PEM). */
  merchant_serial: string;
  private_key: string;
  /** WeChat Pay public key (PEM) and its id (`PUB_KEY_ID_…`): verifies answers, encrypts names. */
  wechatpay_public_key: string;
  wechatpay_public_key_id: string;
  /** The appid bound to the mchid for each Ping++ channel (openids are per appid). */
  appids: Partial<Record<'wx' | 'wx_pub' | 'wx_lite', string>>;
  transfer_scene_id: string;
  /** 转账场景报备信息, e.g. [{ info_type: '活动名称', info_content: '提现' }, …] as the scene requires. */
  report_infos: { info_type: string; info_content: string }[];
  /** Shown to the payee (≤ 32 chars). */
  remark?: string;
  endpoint?: string;
  /** The APIv3 key (32 characters): decrypts WeChat's transfer notifications (AES-256-GCM). */
  apiv3_key?: string;
}

const PAYEE_REASONS = new Set([
  'ACCOUNT_FROZEN', 'ACCOUNT_NOT_EXIST', 'BLOCK_B2C_USERLIMITAMOUNT_BSRULE_MONTH', 'BLOCK_B2C_USERLIMITAMOUNT_MONTH',
  'EXCEEDED_ESTIMATED_AMOUNT', 'ID_CARD_NOT_CORRECT', 'NAME_NOT_CORRECT', 'OPENID_INVALID', 'PAYEE_ACCOUNT_ABNORMAL',
  'REAL_NAME_CHECK_FAIL', 'RECEIVE_ACCOUNT_NOT_PERMMIT', 'TRANSFER_QUOTA_EXCEED', 'TRANSFER_RISK', 'USER_NOT_EXIST',
  'MERCHANT_REJECT', 'TRANSFER_REMARK_SET_FAIL', 'DAY_RECEIVED_QUOTA_EXCEED', 'DAY_RECEIVED_COUNT_EXCEED',
]);
const IN_PROGRESS_MS: Record<string, number> = { ACCEPTED: 5_000, TRANSFERING: 5_000, CANCELING: 5_000, PROCESSING: 60_000, WAIT_USER_CONFIRM: 5 * 60_000 };
/** Refusals of a submit that leave no bill (once a query agrees the bill is absent). */
const SUBMIT_REFUSALS = new Set(['PARAM_ERROR', 'INVALID_REQUEST', 'NO_AUTH', 'NOT_ENOUGH', 'SIGN_ERROR']);
const SDK_TIMEOUT_MARGIN_MS = 250;
/** WeChat's query answers for the last 30 days ("只支持查询最近30天内的转账单"); a day kept in hand. */
const QUERY_WINDOW_MS = 29 * 86_400_000;

interface Bill {
  out_bill_no?: string;
  state?: string;
  fail_reason?: string;
  package_info?: string;
}

type AxiosLikeError = { code?: string; message?: string; response?: { status?: number; data?: { code?: string; message?: string } } };

export class WechatDriver implements ChannelDriver {
  readonly name = 'wechat';

  constructor(
    private readonly credentialsFor: (order: PayoutOrder) => Promise<WechatCredentials | null>,
    private readonly log: Logger,
    /** Where WeChat should POST the bill's notification (`--public-url`); none: found by querying alone. */
    private readonly notifyUrl: (order: PayoutOrder) => string | undefined = () => undefined,
  ) {}

  async submit(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
    const c = await this.credentialsFor(order);
    if (!c) return { kind: 'unknown', message: `no live wechat credentials for app ${order.app}` };
    const appid = c.appids[order.channel as 'wx' | 'wx_pub' | 'wx_lite'];
    if (!appid) return { kind: 'unknown', message: `no appid configured for ${order.channel}` };
    const name = typeof order.extra.name === 'string' ? order.extra.name : undefined;
    const body = {
      appid,
      out_bill_no: outBillNo(order.key),
      transfer_scene_id: c.transfer_scene_id,
      openid: String(order.extra.open_id ?? ''),
      ...(name ? { user_name: Rsa.encrypt(name, Rsa.from(c.wechatpay_public_key, Rsa.KEY_TYPE_PUBLIC)) } : {}),
      transfer_amount: order.amount,
      transfer_remark: (c.remark ?? '提现').slice(0, 32),
      transfer_scene_report_infos: c.report_infos,
      ...(this.notifyUrl(order) ? { notify_url: this.notifyUrl(order) } : {}),
    };
    try {
      const res = await this.bills(c, call).post(body, { signal: call.signal, headers: { 'Wechatpay-Serial': c.wechatpay_public_key_id } });
      return this.byState(order, c, appid, res.data as Bill);
    } catch (err) {
      const e = err as AxiosLikeError;
      const code = e.response?.data?.code ?? '';
      const status = e.response?.status ?? 0;
      if (status >= 400 && status < 500 && SUBMIT_REFUSALS.has(code)) {
        // A refusal is only safe to blame on the merchant once WeChat has no bill under this number.
        // (No second transfer from this query: that is what was just refused.)
        const q = await this.lookUp(order, call, false);
        if (q.kind === 'not_found') return { kind: 'failed', blame: 'merchant', message: `wechat refused the transfer: ${code}` };
        return q;
      }
      return this.unknown(err, 'transfer-bills');
    }
  }

  query(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
    return this.lookUp(order, call, true);
  }

  /**
   * WeChat's query answers a bill's state but never its `package_info`: only the transfer's own
   * answer carries it. So a bill found waiting for the payee whose confirmation the withdrawal does
   * not show yet (the transfer's answer was lost: a timeout, a cut connection, a crash) is asked
   * for again with the same transfer, same `out_bill_no`: WeChat answers a repeated number with
   * the bill it has (never a second one), package included. Without it the payee could never
   * confirm, and the bill would close unpaid after ~24 h.
   */
  private async lookUp(order: PayoutOrder, call: ChannelCall, mayAskForPackage: boolean): Promise<PayoutOutcome> {
    const c = await this.credentialsFor(order);
    if (!c) return { kind: 'unknown', message: `no live wechat credentials for app ${order.app}` };
    const appid = c.appids[order.channel as 'wx' | 'wx_pub' | 'wx_lite'] ?? '';
    try {
      const res = await this.bills(c, call).outBillNo.$out_bill_no$.get({ out_bill_no: outBillNo(order.key), signal: call.signal });
      const bill = res.data as Bill;
      if (mayAskForPackage && bill.state === 'WAIT_USER_CONFIRM' && !bill.package_info && !this.confirmationShown(order)) return this.submit(order, call);
      return this.byState(order, c, appid, bill);
    } catch (err) {
      const e = err as AxiosLikeError;
      if (e.response?.status === 404 && e.response.data?.code === 'NOT_FOUND') {
        // Past the query window the bill may exist (even be paid) and not be found: not_found
        // would have it sent again. Only an operator, asking WeChat, can settle it.
        const ageDays = Math.floor((call.nowMs - order.confirmedMs) / 86_400_000);
        if (call.nowMs - order.confirmedMs > QUERY_WINDOW_MS) {
          this.log.error({ withdrawal: order.withdrawalId, ageDays }, 'wechat: a bill past the 30-day query window was not found; not sent again');
          return { kind: 'unknown', message: `wechat: not found, but the bill is ${ageDays} days old, past the 30-day query window; not sent again (check with WeChat Pay)` };
        }
        return { kind: 'not_found' };
      }
      return this.unknown(err, 'transfer-bills query');
    }
  }

  /**
   * Gives up a bill that waits for the payee's confirmation (`…/out-bill-no/{no}/cancel`; WeChat
   * accepts it only before the payee confirms). The answer is the bill's state like a query's:
   * CANCELING (processing) or CANCELLED (failed). A bill the payee confirmed meanwhile answers an
   * error here; the caller queries it and follows whatever WeChat says, so a cancel never decides
   * an outcome on its own word.
   */
  async cancel(order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> {
    const c = await this.credentialsFor(order);
    if (!c) return { kind: 'unknown', message: `no live wechat credentials for app ${order.app}` };
    const appid = c.appids[order.channel as 'wx' | 'wx_pub' | 'wx_lite'] ?? '';
    try {
      const res = await this.bills(c, call).outBillNo.$out_bill_no$.cancel.post({}, { out_bill_no: outBillNo(order.key), signal: call.signal });
      return this.byState(order, c, appid, res.data as Bill);
    } catch (err) {
      const e = err as AxiosLikeError;
      if (e.response?.status === 404 && e.response.data?.code === 'NOT_FOUND') return { kind: 'not_found' };
      return this.unknown(err, 'transfer-bills cancel');
    }
  }

  /**
   * A signed, harmless call: query a bill that cannot exist. NOT_FOUND proves the mchid, merchant key
   * and serial (a bad signature answers 401); WeChat does not sign error answers, so the WeChat Pay
   * public key is proven by the first real (2xx, verified) answer.
   */
  static async check(c: WechatCredentials, timeoutMs: number): Promise<{ ok: boolean; message: string }> {
    const controller = new AbortController();
    const driver = new WechatDriver(async () => c, { warn() {}, error() {} } as unknown as Logger);
    const now = Date.now();
    const order: PayoutOrder = { key: `tixiancheck${now}`, withdrawalId: 'check', app: 'check', channel: 'wx', amount: 0, extra: {}, livemode: true, confirmedMs: now };
    const outcome = await driver.query(order, { timeoutMs, signal: controller.signal, nowMs: now });
    if (outcome.kind === 'not_found') return { ok: true, message: 'wechat pay accepted a signed query (the bill does not exist, as expected)' };
    return { ok: false, message: outcome.kind === 'unknown' ? outcome.message : `unexpected answer ${outcome.kind}` };
  }

  // The plugin's chained client is untyped; this is the one path used.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private bills(c: WechatCredentials, call: ChannelCall): any {
    const wxpay = new Wechatpay({
      mchid: c.mchid,
      serial: c.merchant_serial,
      privateKey: c.private_key,
      certs: { [c.wechatpay_public_key_id]: c.wechatpay_public_key },
      baseURL: c.endpoint ?? DEFAULT_WECHAT_ENDPOINT,
      timeout: Math.max(50, call.timeoutMs - SDK_TIMEOUT_MARGIN_MS),
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (wxpay as any).v3.fundApp.mchTransfer.transferBills;
  }

  private byState(order: PayoutOrder, c: WechatCredentials, appid: string, bill: Bill): PayoutOutcome {
    const state = bill.state ?? '';
    if (state === 'SUCCESS') return { kind: 'succeeded' };
    if (state in IN_PROGRESS_MS) {
      const retryAfterMs = IN_PROGRESS_MS[state]!;
      if (state === 'WAIT_USER_CONFIRM' && bill.package_info) {
        return { kind: 'processing', retryAfterMs, message: `wechat state ${state}`, confirmation: { package_info: bill.package_info, mch_id: c.mchid, app_id: appid, out_bill_no: outBillNo(order.key) } };
      }
      return { kind: 'processing', retryAfterMs, message: `wechat state ${state}` };
    }
    if (state === 'FAIL') {
      const reason = bill.fail_reason ?? '';
      if (reason === 'OVERDUE_CLOSE') {
        // Closed after ~24 h: the payee's fault if this very bill was waiting for their confirmation
        // (shown on the withdrawal), otherwise it sat unpaid on the merchant's side (channels.md §4).
        const waitedForPayee = this.confirmationShown(order);
        return { kind: 'failed', blame: waitedForPayee ? 'user' : 'merchant', message: `wechat: OVERDUE_CLOSE${waitedForPayee ? ' (the payee did not confirm in time)' : ''}` };
      }
      if (PAYEE_REASONS.has(reason)) return { kind: 'failed', blame: 'user', message: `wechat: ${reason}` };
      this.log.warn({ withdrawal: order.withdrawalId, reason }, 'wechat: transfer failed for a reason treated as the merchant\'s');
      return { kind: 'failed', blame: 'merchant', message: `wechat: ${reason || 'FAIL'}` };
    }
    if (state === 'CANCELLED') return { kind: 'failed', blame: 'merchant', message: 'wechat: the transfer bill was cancelled' };
    this.log.error({ withdrawal: order.withdrawalId, state }, 'wechat answered an unknown bill state');
    return { kind: 'unknown', message: `wechat state ${state}` };
  }

  /** The withdrawal shows the payee the confirmation of this very bill (a later round has another). */
  private confirmationShown(order: PayoutOrder): boolean {
    const shown = order.extra.wx_confirmation as { out_bill_no?: string } | undefined;
    return shown?.out_bill_no === outBillNo(order.key);
  }

  private unknown(err: unknown, what: string): PayoutOutcome {
    const e = err as AxiosLikeError;
    if (typeof e.code === 'string' && e.code.startsWith('EV3_')) {
      // The plugin could not verify the answer (signature, serial, timestamp): never trust it.
      observeUnverifiedChannelAnswer('wechat');
      this.log.error({ what, code: e.code }, 'wechat answer failed verification; treated as unknown');
      return { kind: 'unknown', message: `wechat ${what}: answer not verified (${e.code})` };
    }
    return { kind: 'unknown', message: `wechat ${what}: ${e.response?.status ?? ''} ${e.response?.data?.code ?? e.code ?? ''}`.trim() };
  }
}
