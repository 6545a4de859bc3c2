import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { Runtime } from '../runtime.ts';
import type { AppRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { BoundedCache, Renewals } from '../domain/bounded-cache.ts';

/**
 * Request-signature settings of an app (§3): the merchant's RSA public key and one "signatures
 * required" switch per mode. Ping++ keeps these per account (企业面板 → 开发参数); tixian keeps
 * them per app, so two apps of one merchant can move to signed requests independently.
 * Invariant: a switch is on only while a key is set. Called by the CLI now, by the console later.
 */

/** What `tixian apps update --require-signature` takes: the modes whose POST/PUT must be signed. */
export type RequireSignature = 'none' | 'test' | 'live' | 'both';
export const REQUIRE_SIGNATURE_CHOICES: readonly RequireSignature[] = ['none', 'test', 'live', 'both'];

export function requireSignatureSwitches(which: RequireSignature): { require_signature_test: boolean; require_signature_live: boolean } {
  return { require_signature_test: which === 'test' || which === 'both', require_signature_live: which === 'live' || which === 'both' };
}

// Verification cost grows with the modulus (a 16384-bit verify is ~30× a 2048-bit one); 8192 bits
// covers every key a merchant would reasonably make while keeping a hostile upload cheap to check.
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 8192;
const PEM_MAX_CHARS = 16 * 1024;
const PUBLIC_PEM = /^-----BEGIN (RSA )?PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1PUBLIC KEY-----$/;

export interface MerchantPublicKey {
  /** Normalised to PEM SubjectPublicKeyInfo, whatever form was uploaded. */
  pem: string;
  key: KeyObject;
  bits: number;
  /** SHA-256 of the DER SubjectPublicKeyInfo, hex: lets a merchant check which key is set. */
  fingerprint: string;
}

const badKey = (detail: string, detailZh: string) => errors.invalidParam('rsa_public_key', detail, detailZh);

/**
 * Parses an uploaded merchant key: one PEM block, SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
 * (`BEGIN RSA PUBLIC KEY`), RSA of 2048–8192 bits. A private key is refused rather than reduced to
 * its public half: a merchant who pastes one has leaked it and should make a new pair. Error
 * messages never quote the uploaded text.
 */
export function parseMerchantPublicKey(text: string): MerchantPublicKey {
  const pem = text.trim();
  if (pem.length > PEM_MAX_CHARS) throw badKey(`the key file is larger than ${PEM_MAX_CHARS} characters`, `公钥文件超过 ${PEM_MAX_CHARS} 个字符`);
  if (pem.includes('PRIVATE KEY')) {
    throw badKey(
      'this is a private key; upload only the public key (and, since the private key has been shared, consider making a new key pair)',
      '这是私钥，请只上传公钥（私钥已外传，建议重新生成密钥对）',
    );
  }
  if (!PUBLIC_PEM.test(pem)) {
    throw badKey('expected one PEM block "BEGIN PUBLIC KEY" or "BEGIN RSA PUBLIC KEY"', '应为一个 PEM 格式的 "BEGIN PUBLIC KEY" 或 "BEGIN RSA PUBLIC KEY" 公钥');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw badKey('the PEM block is not a readable public key', 'PEM 内容无法解析为公钥');
  }
  if (key.asymmetricKeyType !== 'rsa') throw badKey('the key is not an RSA key', '不是 RSA 公钥');
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
    throw badKey(`the RSA key has ${bits} bits; ${RSA_MIN_BITS} to ${RSA_MAX_BITS} are accepted`, `RSA 公钥为 ${bits} 位，须为 ${RSA_MIN_BITS}–${RSA_MAX_BITS} 位`);
  }
  const der = key.export({ type: 'spki', format: 'der' });
  return {
    pem: key.export({ type: 'spki', format: 'pem' }).toString(),
    key,
    bits,
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
}

export interface SignatureSettings {
  app: string;
  rsa_public_key: string | null;
  rsa_public_key_bits: number | null;
  rsa_public_key_fingerprint: string | null;
  require_signature_test: boolean;
  require_signature_live: boolean;
}

export interface SignatureSettingsUpdate {
  /** PEM text to set (replacing any earlier key), or null to remove the key. */
  rsa_public_key?: string | null;
  require_signature_test?: boolean;
  require_signature_live?: boolean;
}

export async function getSignatureSettings(rt: Runtime, appId: string): Promise<SignatureSettings> {
  const row = await rt.store.db
    .selectFrom('apps')
    .select(['id', 'rsa_public_key', 'require_signature_test', 'require_signature_live'])
    .where('id', '=', appId)
    .executeTakeFirst();
  if (!row) throw errors.notFound('app', appId, 'app');
  return settingsOf(row, row.rsa_public_key === null ? null : parseMerchantPublicKey(row.rsa_public_key));
}

function settingsOf(
  row: Pick<AppRow, 'id' | 'require_signature_test' | 'require_signature_live'>,
  key: MerchantPublicKey | null,
): SignatureSettings {
  return {
    app: row.id,
    rsa_public_key: key?.pem ?? null,
    rsa_public_key_bits: key?.bits ?? null,
    rsa_public_key_fingerprint: key?.fingerprint ?? null,
    require_signature_test: row.require_signature_test === 1,
    require_signature_live: row.require_signature_live === 1,
  };
}

const switchNeedsKey = (param: string) =>
  errors.invalidParam(param, 'signatures cannot be required while the app has no RSA public key', '应用未设置商户 RSA 公钥，不能要求签名');

/**
 * Changes the key and/or the switches in one UPDATE. The invariant is part of its WHERE clause,
 * so a concurrent change (the console and the CLI at once) cannot slip between a check and the write.
 */
export async function updateSignatureSettings(rt: Runtime, appId: string, update: SignatureSettingsUpdate): Promise<SignatureSettings> {
  const set: Partial<Pick<AppRow, 'rsa_public_key' | 'require_signature_test' | 'require_signature_live'>> = {};
  // Parsed once: the answer is built from this key, not from the stored text read back.
  const newKey = typeof update.rsa_public_key === 'string' ? parseMerchantPublicKey(update.rsa_public_key) : undefined;
  if (update.rsa_public_key !== undefined) set.rsa_public_key = newKey?.pem ?? null;
  if (update.require_signature_test !== undefined) set.require_signature_test = update.require_signature_test ? 1 : 0;
  if (update.require_signature_live !== undefined) set.require_signature_live = update.require_signature_live ? 1 : 0;
  if (Object.keys(set).length === 0) return getSignatureSettings(rt, appId);

  const turningOn = set.require_signature_test === 1 || set.require_signature_live === 1;
  const firstOn = set.require_signature_test === 1 ? 'require_signature_test' : 'require_signature_live';
  if (set.rsa_public_key === null && turningOn) throw switchNeedsKey(firstOn);

  let query = rt.store.db.updateTable('apps').set(set).where('id', '=', appId);
  if (set.rsa_public_key === null) {
    if (set.require_signature_test === undefined) query = query.where('require_signature_test', '=', 0);
    if (set.require_signature_live === undefined) query = query.where('require_signature_live', '=', 0);
  } else if (set.rsa_public_key === undefined && turningOn) {
    query = query.where('rsa_public_key', 'is not', null);
  }
  const row = await query.returning(['id', 'rsa_public_key', 'require_signature_test', 'require_signature_live']).executeTakeFirst();
  if (!row) {
    const exists = await rt.store.db.selectFrom('apps').select('id').where('id', '=', appId).executeTakeFirst();
    if (!exists) throw errors.notFound('app', appId, 'app');
    if (set.rsa_public_key === null) {
      throw errors.invalidParam(
        'rsa_public_key',
        'signatures are still required in some mode; turn that off before removing the key',
        '仍有模式要求签名，请先关闭后再删除公钥',
      );
    }
    throw switchNeedsKey(firstOn);
  }
  policyCaches.get(rt)?.forget(appId);
  // A switch-only change did not parse the stored key yet: that is its one parse.
  const key = newKey ?? (row.rsa_public_key === null ? null : parseMerchantPublicKey(row.rsa_public_key));
  return settingsOf(row, key);
}

/** What the request-signature hook needs per app: the parsed key and the two switches. */
export interface SignaturePolicy {
  key: KeyObject | null;
  requireTest: boolean;
  requireLive: boolean;
}

// The CLI changes settings from another process, so entries live only briefly; 5 s is how long a
// change may take to reach a running server. Bounded like every other cache here.
export const POLICY_TTL_MS = 5_000;
/** An app's policy in use is read again in the background once its entry is this old (Renewals). */
export const POLICY_RENEW_AFTER_MS = 4_000;
const POLICY_CACHE_MAX = 10_000;

interface CachedPolicy {
  expiresMs: number;
  policy: Promise<(SignaturePolicy & { pem: string | null }) | null>;
}

/**
 * A bounded, short-lived cache of each app's signature policy. A refresh re-reads the row but
 * reuses the KeyObject when the PEM is unchanged: parsing costs ~120 µs, a verify ~22 µs
 * (PERFORMANCE.md), so PEM is parsed once per key change, never per request.
 */
class SignaturePolicyCache {
  private readonly entries = new BoundedCache<string, CachedPolicy>(POLICY_CACHE_MAX);
  private readonly renewals = new Renewals<string>(POLICY_CACHE_MAX);

  constructor(private readonly rt: Runtime) {}

  get(appId: string): Promise<SignaturePolicy | null> {
    const now = this.rt.clock.nowMs();
    const hit = this.entries.get(appId);
    if (hit && hit.expiresMs > now) {
      // Read again in the background before it expires (Renewals): a change still reaches this
      // process within POLICY_TTL_MS of the read that last saw the old settings.
      if (hit.expiresMs - now <= POLICY_TTL_MS - POLICY_RENEW_AFTER_MS) this.renewals.start(appId, () => this.renew(appId, hit, now));
      return hit.policy;
    }
    const entry: CachedPolicy = { expiresMs: now + POLICY_TTL_MS, policy: this.load(appId, hit) };
    // A failed load (database down) is not remembered: the next request tries again.
    entry.policy.catch(() => {
      if (this.entries.get(appId) === entry) this.entries.delete(appId);
    });
    this.entries.set(appId, entry);
    return entry.policy;
  }

  /** Replaces `hit` with a fresh read, unless something replaced or dropped it meanwhile (forget). */
  private async renew(appId: string, hit: CachedPolicy, now: number): Promise<void> {
    const policy = await this.load(appId, hit);
    if (this.entries.get(appId) === hit) this.entries.set(appId, { expiresMs: now + POLICY_TTL_MS, policy: Promise.resolve(policy) });
  }

  forget(appId: string): void {
    this.entries.delete(appId);
  }

  private async load(appId: string, previous: CachedPolicy | undefined): Promise<(SignaturePolicy & { pem: string | null }) | null> {
    const row = await this.rt.store.db
      .selectFrom('apps')
      .select(['rsa_public_key', 'require_signature_test', 'require_signature_live'])
      .where('id', '=', appId)
      .executeTakeFirst();
    if (!row) return null;
    const before = previous ? await previous.policy.catch(() => null) : null;
    const pem = row.rsa_public_key;
    const key = pem === null ? null : before?.pem === pem && before.key ? before.key : createPublicKey(pem);
    return { pem, key, requireTest: row.require_signature_test === 1, requireLive: row.require_signature_live === 1 };
  }
}

// One cache per runtime, so updateSignatureSettings can drop an entry in its own process at once
// (the console) while other processes (the CLI, other servers) wait out the TTL.
const policyCaches = new WeakMap<Runtime, SignaturePolicyCache>();

/** The signature policy of an app (null for an unknown app), cached for at most 5 s. */
export function signaturePolicy(rt: Runtime, appId: string): Promise<SignaturePolicy | null> {
  let cache = policyCaches.get(rt);
  if (!cache) {
    cache = new SignaturePolicyCache(rt);
    policyCaches.set(rt, cache);
  }
  return cache.get(appId);
}
