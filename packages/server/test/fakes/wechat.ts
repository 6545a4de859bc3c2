import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants, createCipheriv, createSign, createVerify, privateDecrypt, randomBytes } from 'node:crypto';
import type { WechatCredentials } from '../../src/channels/wechat.ts';
import { FakeGateway, rsaKeyPair } from './gateway.ts';

/**
 * A local WeChat Pay APIv3 gateway for 商家转账 (transfer-bills) that `wechatpay-axios-plugin`
 * talks to unchanged (`baseURL` pointed here). It verifies each request's `Authorization`
 * (WECHATPAY2-SHA256-RSA2048 over `METHOD\nurl\ntimestamp\nnonce\nbody\n`, merchant key, serial,
 * ±300 s), decrypts `user_name` with the WeChat Pay private key (RSA-OAEP/SHA-1) under the
 * `Wechatpay-Serial` it names, signs every answer with the WeChat Pay key (`Wechatpay-*` headers),
 * keeps bills by `out_bill_no` (same body replays, another body is INVALID_REQUEST), answers a
 * query without `package_info` as WeChat does (only a transfer's answer carries it), counts debits,
 * and lets tests confirm or expire a bill and inject faults (spec/channels.md §5.2).
 */
export interface FakeBill {
  out_bill_no: string;
  transfer_bill_no: string;
  appid: string;
  openid: string;
  transfer_amount: number;
  user_name?: string;
  state: string;
  fail_reason?: string;
  package_info?: string;
  notify_url?: string;
  body: string;
}

/** A notification as WeChat sends it: the exact body and its `Wechatpay-*` headers. */
export interface FakeNotification {
  headers: Record<string, string>;
  body: string;
}

export class FakeWechat extends FakeGateway {
  readonly mchid = '1900000001';
  readonly merchantSerial = 'MERCHANT_SERIAL_0001';
  readonly publicKeyId = 'PUB_KEY_ID_0111111111111111111111111111';
  /** The merchant's APIv3 key: notifications' resources are encrypted with it. */
  readonly apiv3Key = randomBytes(16).toString('hex');
  readonly merchantPrivateKey: string;
  private readonly merchantPublicKey: string;
  readonly wechatpayPublicKey: string;
  private readonly wechatpayPrivateKey: string;

  /** Bills by out_bill_no (debits count per out_bill_no too). */
  readonly bills = new Map<string, FakeBill>();
  balanceFen = Number.MAX_SAFE_INTEGER;
  /** Openids WeChat rejects (the bill fails with OPENID_INVALID). */
  readonly invalidOpenids = new Set<string>();
  /** Openids whose bills need no confirmation (免确认收款授权): straight to SUCCESS. */
  readonly preAuthorized = new Set<string>();
  /** Openids whose bill is kept, then the connection cut before the answer. */
  readonly cutAfterAccept = new Set<string>();
  badSignature = false;
  /** Delay before a submit's answer (the bill is kept and paid first): a crash catches answers on the wire. */
  answerDelayMs = 0;
  readonly calls: string[] = [];
  rejectedSignatures = 0;
  private seq = 0;

  constructor() {
    super();
    ({ privateKey: this.merchantPrivateKey, publicKey: this.merchantPublicKey } = rsaKeyPair());
    ({ privateKey: this.wechatpayPrivateKey, publicKey: this.wechatpayPublicKey } = rsaKeyPair());
  }

  get endpoint(): string {
    return `${this.origin}/`;
  }

  /**
   * What a merchant sets to pay through this gateway (after start): its keys, one wx_lite appid and
   * transfer scene 1000 with the one report it asks for. `extra` adds fields or replaces them.
   */
  credentials(extra: Partial<WechatCredentials> = {}): WechatCredentials {
    return {
      channel: 'wechat', mchid: this.mchid, merchant_serial: this.merchantSerial, private_key: this.merchantPrivateKey,
      wechatpay_public_key: this.wechatpayPublicKey, wechatpay_public_key_id: this.publicKeyId,
      appids: { wx_lite: 'wxlite0000000001' }, transfer_scene_id: '1000',
      report_infos: [{ info_type: '活动名称', info_content: '余额提现' }], endpoint: this.endpoint,
      ...extra,
    };
  }

