import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Runtime } from '../runtime.ts';
import { BoundedCache, Renewals } from '../domain/bounded-cache.ts';
import { PlatformKey } from './platform-key.ts';

/**
 * Which RSA key signs for an account: its webhook bodies (`x-pingplusplus-signature`) and the API
 * responses to its secret keys. By default the shared platform key (what Ping++ does: one key for
 * every merchant). An account may switch to a key pair of its own (`tixian apps signing-key create`);
 * then a signed event or response of one merchant no longer verifies at another merchant's endpoint.
 *
 * The private key is kept in `accounts.signing_key_sealed`, sealed with the master key. Each process
 * parses it once into KeyObjects (PEM parsing costs more than the signature) and re-reads the row at
 * most every SIGNING_KEY_TTL_MS, so a switch made by the CLI reaches running servers within that time.
 */
export interface SigningKey {
  /** Stable per key pair: 'platform', or `acct:` + a fingerprint of the public key. */
  readonly kid: string;
  readonly publicKeyPem: string;
  /** base64 RSASSA-PKCS1-v1_5 SHA-256 of exactly these bytes. */
  sign(body: string | Buffer): string;
  /** The parsed private key, so a signing thread (sign-pool.ts) can sign with it off the event loop. */
  readonly privateKey?: KeyObject;
}

export const SIGNING_KEY_TTL_MS = 10_000;
/** An account's entry in use is read again in the background once this old (Renewals). */
export const SIGNING_KEY_RENEW_AFTER_MS = 4_000;
const ACCOUNTS_CACHED_MAX = 10_000;
const PARSED_KEYS_MAX = 1_000;

interface Keys {
  platform: SigningKey;
  /** accountId → the sealed key in force (null: the platform key) and when it was read. */
  accounts: BoundedCache<string, { sealed: string | null; fetchedMs: number }>;
  /** sealed PEM → parsed key: parsing happens once per key and process. */
  parsed: BoundedCache<string, SigningKey>;
  renewals: Renewals<string>;
  /** accountId → the read of its sealed key under way: callers at once share it (bounded by the callers). */
  reads: Map<string, Promise<string | null>>;
}

const perRuntime = new WeakMap<Runtime, Keys>();

function keysOf(rt: Runtime): Keys {
  let keys = perRuntime.get(rt);
  if (!keys) {
    keys = {
      // Signs through rt.platformKey on every call (not a copy), so there is one platform key object.
      platform: { kid: 'platform', publicKeyPem: rt.platformKey.publicKeyPem, sign: (body) => rt.platformKey.sign(body), privateKey: rt.platformKey.privateKey },
      accounts: new BoundedCache(ACCOUNTS_CACHED_MAX),
      parsed: new BoundedCache(PARSED_KEYS_MAX),
      renewals: new Renewals(ACCOUNTS_CACHED_MAX),
      reads: new Map(),
    };
    perRuntime.set(rt, keys);
  }
  return keys;
}

function accountKey(rt: Runtime, sealed: string): SigningKey {
  return keysOf(rt).parsed.getOrSet(sealed, () => {
    const key = PlatformKey.fromPem(rt.box.open(sealed));
    const kid = 'acct:' + createHash('sha256').update(key.publicKeyPem).digest('hex').slice(0, 16);
    return { kid, publicKeyPem: key.publicKeyPem, sign: (body) => key.sign(body), privateKey: key.privateKey };
  });
}

/**
 * The key that signs for an account (null: no account known, e.g. a request without a valid key,
 * which the platform key signs). The one place the response signer and the webhook dispatcher ask.
 */
export async function signingKeyFor(rt: Runtime, accountId: string | null): Promise<SigningKey> {
  if (accountId === null) return keysOf(rt).platform;
  const known = cachedSigningKeyFor(rt, accountId);
  if (known) return known;
  // Not cached or stale: read again, once however many ask meanwhile (a webhook drain's tries, an
  // API burst after start-up).
  const keys = keysOf(rt);
  const stale = keys.accounts.get(accountId);
  let read = keys.reads.get(accountId);
  if (!read) {
    read = readSealedKey(rt, accountId).finally(() => keys.reads.delete(accountId));
    keys.reads.set(accountId, read);
  }
  let sealed: string | null;
  try {
    sealed = await read;
  } catch (err) {
    // The database is away (a restart): the key it last gave is better than no signature.
    if (stale) return keyOf(rt, stale.sealed);
    throw err;
  }
  return keyOf(rt, sealed);
}

