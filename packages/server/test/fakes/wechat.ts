import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { constants, createSign, createVerify, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';

/**
 * A local WeChat Pay APIv3 gateway for 商家转账 (transfer-bills) that `wechatpay-axios-plugin`
 * talks to unchanged (`baseURL` pointed here). It verifies each request's `Authorization`
 * (WECHATPAY2-SHA256-RSA2048 over `METHOD\nurl\ntimestamp\nnonce\nbody\n`, merchant key, serial,
 * ±300 s), decrypts `user_name` with the WeChat Pay private key (RSA-OAEP/SHA-1) under the
 * `Wechatpay-Serial` it names, signs every answer with the WeChat Pay key (`Wechatpay-*` headers),
 * keeps bills by `out_bill_no` (same body replays, another body is INVALID_REQUEST), counts debits,
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
  body: string;
}

export class FakeWechat extends EventEmitter {
  readonly mchid = '1900000001';
  readonly merchantSerial = 'MERCHANT_SERIAL_0001';
  readonly publicKeyId = 'PUB_KEY_ID_0111111111111111111111111111';
  readonly merchantPrivateKey: string;
  private readonly merchantPublicKey: string;
  readonly wechatpayPublicKey: string;
  private readonly wechatpayPrivateKey: string;

  readonly bills = new Map<string, FakeBill>();
  readonly debits = new Map<string, number>();
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
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private seq = 0;

  constructor() {
    super();
    const m = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.merchantPrivateKey = m.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.merchantPublicKey = m.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const w = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.wechatpayPrivateKey = w.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.wechatpayPublicKey = w.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
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

  /** Bills debited more than once (must always be empty). */
  doublePaid(): string[] {
    return [...this.debits].filter(([, n]) => n > 1).map(([k]) => k);
  }

  private pay(bill: FakeBill): void {
    bill.state = 'SUCCESS';
    this.debits.set(bill.out_bill_no, (this.debits.get(bill.out_bill_no) ?? 0) + 1);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
      return this.answer(res, 200, this.billView(bill));
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

  private billView(b: FakeBill): Record<string, unknown> {
    return {
      mch_id: this.mchid, out_bill_no: b.out_bill_no, transfer_bill_no: b.transfer_bill_no, appid: b.appid, state: b.state,
      transfer_amount: b.transfer_amount, openid: b.openid, create_time: '2026-01-01T12:00:00+08:00', update_time: '2026-01-01T12:00:00+08:00',
      ...(b.fail_reason ? { fail_reason: b.fail_reason } : {}), ...(b.state === 'WAIT_USER_CONFIRM' && b.package_info ? { package_info: b.package_info } : {}),
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
