import { createDecipheriv, createVerify } from 'node:crypto';
import type { Runtime } from '../runtime.ts';
import { loadCredentials } from './credentials.ts';
import type { WechatCredentials } from './wechat.ts';

/**
 * WeChat Pay transfer notifications (`MCHTRANSFER.BILL.FINISHED`), POSTed to the notify URL a
 * bill was submitted with: `<public-url>/channels/wechat/notify/<app>/<mode>`.
 *
 * A notification is verified (Wechatpay-Serial names the configured WeChat Pay public key;
 * Wechatpay-Timestamp within 5 minutes; Wechatpay-Signature = SHA256withRSA over
 * `timestamp\nnonce\nbody\n`), then its `resource` decrypted (AEAD_AES_256_GCM with the APIv3
 * key), and then it only makes that withdrawal's next query due now and wakes the payout worker:
 * the state a notification reports is never applied on its own word (spec/channels.md §2.2).
 */
export const NOTIFY_TOLERANCE_S = 300;
const MAX_RESOURCE_CHARS = 16_384;

export interface NotifyHeaders {
  signature?: string;
  timestamp?: string;
  nonce?: string;
  serial?: string;
}

export type NotifyCheck = { ok: true; outBillNo: string } | { ok: false; status: 400 | 401 | 404; message: string };

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Verifies and decrypts one notification; `raw` is the exact body bytes. Pure: no I/O. */
export function openWechatNotification(c: WechatCredentials, h: NotifyHeaders, raw: Buffer, nowS: number): NotifyCheck {
  if (!str(h.signature) || !str(h.timestamp) || !str(h.nonce) || !str(h.serial)) {
    return { ok: false, status: 401, message: 'Wechatpay-Signature, -Timestamp, -Nonce and -Serial are required' };
  }
  if (h.serial !== c.wechatpay_public_key_id) return { ok: false, status: 401, message: 'Wechatpay-Serial names no configured WeChat Pay key' };
  const ts = /^\d{1,12}$/.test(h.timestamp) ? Number(h.timestamp) : NaN;
  if (!Number.isSafeInteger(ts) || Math.abs(nowS - ts) > NOTIFY_TOLERANCE_S) return { ok: false, status: 401, message: 'Wechatpay-Timestamp is not within 5 minutes' };
  // `WECHATPAY/SIGNTEST/…` probes are meant to fail; they cannot verify anyway, but never try.
  if (h.signature.startsWith('WECHATPAY/SIGNTEST/') || h.nonce.length > 64 || h.signature.length > 1024) return { ok: false, status: 401, message: 'signature verification failed' };
  const message = Buffer.concat([Buffer.from(`${h.timestamp}\n${h.nonce}\n`, 'utf8'), raw, Buffer.from('\n', 'utf8')]);
  let verified = false;
  try {
    verified = createVerify('RSA-SHA256').update(message).verify(c.wechatpay_public_key, h.signature, 'base64');
  } catch {
    verified = false;
  }
  if (!verified) return { ok: false, status: 401, message: 'signature verification failed' };

  if (!c.apiv3_key) return { ok: false, status: 400, message: 'no APIv3 key is configured to decrypt notifications' };
  let resource: { algorithm?: unknown; ciphertext?: unknown; nonce?: unknown; associated_data?: unknown };
  try {
    resource = (JSON.parse(raw.toString('utf8')) as { resource?: typeof resource }).resource ?? {};
  } catch {
    return { ok: false, status: 400, message: 'the body is not a notification' };
  }
  const { algorithm, ciphertext, nonce, associated_data: aad } = resource;
  if (algorithm !== 'AEAD_AES_256_GCM' || !str(ciphertext) || ciphertext.length > MAX_RESOURCE_CHARS || !str(nonce) || Buffer.byteLength(nonce) !== 12 || (aad !== undefined && typeof aad !== 'string')) {
    return { ok: false, status: 400, message: 'resource is not AEAD_AES_256_GCM' };
  }
  let plain: string;
  try {
    const bytes = Buffer.from(ciphertext, 'base64');
    if (bytes.length <= 16) throw new Error('short');
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(c.apiv3_key, 'utf8'), Buffer.from(nonce, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    if (aad) decipher.setAAD(Buffer.from(aad, 'utf8'));
    plain = Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return { ok: false, status: 400, message: 'resource cannot be decrypted with the APIv3 key' };
  }
  let outBillNo: unknown;
  try {
    outBillNo = (JSON.parse(plain) as { out_bill_no?: unknown }).out_bill_no;
  } catch {
    outBillNo = undefined;
  }
  if (typeof outBillNo !== 'string' || !/^[0-9A-Za-z]{1,32}$/.test(outBillNo)) return { ok: false, status: 400, message: 'the notification names no out_bill_no' };
  return { ok: true, outBillNo };
}

/**
 * The withdrawal and payout round an `out_bill_no` was made from (wechat-bill.ts outBillNo: `<id>`
 * or `<id>R<round>`); null for a number of another shape (another system's bill on the same
 * merchant: `…R0x2`, `…R99999999999`), which names no payout round of ours and must not reach the
 * query as NaN or as a number past the column's range (PostgreSQL answers an error: a 500, resent by WeChat for a day).
 */
export function withdrawalOfBill(outBillNo: string): { id: string; round: number } | null {
  const m = /^([0-9]+)(?:R([1-9][0-9]{0,8}))?$/.exec(outBillNo);
  return m ? { id: m[1]!, round: m[2] === undefined ? 1 : Number(m[2]) } : null;
}

/**
 * Handles one notification for `app` in `livemode`. Accepted (verified) notifications make the
 * bill's withdrawal due for a query now if it is still pending on that bill, and wake the worker;
 * nothing else changes. A bill tixian does not know (another system's, an old round) is accepted
 * and ignored, so WeChat stops resending it.
 */
export async function acceptWechatNotification(
  rt: Runtime,
  app: string,
  livemode: boolean,
  headers: NotifyHeaders,
  raw: Buffer,
): Promise<NotifyCheck & { woke?: boolean }> {
  const loaded = await loadCredentials(rt, app, livemode, 'wechat');
  if (!loaded || loaded.credentials.channel !== 'wechat') return { ok: false, status: 404, message: 'no WeChat Pay credentials for this app and mode' };
  const check = openWechatNotification(loaded.credentials, headers, raw, Math.floor(rt.clock.nowMs() / 1000));
  if (!check.ok) return check;
  const bill = withdrawalOfBill(check.outBillNo);
  if (!bill) return { ...check, woke: false };
  const { id, round } = bill;
  const now = rt.clock.nowMs();
  const r = await rt.store.db.updateTable('withdrawals').set({ payout_due_ms: now })
    .where('id', '=', id).where('app', '=', app).where('livemode', '=', livemode ? 1 : 0).where('status', '=', 'pending')
    .where('channel', 'in', ['wx', 'wx_pub', 'wx_lite']).where('payout_round', round <= 1 ? '<=' : '=', round).where('payout_due_ms', '>', now)
    .executeTakeFirst();
  const woke = Number(r.numUpdatedRows) > 0;
  rt.bus.emit('payout');
  return { ...check, woke };
}