/** Reads the account's sealed key (null: the platform key) and caches it, as of the time the read began. */
async function readSealedKey(rt: Runtime, accountId: string): Promise<string | null> {
  const fetchedMs = rt.clock.nowMs();
  const row = await rt.store.db.selectFrom('accounts').select('signing_key_sealed').where('id', '=', accountId).executeTakeFirst();
  const sealed = row?.signing_key_sealed ?? null;
  keysOf(rt).accounts.set(accountId, { sealed, fetchedMs });
  return sealed;
}

/**
 * signingKeyFor without a database read: the key when this process's cache of the account is
 * fresh (younger than SIGNING_KEY_TTL_MS), else undefined. The response signer asks this first,
 * so a request whose key is known pays no promise for it. An entry in use is read again in the
 * background once SIGNING_KEY_RENEW_AFTER_MS old (Renewals), so it seldom expires under use.
 */
export function cachedSigningKeyFor(rt: Runtime, accountId: string | null): SigningKey | undefined {
  if (accountId === null) return keysOf(rt).platform;
  const keys = keysOf(rt);
  const cached = keys.accounts.get(accountId);
  if (!cached) return undefined;
  const nowMs = rt.clock.nowMs();
  if (nowMs - cached.fetchedMs >= SIGNING_KEY_TTL_MS || nowMs < cached.fetchedMs) return undefined;
  if (nowMs - cached.fetchedMs >= SIGNING_KEY_RENEW_AFTER_MS) keys.renewals.start(accountId, () => readSealedKey(rt, accountId));
  return keyOf(rt, cached.sealed);
}

/** The key a sealed PEM stands for: null is the platform key. */
function keyOf(rt: Runtime, sealed: string | null): SigningKey {
  return sealed === null ? keysOf(rt).platform : accountKey(rt, sealed);
}

/** The key that signs for the account owning an app, or null when there is no such app. */
export async function signingKeyForApp(rt: Runtime, appId: string): Promise<SigningKey | null> {
  const app = await rt.store.db.selectFrom('apps').select('account_id').where('id', '=', appId).executeTakeFirst();
  return app ? signingKeyFor(rt, app.account_id) : null;
}

/**
 * Gives the account owning `appId` a signing key pair of its own and returns its public key.
 * Refused when it has one already, unless `replace` (then signatures made with the old key no
 * longer verify with the new one; the webhook dispatcher signs each event again once when the
 * kid of its stored signature is not the new key's, so retries and resends carry the new key's).
 */
export async function createAccountSigningKey(rt: Runtime, appId: string, options: { replace?: boolean } = {}): Promise<{ account: string; publicKeyPem: string; replaced: boolean }> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const sealed = rt.box.seal(pem);
  const result = await rt.store.transaction(async (trx) => {
    const app = await trx.selectFrom('apps').select('account_id').where('id', '=', appId).executeTakeFirst();
    if (!app) return null;
    const account = await trx.selectFrom('accounts').select('signing_key_sealed').where('id', '=', app.account_id).executeTakeFirstOrThrow();
    const replaced = account.signing_key_sealed !== null;
    if (replaced && !options.replace) return { account: app.account_id, replaced, refused: true };
    await trx.updateTable('accounts').set({ signing_key_sealed: sealed }).where('id', '=', app.account_id).execute();
    return { account: app.account_id, replaced, refused: false };
  });
  if (!result) throw new SigningKeyError(`no such app: ${appId}`);
  if (result.refused) throw new SigningKeyError(`account ${result.account} already has its own signing key; give --replace to make a new one`);
  // This process signs with the new key at once; others within SIGNING_KEY_TTL_MS.
  keysOf(rt).accounts.delete(result.account);
  return { account: result.account, publicKeyPem: accountKey(rt, sealed).publicKeyPem, replaced: result.replaced };
}

/** Switches the account owning `appId` back to the shared platform key (its own key is deleted). */
export async function removeAccountSigningKey(rt: Runtime, appId: string): Promise<{ account: string; removed: boolean }> {
  const result = await rt.store.transaction(async (trx) => {
    const app = await trx.selectFrom('apps').select('account_id').where('id', '=', appId).executeTakeFirst();
    if (!app) return null;
    const updated = await trx
      .updateTable('accounts')
      .set({ signing_key_sealed: null })
      .where('id', '=', app.account_id)
      .where('signing_key_sealed', 'is not', null)
      .executeTakeFirst();
    return { account: app.account_id, removed: Number(updated.numUpdatedRows) === 1 };
  });
  if (!result) throw new SigningKeyError(`no such app: ${appId}`);
  keysOf(rt).accounts.delete(result.account);
  return result;
}

/** A refusal the CLI prints as a usage error. */
export class SigningKeyError extends Error {}
