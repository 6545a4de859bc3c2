import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import type { Runtime } from '../runtime.ts';
import type { WechatCredentials } from './wechat.ts';

/**
 * A merchant's own contract with a payout channel: the keys tixian signs with and verifies the
 * channel's answers with. Stored per app, mode and channel, sealed whole with the master key
 * (like the platform key), never printed back: `channels list` shows only a fingerprint and the
 * non-secret summary.
 */
export interface AlipayCredentials {
  channel: 'alipay';
  /** The Alipay open-platform app id (not tixian's app id). */
  app_id: string;
  /** The app private key, PEM (PKCS#1 or PKCS#8). */
  private_key: string;
  /** Public-key mode: the Alipay public key, PEM. */
  alipay_public_key?: string;
  /** Certificate mode: app public-key certificate, Alipay public-key certificate, Alipay root certificate (PEM). */
  app_cert?: string;
  alipay_public_cert?: string;
  alipay_root_cert?: string;
  /** Base URL of the Alipay open API; default https://openapi.alipay.com (the sandbox has its own). */
  endpoint?: string;
  /** Shown in the payee's bill. */
  order_title?: string;
}

export type ChannelCredentials = AlipayCredentials | WechatCredentials;

/** The credential set a withdrawal channel pays with: one WeChat Pay merchant serves wx, wx_pub and wx_lite. */
export function credentialChannel(channel: string): string {
  return channel.startsWith('wx') ? 'wechat' : channel;
}

export const DEFAULT_ALIPAY_ENDPOINT = 'https://openapi.alipay.com';
// Here, not in wechat.ts: that module loads the WeChat Pay SDK, at first use only.
export const DEFAULT_WECHAT_ENDPOINT = 'https://api.mch.weixin.qq.com/';
const MAX_FIELD_CHARS = 16_384;

/**
 * One field of a channel's credential set, described for the console's form (GET
 * /admin/apps/:app/channel_credentials/fields) and the admin API's body schema: its name and kind,
 * never a value. `text` is one line; `pem` a key or certificate (multiline, read from a file);
 * `map` one value per key of `keys` (at least one when required); `list` 1..n items of `items`.
 * A field of a `group` is given only with the rest of its group, and exactly one group is given
 * (Alipay's verification: the Alipay public key, or the three certificates); `required` then
 * means required in its group. `secret` fields are key material: the console never shows them.
 */
export interface CredentialField {
  readonly name: string;
  readonly kind: 'text' | 'pem' | 'map' | 'list';
  readonly required: boolean;
  readonly secret: boolean;
  /** Of the value (text, pem) or of each value of a map. */
  readonly max_length?: number;
  readonly group?: string;
  readonly keys?: readonly string[];
  readonly items?: readonly { readonly name: string; readonly max_length: number; readonly example?: string }[];
  readonly min_items?: number;
  readonly max_items?: number;
  /** What applies when an optional field is left out. */
  readonly default?: string;
  /** The shape of a value, e.g. `PUB_KEY_ID_…`. */
  readonly example?: string;
}

type FieldName<C> = Exclude<keyof C, 'channel'> & string;
type FieldOf<C> = CredentialField & { readonly name: FieldName<C> };
const PEM_CHARS = MAX_FIELD_CHARS;

const ALIPAY_FIELDS = [
  { name: 'app_id', kind: 'text', required: true, secret: false, max_length: 32, example: '2021…' },
  { name: 'private_key', kind: 'pem', required: true, secret: true, max_length: PEM_CHARS },
  { name: 'alipay_public_key', kind: 'pem', required: true, secret: false, max_length: PEM_CHARS, group: 'public_key' },
  { name: 'app_cert', kind: 'pem', required: true, secret: false, max_length: PEM_CHARS, group: 'certificate' },
  { name: 'alipay_public_cert', kind: 'pem', required: true, secret: false, max_length: PEM_CHARS, group: 'certificate' },
  { name: 'alipay_root_cert', kind: 'pem', required: true, secret: false, max_length: PEM_CHARS, group: 'certificate' },
  { name: 'endpoint', kind: 'text', required: false, secret: false, max_length: 2048, default: DEFAULT_ALIPAY_ENDPOINT },
  { name: 'order_title', kind: 'text', required: false, secret: false, max_length: 64 },
] as const satisfies readonly FieldOf<AlipayCredentials>[];