  /** The payee confirms the bill in WeChat: it is paid. */
  confirm(outBillNo: string): void {
    const bill = this.bills.get(outBillNo);
    if (!bill || bill.state !== 'WAIT_USER_CONFIRM') throw new Error(`bill ${outBillNo} is not waiting for confirmation`);
    this.pay(bill);
  }

  /** The payee let the confirmation lapse (~24 h): WeChat closes the bill. */
  expire(outBillNo: string): void {
    const bill = this.bills.get(outBillNo);
    if (!bill || bill.state !== 'WAIT_USER_CONFIRM') throw new Error(`bill ${outBillNo} is not waiting for confirmation`);
    bill.state = 'FAIL';
    bill.fail_reason = 'OVERDUE_CLOSE';
  }

  /**
   * The `MCHTRANSFER.BILL.FINISHED` notification of a bill, as WeChat would POST it to the bill's
   * notify_url: the resource AES-256-GCM encrypted with the APIv3 key (AAD `mch_payment`), the
   * body signed with the WeChat Pay key. `tamper` breaks the signature after signing.
   */
  notification(outBillNo: string, options: { timestampS?: number; apiv3Key?: string; tamper?: boolean } = {}): FakeNotification {
    const bill = this.bills.get(outBillNo);
    if (!bill) throw new Error(`no bill ${outBillNo}`);
    const plain = JSON.stringify({
      out_bill_no: bill.out_bill_no, transfer_bill_no: bill.transfer_bill_no, state: bill.state, mch_id: this.mchid, transfer_amount: bill.transfer_amount,
      openid: bill.openid, ...(bill.fail_reason ? { fail_reason: bill.fail_reason } : {}), create_time: '2026-01-01T12:00:00+08:00', update_time: '2026-01-01T12:00:00+08:00',
    });
    const iv = randomBytes(6).toString('hex'); // 12 characters, used as bytes
    const cipher = createCipheriv('aes-256-gcm', Buffer.from(options.apiv3Key ?? this.apiv3Key, 'utf8'), Buffer.from(iv, 'utf8'));
    cipher.setAAD(Buffer.from('mch_payment', 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64');
    const body = JSON.stringify({
      id: `EV-${randomBytes(8).toString('hex')}`, create_time: '2026-01-01T12:00:00+08:00', resource_type: 'encrypt-resource', event_type: 'MCHTRANSFER.BILL.FINISHED',
      summary: '商家转账单据终态通知', resource: { original_type: 'mch_payment', algorithm: 'AEAD_AES_256_GCM', ciphertext, associated_data: 'mch_payment', nonce: iv },
    });
    const ts = String(options.timestampS ?? Math.floor(Date.now() / 1000));
    const nonce = randomBytes(16).toString('hex');
    const signature = createSign('RSA-SHA256').update(`${ts}\n${nonce}\n${body}\n`).sign(this.wechatpayPrivateKey, 'base64');
    return {
      body: options.tamper ? body.replace('"MCHTRANSFER.BILL.FINISHED"', '"MCHTRANSFER.BILL.FINISHEd"') : body,
      headers: { 'content-type': 'application/json', 'wechatpay-timestamp': ts, 'wechatpay-nonce': nonce, 'wechatpay-serial': this.publicKeyId, 'wechatpay-signature': signature },
    };
  }

  /** POSTs a bill's notification to the notify_url it was submitted with; the HTTP status it got. */
  async notify(outBillNo: string): Promise<number> {
    const url = this.bills.get(outBillNo)?.notify_url;
    if (!url) throw new Error(`bill ${outBillNo} has no notify_url`);
    const n = this.notification(outBillNo);
    const res = await fetch(url, { method: 'POST', headers: n.headers, body: n.body });
    await res.arrayBuffer();
    return res.status;
  }

  private pay(bill: FakeBill): void {
    bill.state = 'SUCCESS';
    this.debits.set(bill.out_bill_no, (this.debits.get(bill.out_bill_no) ?? 0) + 1);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = req.url ?? '/';
    this.calls.push(`${req.method} ${url.split('?')[0]}`);
    if (!this.verifyRequest(req, body)) {
      this.rejectedSignatures++;
      return this.answer(res, 401, { code: 'SIGN_ERROR', message: '签名错误' });
    }
    if (req.method === 'POST' && url === '/v3/fund-app/mch-transfer/transfer-bills') return this.transfer(req, res, body);
    const m = /^\/v3\/fund-app\/mch-transfer\/transfer-bills\/out-bill-no\/([0-9A-Za-z]{1,32})$/.exec(url);
    if (req.method === 'GET' && m) {
      const bill = this.bills.get(m[1]!);
      if (!bill) return this.answer(res, 404, { code: 'NOT_FOUND', message: '记录不存在' });
      // A cancel completes by the next look at the bill.
      if (bill.state === 'CANCELING') bill.state = 'CANCELLED';
      // As WeChat's query: no package_info (only the transfer's own answer carries it).
      return this.answer(res, 200, this.billView(bill, false));
    }
    const cancel = /^\/v3\/fund-app\/mch-transfer\/transfer-bills\/out-bill-no\/([0-9A-Za-z]{1,32})\/cancel$/.exec(url);
    if (req.method === 'POST' && cancel) {
      const bill = this.bills.get(cancel[1]!);
      if (!bill) return this.answer(res, 404, { code: 'NOT_FOUND', message: '记录不存在' });
      // Only before the payee confirms (ACCEPTED / PROCESSING / WAIT_USER_CONFIRM); a cancel is idempotent.
      if (['ACCEPTED', 'PROCESSING', 'WAIT_USER_CONFIRM'].includes(bill.state)) {
        bill.state = 'CANCELING';
        this.balanceFen += bill.transfer_amount;
        delete bill.package_info;
      } else if (bill.state !== 'CANCELING' && bill.state !== 'CANCELLED') {
        return this.answer(res, 400, { code: 'INVALID_REQUEST', message: '单据状态不允许撤销' });
      }
      return this.answer(res, 200, { out_bill_no: bill.out_bill_no, transfer_bill_no: bill.transfer_bill_no, state: bill.state, update_time: '2026-01-01T12:00:00+08:00' });
    }
    return this.answer(res, 404, { code: 'NOT_FOUND', message: 'no such API' });
  }

  private verifyRequest(req: IncomingMessage, body: string): boolean {
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('WECHATPAY2-SHA256-RSA2048 ')) return false;
    const fields = Object.fromEntries([...auth.slice(26).matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (fields.mchid !== this.mchid || fields.serial_no !== this.merchantSerial) return false;
    const ts = Number(fields.timestamp);
    if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > 300) return false;
    const message = `${req.method}\n${req.url}\n${fields.timestamp}\n${fields.nonce_str}\n${body}\n`;
    return createVerify('RSA-SHA256').update(message).verify(this.merchantPublicKey, fields.signature ?? '', 'base64');
  }

  private async transfer(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
    let b: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      b = JSON.parse(raw);
    } catch {
      return this.answer(res, 400, { code: 'PARAM_ERROR', message: 'body is not JSON' });
    }
    const invalid = (message: string) => this.answer(res, 400, { code: 'PARAM_ERROR', message });
    if (!/^[0-9A-Za-z]{1,32}$/.test(String(b.out_bill_no))) return invalid('out_bill_no');
    if (typeof b.appid !== 'string' || !b.appid) return invalid('appid');
    if (!Number.isSafeInteger(b.transfer_amount) || b.transfer_amount < 10) return invalid('transfer_amount');
    if (typeof b.transfer_remark !== 'string' || b.transfer_remark.length > 32) return invalid('transfer_remark');
    if (!Array.isArray(b.transfer_scene_report_infos) || b.transfer_scene_report_infos.length === 0) return invalid('transfer_scene_report_infos');
    // https without a query (http only to this host, for tests).
    if (b.notify_url !== undefined && (typeof b.notify_url !== 'string' || !/^(https:\/\/|http:\/\/127\.0\.0\.1[:/])[^?#\s]+$/.test(b.notify_url))) return invalid('notify_url');
    let userName: string | undefined;
    if (b.user_name !== undefined) {
      if (req.headers['wechatpay-serial'] !== this.publicKeyId) return invalid('Wechatpay-Serial');
      try {
        userName = privateDecrypt({ key: this.wechatpayPrivateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(String(b.user_name), 'base64')).toString('utf8');
      } catch {
        return invalid('user_name is not encrypted with the WeChat Pay public key');
      }
    }
    // The body minus the ciphertext (fresh randomness each time): what a replay must repeat.
    const same = JSON.stringify({ ...b, user_name: userName });
    const existing = this.bills.get(b.out_bill_no);
    if (existing) {
      if (existing.body !== same) return this.answer(res, 400, { code: 'INVALID_REQUEST', message: '商户单号重复，但参数不一致' });
      if (this.cutAfterAccept.has(existing.openid)) return void req.socket.destroy();
      return this.answer(res, 200, this.billView(existing));
    }
    if (b.transfer_amount > this.balanceFen) return this.answer(res, 403, { code: 'NOT_ENOUGH', message: '商户运营账户资金不足' });
    const bill: FakeBill = {
      out_bill_no: b.out_bill_no, transfer_bill_no: `1330000071100999991182020050700019${++this.seq}`, appid: b.appid, openid: String(b.openid),
      transfer_amount: b.transfer_amount, ...(userName ? { user_name: userName } : {}), state: 'WAIT_USER_CONFIRM', body: same,
      ...(typeof b.notify_url === 'string' ? { notify_url: b.notify_url } : {}),
    };
    this.bills.set(bill.out_bill_no, bill);
    this.balanceFen -= bill.transfer_amount;
    if (this.invalidOpenids.has(bill.openid)) {
      bill.state = 'FAIL';
      bill.fail_reason = 'OPENID_INVALID';
    } else if (this.preAuthorized.has(bill.openid)) {
      this.pay(bill);
    } else {
      bill.package_info = `affffddafdfafddffda==${bill.out_bill_no}`;
    }
    this.emit('bill', bill);
    if (this.cutAfterAccept.has(bill.openid)) return void req.socket.destroy();
    if (this.answerDelayMs > 0) await new Promise((r) => setTimeout(r, this.answerDelayMs));
    this.answer(res, 200, this.billView(bill));
  }

  private billView(b: FakeBill, withPackage = true): Record<string, unknown> {
    return {
      mch_id: this.mchid, out_bill_no: b.out_bill_no, transfer_bill_no: b.transfer_bill_no, appid: b.appid, state: b.state,
      transfer_amount: b.transfer_amount, openid: b.openid, create_time: '2026-01-01T12:00:00+08:00', update_time: '2026-01-01T12:00:00+08:00',
      ...(b.fail_reason ? { fail_reason: b.fail_reason } : {}), ...(withPackage && b.state === 'WAIT_USER_CONFIRM' && b.package_info ? { package_info: b.package_info } : {}),
    };
  }

  /** Every answer signed as the plugin verifies it: `ts\nnonce\nbody\n` with the WeChat Pay key. */
  private answer(res: ServerResponse, status: number, payload: Record<string, unknown>): void {
    const body = JSON.stringify(payload);
    const ts = String(Math.floor(Date.now() / 1000));
    const nonce = randomBytes(16).toString('hex');
    const signed = this.badSignature ? `${ts}\n${nonce}\n${body} \n` : `${ts}\n${nonce}\n${body}\n`;
    const signature = createSign('RSA-SHA256').update(signed).sign(this.wechatpayPrivateKey, 'base64');
    res.writeHead(status, {
      'content-type': 'application/json', 'request-id': randomBytes(8).toString('hex'),
      'wechatpay-timestamp': ts, 'wechatpay-nonce': nonce, 'wechatpay-serial': this.publicKeyId, 'wechatpay-signature': signature,
    }).end(body);
  }
}
