import type { IncomingMessage, ServerResponse } from 'node:http';
import { execFileSync } from 'node:child_process';
import { createHash, createSign, createVerify, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AlipayCredentials } from '../../src/channels/credentials.ts';
import { FakeGateway, rsaKeyPair } from './gateway.ts';

/**
 * A local Alipay open-platform gateway (v2 `gateway.do`) that the official `alipay-sdk` talks to
 * unchanged (its `gateway` pointed here). Like the real gateway it verifies each request's RSA2
 * signature with the app's public key (all parameters but `sign`, empty values dropped, sorted,
 * `k=v&…`, raw values), signs each answer's `…_response` object with its own key as the SDK's
 * `validateSign` checks it, and keeps transfer orders by `out_biz_no`: the same request replays
 * the stored answer (no second debit), the same key with other parameters answers
 * PAYMENT_INFO_INCONSISTENCY. It counts debits per order so tests can prove "paid once", and
 * injects the faults of spec/channels.md §5.1 on demand.
 */

export interface FakeAlipayOrder {
  outBizNo: string;
  orderId: string;
  amount: string;
  payee: string;
  name: string | undefined;
  paramsHash: string;
  status: 'SUCCESS' | 'DEALING' | 'FAIL';
  dealingLeft: number;
  errorCode?: string;
}

export class FakeAlipay extends FakeGateway {
  readonly appId = '2021000000000001';
  /** The app's key pair (the merchant uploads the public half to Alipay). */
  readonly appPrivateKey: string;
  readonly appPublicKey: string;
  /** The gateway's key pair: its public half is "the Alipay public key" the merchant configures. */
  readonly alipayPublicKey: string;
  private readonly alipayPrivateKey: string;

  /** Orders by out_biz_no (debits count per out_biz_no too). */
  readonly orders = new Map<string, FakeAlipayOrder>();
  /** The merchant's Alipay balance in fen: a transfer above it answers BALANCE_IS_NOT_ENOUGH. */
  balanceFen = Number.MAX_SAFE_INTEGER;
  /** Payees Alipay does not know (PAYEE_NOT_EXIST). */
  readonly unknownPayees = new Set<string>();
  /**
   * Payees whose transfers are accepted and paid, then the connection is cut before the answer;
   * every transfer answer for them (replays too) is cut, queries answer. (The next round resends
   * the same out_biz_no: the replay must not pay again.)
   */
  readonly cutAfterAccept = new Set<string>();
  /** Payees whose transfer stays DEALING for this many answers, then succeeds. */
  readonly dealing = new Map<string, number>();
  /** Payees whose transfer requests are lost before Alipay keeps anything (the connection is cut). */
  readonly dropBeforeAccept = new Set<string>();
  /**
   * Faults for the next requests, whatever their method, consumed in order: `system_error` (code
   * 20000 isp.unknow-error, nothing kept), `bad_gateway` (HTTP 502 with an HTML body).
   */
  readonly script: ('system_error' | 'bad_gateway')[] = [];
  /** Answers carry a signature that does not verify. */
  badSignature = false;
  /**
   * Payees whose transfers are accepted and paid, then answered with 200 and the first bytes of the
   * body at once, a byte every 100 ms after that, and the connection cut after this many ms: an
   * answer that starts but never ends (a slow proxy), then a socket error. Each such answer is
   * recorded in `trickles`, with when it started and when its connection closed (either side).
   */
  readonly trickle = new Map<string, number>();
  readonly trickles: { outBizNo: string; startMs: number; closedMs: number | null }[] = [];
  /** Each transfer waits this long before it answers (the order is already kept and paid). */
  answerDelayMs = 0;
  requests = 0;
  /**
   * Certificate mode (issueCertificates): requests must name the app certificate and the root
   * chain by their SNs, and answers carry the Alipay certificate's SN.
   */
  certs: { appCert: string; alipayCert: string; rootCert: string; appCertSn: string; rootCertSn: string; alipayCertSn: string } | null = null;
  /** The method of every request, in order. */
  readonly calls: string[] = [];
  rejectedSignatures = 0;

  private seq = 0;

  constructor() {
    super();
    ({ privateKey: this.appPrivateKey, publicKey: this.appPublicKey } = rsaKeyPair());
    ({ privateKey: this.alipayPrivateKey, publicKey: this.alipayPublicKey } = rsaKeyPair());
  }

  get endpoint(): string {
    return this.origin;
  }