const WECHAT_FIELDS = [
  { name: 'mchid', kind: 'text', required: true, secret: false, max_length: 32 },
  { name: 'merchant_serial', kind: 'text', required: true, secret: false, max_length: 64 },
  { name: 'private_key', kind: 'pem', required: true, secret: true, max_length: PEM_CHARS },
  { name: 'wechatpay_public_key', kind: 'pem', required: true, secret: false, max_length: PEM_CHARS },
  { name: 'wechatpay_public_key_id', kind: 'text', required: true, secret: false, max_length: 128, example: 'PUB_KEY_ID_…' },
  { name: 'appids', kind: 'map', required: true, secret: false, max_length: 64, keys: ['wx', 'wx_pub', 'wx_lite'], example: 'wx…' },
  { name: 'transfer_scene_id', kind: 'text', required: true, secret: false, max_length: 32, example: '1000' },
  {
    name: 'report_infos', kind: 'list', required: true, secret: false, min_items: 1, max_items: 10,
    items: [{ name: 'info_type', max_length: 64, example: '活动名称' }, { name: 'info_content', max_length: 256, example: '余额提现' }],
  },
  { name: 'remark', kind: 'text', required: false, secret: false, max_length: 32 },
  // Decrypts WeChat Pay's result notifications (wechat-notify.ts); without it results come by query.
  { name: 'apiv3_key', kind: 'text', required: false, secret: true, max_length: 32 },
  { name: 'endpoint', kind: 'text', required: false, secret: false, max_length: 2048, default: DEFAULT_WECHAT_ENDPOINT },
] as const satisfies readonly FieldOf<WechatCredentials>[];

// Every field of the interfaces above is described, or this fails to compile.
type Undescribed<C, F extends readonly { name: string }[]> = Exclude<FieldName<C>, F[number]['name']>;
const _everyFieldDescribed: [Undescribed<AlipayCredentials, typeof ALIPAY_FIELDS>, Undescribed<WechatCredentials, typeof WECHAT_FIELDS>] extends [never, never] ? true : never = true;

/** The fields of each channel's credential set, in the order the console asks for them. */
export const CREDENTIAL_FIELDS: Readonly<Record<ChannelCredentials['channel'], readonly CredentialField[]>> = { alipay: ALIPAY_FIELDS, wechat: WECHAT_FIELDS };

export class CredentialsError extends Error {}

/** Checks a credential set before it is sealed: every key parses, exactly one verification mode. */
export function validateCredentials(c: ChannelCredentials): void {
  if (c.channel === 'wechat') return validateWechat(c);
  for (const [k, v] of Object.entries(c)) {
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0) throw new CredentialsError(`${k} must be a non-empty string`);
    if (v.length > MAX_FIELD_CHARS) throw new CredentialsError(`${k} is longer than ${MAX_FIELD_CHARS} characters`);
  }
  if (!/^[0-9]{1,32}$/.test(c.app_id)) throw new CredentialsError('the Alipay app id must be 1-32 digits');
  try {
    createPrivateKey(c.private_key);
  } catch {
    // Never echo the key or the parser's message (it may quote the input).
    throw new CredentialsError('the app private key is not a PEM private key');
  }
  const certMode = c.app_cert !== undefined || c.alipay_public_cert !== undefined || c.alipay_root_cert !== undefined;
  if (certMode) {
    if (!c.app_cert || !c.alipay_public_cert || !c.alipay_root_cert) throw new CredentialsError('certificate mode needs the app certificate, the Alipay public certificate and the Alipay root certificate');
    if (c.alipay_public_key) throw new CredentialsError('give either the Alipay public key or the certificates, not both');
  } else {
    if (!c.alipay_public_key) throw new CredentialsError('the Alipay public key (or the three certificates) is required: every answer is verified with it');
    try {
      createPublicKey(c.alipay_public_key);
    } catch {
      throw new CredentialsError('the Alipay public key is not a PEM public key');
    }
  }
  if (c.endpoint !== undefined) {
    const url = endpointUrl(c.endpoint);
    if (url.pathname !== '/' || url.search) throw new CredentialsError('the endpoint is a base URL without a path, e.g. https://openapi.alipay.com');
  }
}

const WECHAT_REQUIRED_STRINGS = WECHAT_FIELDS.filter((f) => f.required && (f.kind === 'text' || f.kind === 'pem')).map((f) => f.name);

function validateWechat(c: WechatCredentials): void {
  for (const k of WECHAT_REQUIRED_STRINGS) {
    const v: unknown = c[k];
    if (typeof v !== 'string' || v.length === 0) throw new CredentialsError(`${k} must be a non-empty string`);
    if (v.length > MAX_FIELD_CHARS) throw new CredentialsError(`${k} is longer than ${MAX_FIELD_CHARS} characters`);
  }
  if (!/^[0-9]{1,32}$/.test(c.mchid)) throw new CredentialsError('the WeChat Pay mchid must be 1-32 digits');
  if (!/^[0-9]{1,16}$/.test(c.transfer_scene_id)) throw new CredentialsError('the transfer scene id must be digits (e.g. 1000)');
  try {
    createPrivateKey(c.private_key);
  } catch {
    throw new CredentialsError('the merchant private key is not a PEM private key');
  }
  try {
    createPublicKey(c.wechatpay_public_key);
  } catch {
    throw new CredentialsError('the WeChat Pay public key is not a PEM public key');
  }
  const appids = Object.entries(c.appids ?? {});
  if (appids.length === 0) throw new CredentialsError('give the appid of at least one of wx, wx_pub, wx_lite');
  for (const [ch, id] of appids) {
    if (!['wx', 'wx_pub', 'wx_lite'].includes(ch) || typeof id !== 'string' || !/^wx[0-9A-Za-z]{1,32}$/.test(id)) throw new CredentialsError(`appid for ${ch} must look like wx… (letters and digits)`);
  }
  if (!Array.isArray(c.report_infos) || c.report_infos.length === 0 || c.report_infos.length > 10) throw new CredentialsError('give 1-10 transfer scene report infos (type=content)');
  // Never echo the key: only what is wrong with it.
  if (c.apiv3_key !== undefined && (typeof c.apiv3_key !== 'string' || !/^[\x21-\x7e]{32}$/.test(c.apiv3_key))) throw new CredentialsError('the APIv3 key must be 32 printable ASCII characters');
  if (c.endpoint !== undefined) endpointUrl(c.endpoint);
}

/**
 * A channel endpoint: https, or plain http only to this host (a local gateway or a test fake):
 * answers are signed, but an operator pointing live payouts at a plain-http remote host has made a
 * mistake.
 */
function endpointUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new CredentialsError('the endpoint must be a URL');
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw new CredentialsError('the endpoint must be an https URL (plain http only for 127.0.0.1 or localhost)');
  return url;
}