  /** What a merchant sets to pay through this gateway in public-key mode (after start). */
  credentials(): AlipayCredentials {
    return { channel: 'alipay', app_id: this.appId, private_key: this.appPrivateKey, alipay_public_key: this.alipayPublicKey, endpoint: this.endpoint };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method !== 'POST' || url.pathname !== '/gateway.do') {
      res.writeHead(404).end();
      return;
    }
    const params: Record<string, string> = Object.fromEntries(url.searchParams);
    for (const [k, v] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) params[k] = v;
    const method = params.method ?? '';
    this.calls.push(method);
    const key = `${method.replaceAll('.', '_')}_response`;
    if (params.app_id !== this.appId) return this.answer(res, key, { code: '40002', msg: 'Invalid Arguments', sub_code: 'isv.invalid-app-id', sub_msg: 'unknown app_id' });
    if (this.certs && (params.app_cert_sn !== this.certs.appCertSn || params.alipay_root_cert_sn !== this.certs.rootCertSn)) {
      return this.answer(res, key, { code: '40002', msg: 'Invalid Arguments', sub_code: 'isv.invalid-app-cert-sn', sub_msg: 'app_cert_sn or alipay_root_cert_sn does not match' });
    }
    if (!this.verifyRequest(params)) {
      this.rejectedSignatures++;
      return this.answer(res, key, { code: '40002', msg: 'Invalid Arguments', sub_code: 'isv.invalid-signature', sub_msg: 'signature check failed' });
    }
    const fault = this.script.shift();
    if (fault === 'bad_gateway') return void res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
    if (fault === 'system_error') return this.answer(res, key, { code: '20000', msg: 'Service Currently Unavailable', sub_code: 'isp.unknow-error', sub_msg: '系统繁忙' });
    let biz: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      biz = JSON.parse(params.biz_content ?? '{}');
    } catch {
      return this.answer(res, key, { code: '40002', msg: 'Invalid Arguments', sub_code: 'isv.invalid-biz-content', sub_msg: 'biz_content is not JSON' });
    }
    if (method === 'alipay.fund.trans.uni.transfer') return this.transfer(req, res, key, biz);
    if (method === 'alipay.fund.trans.common.query') return this.query(res, key, biz);
    return this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'isv.method-not-supported' });
  }

  /** RSA2 over every parameter but `sign` (empty values dropped), sorted, `k=v` joined by `&`. */
  private verifyRequest(params: Record<string, string>): boolean {
    if (params.sign_type !== 'RSA2' || !params.sign) return false;
    if (!/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(params.timestamp ?? '')) return false;
    const content = Object.keys(params).filter((k) => k !== 'sign' && params[k] !== '').sort().map((k) => `${k}=${params[k]}`).join('&');
    return createVerify('RSA-SHA256').update(content, 'utf8').verify(this.appPublicKey, params.sign, 'base64');
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private async transfer(req: IncomingMessage, res: ServerResponse, key: string, biz: Record<string, any>): Promise<void> {
    const outBizNo = String(biz.out_biz_no ?? '');
    const amount = String(biz.trans_amount ?? '');
    const payee = String(biz.payee_info?.identity ?? '');
    const name = biz.payee_info?.name as string | undefined;
    const invalid = (sub_msg: string) => this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'INVALID_PARAMETER', sub_msg });
    if (!/^[0-9A-Za-z_]{1,64}$/.test(outBizNo)) return invalid('out_biz_no');
    if (biz.product_code !== 'TRANS_ACCOUNT_NO_PWD' || biz.biz_scene !== 'DIRECT_TRANSFER') return invalid('product_code / biz_scene');
    if (!/^\d{1,9}\.\d{2}$/.test(amount)) return invalid('trans_amount');
    const fen = Math.round(Number(amount.replace('.', '')));
    if (fen < 10) return this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'EXCEED_LIMIT_SM_MIN_AMOUNT', sub_msg: '单笔最低转账金额0.1元' });
    if (!payee) return invalid('payee_info.identity');
    if (biz.payee_info?.identity_type === 'ALIPAY_LOGON_ID' && !name) return invalid('payee_info.name');

    if (this.dropBeforeAccept.has(payee)) return void req.socket.destroy();
    const paramsHash = createHash('sha256').update(JSON.stringify([amount, payee, name, biz.payee_info?.identity_type])).digest('hex');
    let order = this.orders.get(outBizNo);
    if (order) {
      if (order.paramsHash !== paramsHash) return this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'PAYMENT_INFO_INCONSISTENCY', sub_msg: '两次请求商户单号一样，但是参数不一致' });
      if (this.cutAfterAccept.has(payee)) return void req.socket.destroy();
      return this.orderAnswer(res, key, order);
    }
    // Refusals before an order exists: nothing is kept, a new key later is safe.
    if (this.unknownPayees.has(payee)) return this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'PAYEE_NOT_EXIST', sub_msg: '收款账号不存在' });
    if (fen > this.balanceFen) return this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'BALANCE_IS_NOT_ENOUGH', sub_msg: '付款方余额不足' });

    const dealingLeft = this.dealing.get(payee) ?? 0;
    order = { outBizNo, orderId: `2026${String(++this.seq).padStart(12, '0')}`, amount, payee, name, paramsHash, status: dealingLeft > 0 ? 'DEALING' : 'SUCCESS', dealingLeft };
    this.orders.set(outBizNo, order);
    this.balanceFen -= fen;
    this.debits.set(outBizNo, (this.debits.get(outBizNo) ?? 0) + 1);
    this.emit('order', order);
    if (this.cutAfterAccept.has(payee)) return void req.socket.destroy();
    const trickleMs = this.trickle.get(payee);
    if (trickleMs !== undefined) return this.trickleAnswer(req, res, key, outBizNo, trickleMs);
    if (this.answerDelayMs > 0) await new Promise((r) => setTimeout(r, this.answerDelayMs));
    return this.orderAnswer(res, key, order);
  }

  private trickleAnswer(req: IncomingMessage, res: ServerResponse, key: string, outBizNo: string, cutAfterMs: number): void {
    const record: { outBizNo: string; startMs: number; closedMs: number | null } = { outBizNo, startMs: Date.now(), closedMs: null };
    this.trickles.push(record);
    res.writeHead(200, { 'content-type': 'text/html;charset=utf-8' });
    res.write(`{"${key}":`);
    const tick = setInterval(() => res.write(' '), 100);
    const cut = setTimeout(() => req.socket.destroy(), cutAfterMs);
    req.socket.once('close', () => {
      clearInterval(tick);
      clearTimeout(cut);
      record.closedMs = Date.now();
    });
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private query(res: ServerResponse, key: string, biz: Record<string, any>): void {
    const order = this.orders.get(String(biz.out_biz_no ?? ''));
    if (!order) return this.answer(res, key, { code: '40004', msg: 'Business Failed', sub_code: 'ORDER_NOT_EXIST', sub_msg: '转账订单不存在' });
    this.orderAnswer(res, key, order);
  }

  private orderAnswer(res: ServerResponse, key: string, o: FakeAlipayOrder): void {
    const status = o.status;
    if (status === 'DEALING') {
      o.dealingLeft--;
      if (o.dealingLeft <= 0) o.status = 'SUCCESS';
    }
    this.answer(res, key, {
      code: '10000', msg: 'Success', out_biz_no: o.outBizNo, order_id: o.orderId, pay_fund_order_id: `${o.orderId}01`, status,
      trans_amount: o.amount, trans_date: '2026-01-01 12:00:00', ...(status === 'SUCCESS' ? { pay_date: '2026-01-01 12:00:00' } : {}),
    });
  }

  /** `{"<method>_response":{…},"sign":"…"}`: the signature covers the exact text of the inner object. */
  private answer(res: ServerResponse, key: string, inner: Record<string, unknown>): void {
    const innerText = JSON.stringify(inner);
    let sign = createSign('RSA-SHA256').update(innerText, 'utf8').sign(this.alipayPrivateKey, 'base64');
    if (this.badSignature) sign = createSign('RSA-SHA256').update(innerText + ' ', 'utf8').sign(this.alipayPrivateKey, 'base64');
    const certSn = this.certs ? `,"alipay_cert_sn":"${this.certs.alipayCertSn}"` : '';
    const body = `{"${key}":${innerText},"sign":"${sign}"${certSn}}`;
    res.writeHead(200, { 'content-type': 'text/html;charset=utf-8', trace_id: randomBytes(8).toString('hex') }).end(body);
  }

  /**
   * Switches to certificate mode: a root CA (openssl) issues the Alipay public-key certificate (this
   * gateway's key) and the app public-key certificate (the app's key), as Alipay's console does.
   */
  issueCertificates(): void {
    const dir = mkdtempSync(path.join(tmpdir(), 'fake-alipay-certs-'));
    try {
      const f = (name: string) => path.join(dir, name);
      const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
      ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('root.key'), '-out', f('root.crt'), '-subj', '/C=CN/O=Fake Alipay/CN=Fake Alipay Root', '-days', '2');
      const issue = (keyPem: string, cn: string, serial: string, out: string) => {
        writeFileSync(f(`${out}.key`), keyPem, { mode: 0o600 });
        ssl('req', '-new', '-key', f(`${out}.key`), '-subj', `/C=CN/O=Fake Alipay/CN=${cn}`, '-out', f(`${out}.csr`));
        ssl('x509', '-req', '-in', f(`${out}.csr`), '-CA', f('root.crt'), '-CAkey', f('root.key'), '-set_serial', serial, '-days', '2', '-out', f(`${out}.crt`));
        return readFileSync(f(`${out}.crt`), 'utf8');
      };
      const rootCert = readFileSync(f('root.crt'), 'utf8');
      const alipayCert = issue(this.alipayPrivateKey, 'alipay', '4097', 'alipay');
      const appCert = issue(this.appPrivateKey, this.appId, '4098', 'app');
      this.certs = { appCert, alipayCert, rootCert, appCertSn: certSn(appCert), rootCertSn: certSn(rootCert), alipayCertSn: certSn(alipayCert) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Alipay's certificate SN: md5 of the issuer DN in reverse order (`k=v,…`) followed by the decimal serial. */
export function certSn(pem: string): string {
  const cert = new X509Certificate(pem);
  const issuer = cert.issuer.split('\n').reverse().join(',');
  return createHash('md5').update(issuer + BigInt('0x' + cert.serialNumber).toString(10), 'utf8').digest('hex');
}