/** A stable, non-reversible tag of a credential set (SHA-256 of its canonical JSON, 16 hex chars). */
export function fingerprint(c: ChannelCredentials): string {
  const canonical = JSON.stringify(Object.fromEntries(Object.entries(c).sort(([a], [b]) => a.localeCompare(b))));
  return 'sha256:' + createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** What may be shown of a credential set: no key material. */
export function summary(c: ChannelCredentials): Record<string, string> {
  if (c.channel === 'wechat') {
    return {
      mchid: c.mchid, merchant_serial: c.merchant_serial, wechatpay_public_key_id: c.wechatpay_public_key_id,
      appids: Object.entries(c.appids).map(([k, v]) => `${k}=${v}`).join(','), transfer_scene_id: c.transfer_scene_id,
      endpoint: c.endpoint ?? DEFAULT_WECHAT_ENDPOINT,
    };
  }
  return {
    channel_app_id: c.app_id,
    key_mode: c.alipay_public_key ? 'public_key' : 'certificate',
    endpoint: c.endpoint ?? DEFAULT_ALIPAY_ENDPOINT,
  };
}

export interface CredentialInfo {
  app: string;
  mode: 'test' | 'live';
  channel: string;
  fingerprint: string;
  summary: Record<string, string>;
  updated: number;
}

export async function setCredentials(rt: Runtime, app: string, livemode: boolean, c: ChannelCredentials): Promise<CredentialInfo> {
  validateCredentials(c);
  const exists = await rt.store.db.selectFrom('apps').select('id').where('id', '=', app).executeTakeFirst();
  if (!exists) throw new CredentialsError(`no such app: ${app}`);
  const now = Math.floor(rt.clock.nowMs() / 1000);
  const row = {
    app, livemode: livemode ? 1 : 0, channel: c.channel, sealed: rt.box.seal(JSON.stringify(c)),
    fingerprint: fingerprint(c), summary: JSON.stringify(summary(c)), created: now, updated: now,
  };
  await rt.store.db
    .insertInto('channel_credentials')
    .values(row)
    .onConflict((oc) => oc.columns(['app', 'livemode', 'channel']).doUpdateSet({ sealed: row.sealed, fingerprint: row.fingerprint, summary: row.summary, updated: now }))
    .execute();
  return { app, mode: livemode ? 'live' : 'test', channel: c.channel, fingerprint: row.fingerprint, summary: summary(c), updated: now };
}

export async function listCredentials(rt: Runtime, app: string): Promise<CredentialInfo[]> {
  const rows = await rt.store.db.selectFrom('channel_credentials').select(['app', 'livemode', 'channel', 'fingerprint', 'summary', 'updated'])
    .where('app', '=', app).orderBy('livemode').orderBy('channel').limit(100).execute();
  return rows.map((r) => ({
    app: r.app, mode: r.livemode ? 'live' : 'test', channel: r.channel, fingerprint: r.fingerprint,
    summary: JSON.parse(r.summary) as Record<string, string>, updated: Number(r.updated),
  }));
}

export async function removeCredentials(rt: Runtime, app: string, livemode: boolean, channel: string): Promise<boolean> {
  const r = await rt.store.db.deleteFrom('channel_credentials').where('app', '=', app).where('livemode', '=', livemode ? 1 : 0).where('channel', '=', channel).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** The opened credential set, with its fingerprint (drivers cache SDK clients by it). */
export async function loadCredentials(rt: Pick<Runtime, 'store' | 'box'>, app: string, livemode: boolean, channel: string): Promise<{ credentials: ChannelCredentials; fingerprint: string } | null> {
  const row = await rt.store.db.selectFrom('channel_credentials').select(['sealed', 'fingerprint'])
    .where('app', '=', app).where('livemode', '=', livemode ? 1 : 0).where('channel', '=', channel).executeTakeFirst();
  if (!row) return null;
  return { credentials: JSON.parse(rt.box.open(row.sealed)) as ChannelCredentials, fingerprint: row.fingerprint };
}

export async function hasCredentials(rt: Pick<Runtime, 'store'>, app: string, livemode: boolean, channel: string): Promise<boolean> {
  if (channel.startsWith('wx')) {
    const loaded = await rt.store.db.selectFrom('channel_credentials').select('summary')
      .where('app', '=', app).where('livemode', '=', livemode ? 1 : 0).where('channel', '=', 'wechat').executeTakeFirst();
    // The merchant must have named the appid this channel's openids belong to.
    return loaded !== undefined && (JSON.parse(loaded.summary) as { appids?: string }).appids?.split(',').some((p) => p.startsWith(`${channel}=`)) === true;
  }
  const row = await rt.store.db.selectFrom('channel_credentials').select('app')
    .where('app', '=', app).where('livemode', '=', livemode ? 1 : 0).where('channel', '=', channel).executeTakeFirst();
  return row !== undefined;
}
