import type { Runtime } from '../runtime.ts';
import { newAccountId, newAppId, newSecretKey, newUserPk } from '../domain/ids.ts';
import { constantTimeEqual, hashSecretKey } from '../security/secrets.ts';
import { isUniqueViolation } from '../store/db.ts';
import { BoundedCache, Renewals } from '../domain/bounded-cache.ts';
import { seconds } from '../clock.ts';
import { ApiError, errors } from '../domain/errors.ts';
import type { Database, SecretKeyRow } from '../store/schema.ts';
import type { UpdateQueryBuilder, UpdateResult } from 'kysely';

type KeyUpdate = UpdateQueryBuilder<Database, 'secret_keys', 'secret_keys', UpdateResult>;

export const DEFAULT_ACCOUNT = 'default';
const ACCOUNT_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const APP_NAME_MAX = 128;

export interface CreatedApp {
  id: string;
  object: 'app';
  name: string;
  account: string;
  account_name: string;
  created: number;
  /** The new account's keys, shown this once; null when the app joined an account that already existed. */
  secret_key_test: string | null;
  secret_key_live: string | null;
}

/**
 * Merchant accounts own apps and their secret keys. A key is shown once, when its account is
 * created or when it is rolled, and stored only as a SHA-256 (secret_keys), like Stripe: a copy of
 * the database, the CLI or the console can never show it again.
 */
export async function createApp(rt: Runtime, input: { name: string; account?: string | undefined }): Promise<CreatedApp> {
  const accountName = input.account ?? DEFAULT_ACCOUNT;
  if (!ACCOUNT_NAME.test(accountName)) throw new Error('account name must be 1-64 characters of A-Z a-z 0-9 _ . @ -');
  const name = input.name.trim();
  if (!name || name.length > APP_NAME_MAX) throw new Error(`app name must be 1-${APP_NAME_MAX} characters`);
  const created = seconds(rt.clock);

  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return await rt.store.transaction(async (trx) => {
        let account = await trx.selectFrom('accounts').select(['id', 'name']).where('name', '=', accountName).executeTakeFirst();
        let keys: { test: string; live: string } | null = null;
        if (!account) {
          keys = { test: newSecretKey('test'), live: newSecretKey('live') };
          account = { id: newAccountId(), name: accountName };
          await trx.insertInto('accounts').values({ ...account, created, signing_key_sealed: null }).execute();
          await trx.insertInto('secret_keys').values([secretKeyRow(account.id, keys.test, created), secretKeyRow(account.id, keys.live, created)]).execute();
        }
        const app = { id: newAppId(), account_id: account.id, name, created, rsa_public_key: null, require_signature_test: 0, require_signature_live: 0 };
        await trx.insertInto('apps').values(app).execute();
        // Every app has its system user "0" in each mode (the recipient of transfers to the platform).
        for (const livemode of [0, 1]) {
          await trx
            .insertInto('users')
            .values({
              pk: newUserPk(rt.clock.nowMs()), app: app.id, livemode, id: '0', type: 'customer', related_app: null,
              address: null, avatar: null, email: null, gender: null, mobile: null, name: null, parent_user_id: null,
              metadata: '{}', disabled: 0, identified: 0, available_balance: 0, withdrawable_balance: 0, created,
            })
            .execute();
        }
        return {
          id: app.id, object: 'app' as const, name, account: account.id, account_name: account.name, created,
          secret_key_test: keys?.test ?? null, secret_key_live: keys?.live ?? null,
        };
      });
    } catch (err) {
      // Two creators of the same new account raced: the loser retries and joins the winner's account.
      if (attempt === 0 && isUniqueViolation(err)) continue;
      throw err;
    }
  }
  throw new Error('unreachable');
}

/** The stored form of a new key: its hash and a hint (`sk_test_…abcd`); never the key. */
function secretKeyRow(accountId: string, key: string, created: number): SecretKeyRow {
  const livemode = key.startsWith('sk_live_');
  return { hash: hashSecretKey(key), account_id: accountId, livemode: livemode ? 1 : 0, hint: keyHint(key), created, expires_at: null, revoked: 0 };
}

/** Mode prefix and the last 4 characters: 20 random base62 characters (119 bits) stay unknown. */
function keyHint(key: string): string {
  return key.slice(0, key.indexOf('_', 3) + 1) + '…' + key.slice(-4);
}

/** A rolled-out key may stay valid for at most this long, so a leaked key cannot be kept alive for months. */
export const ROLL_EXPIRY_MAX_S = 7 * 24 * 3600;
/** Keys of one account and mode that may be valid at once (each roll with a grace period adds one). */
export const VALID_KEYS_MAX = 10;
/** Keys listed per account, newest first. */
const KEYS_LIST_MAX = 200;

export interface RolledKey {
  account: string;
  livemode: boolean;
  /** Shown this once. */
  secret_key: string;
  hint: string;
  created: number;
  /** Keys of this mode that were valid before the roll, and when they stop (now for an immediate roll). */
  old_keys: number;
  old_keys_expire_at: number;
}

function invalidRoll(en: string, zh: string, param: string): ApiError {
  return new ApiError({ status: 400, code: 'invalid_parameter', param, en, zh });
}

/**
 * A new secret key for the account of `appId` in one mode. Every key of that mode that is valid now
 * stops at `now + expireOldInS` (or sooner, if it was to stop sooner); 0 revokes them at once.
 * One transaction: the new key and the expiries commit together.
 */
export async function rollSecretKey(rt: Runtime, input: { appId: string; livemode: boolean; expireOldInS: number }): Promise<RolledKey> {
  const { expireOldInS, livemode } = input;
  if (!Number.isInteger(expireOldInS) || expireOldInS < 0 || expireOldInS > ROLL_EXPIRY_MAX_S) {
    throw invalidRoll(`expire_old_in must be 0 to ${ROLL_EXPIRY_MAX_S} seconds (7 days)`, `expire_old_in 必须在 0 到 ${ROLL_EXPIRY_MAX_S} 秒之间`, 'expire_old_in');
  }
  const now = seconds(rt.clock);
  return rt.store.transaction(async (trx) => {
    const app = await trx.selectFrom('apps').select('account_id').where('id', '=', input.appId).executeTakeFirst();
    if (!app) throw errors.notFound('app', input.appId, 'app');
    // Rolls of one account take turns (SQLite's BEGIN IMMEDIATE already serialises), so the count below holds.
    if (rt.store.engine === 'postgres') await trx.selectFrom('accounts').select('id').where('id', '=', app.account_id).forUpdate().execute();
    // Conditions rather than a list of hashes, so every valid key of the mode is covered.
    const validKeys = (q: KeyUpdate, after: number) =>
      q
        .where('account_id', '=', app.account_id)
        .where('livemode', '=', livemode ? 1 : 0)
        .where('revoked', '=', 0)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', after)]));
    const counted = await trx
      .selectFrom('secret_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account_id', '=', app.account_id)
      .where('livemode', '=', livemode ? 1 : 0)
      .where('revoked', '=', 0)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirstOrThrow();
    const valid = Number(counted.n);
    if (expireOldInS > 0 && valid >= VALID_KEYS_MAX) {
      throw invalidRoll(
        `this mode already has ${valid} valid keys; roll with an immediate expiry, or wait for old keys to expire`,
        `该模式下已有 ${valid} 个有效密钥；请立即过期旧密钥，或等待其过期`,
        'expire_old_in',
      );
    }
    const until = now + expireOldInS;
    if (expireOldInS === 0) await validKeys(trx.updateTable('secret_keys').set({ revoked: 1, expires_at: now }), now).execute();
    else await validKeys(trx.updateTable('secret_keys').set({ expires_at: until }), until).execute();
    const key = newSecretKey(livemode ? 'live' : 'test');
    const row = secretKeyRow(app.account_id, key, now);
    await trx.insertInto('secret_keys').values(row).execute();
    return { account: app.account_id, livemode, secret_key: key, hint: row.hint!, created: now, old_keys: valid, old_keys_expire_at: until };
  });
}

export interface SecretKeyInfo {
  hint: string;
  livemode: boolean;
  created: number;
  expires_at: number | null;
  status: 'active' | 'expiring' | 'expired' | 'revoked';
}

/** The keys of the account that owns `appId`, newest first: hints and dates, never a key. */
export async function listSecretKeys(rt: Runtime, appId: string): Promise<SecretKeyInfo[]> {
  const app = await rt.store.db.selectFrom('apps').select('account_id').where('id', '=', appId).executeTakeFirst();
  if (!app) throw errors.notFound('app', appId, 'app');
  const now = seconds(rt.clock);
  const rows = await rt.store.db
    .selectFrom('secret_keys')
    .select(['hint', 'livemode', 'created', 'expires_at', 'revoked'])
    .where('account_id', '=', app.account_id)
    .orderBy('created', 'desc')
    .orderBy('livemode')
    .limit(KEYS_LIST_MAX)
    .execute();
  return rows.map((r) => {
    const livemode = r.livemode === 1;
    const status = r.revoked ? 'revoked' : r.expires_at === null ? 'active' : r.expires_at > now ? 'expiring' : 'expired';
    return { hint: r.hint ?? `sk_${livemode ? 'live' : 'test'}_…(migrated)`, livemode, created: r.created, expires_at: r.expires_at, status };
  });
}

export interface Principal {
  accountId: string;
  livemode: boolean;
}

const CACHE_MAX = 10_000;
/**
 * How long a key's row is trusted without asking the database again. It bounds how late another
 * process's roll or revocation takes effect here; a key's own expiry is checked on every request.
 */
export const KEY_CACHE_TTL_MS = 5_000;
/** A used key's row is read again in the background once its entry is this old (Renewals). */
export const KEY_RENEW_AFTER_MS = 4_000;

interface CachedKey {
  row: { account_id: string; livemode: number; expires_at: number | null; revoked: number } | null;
  fetchedMs: number;
}

const SECRET_KEY_SHAPE = /^sk_(test|live)_[A-Za-z0-9]{1,64}$/;

/** The principal a key's row grants now: none for an unknown, revoked, expired or other-mode key. */
function principalOf(key: string, row: CachedKey['row'], nowMs: number): Principal | null {
  const livemode = key.startsWith('sk_live_');
  if (!row || row.revoked || row.livemode !== (livemode ? 1 : 0)) return null;
  if (row.expires_at !== null && Math.floor(nowMs / 1000) >= row.expires_at) return null;
  return { accountId: row.account_id, livemode };
}

/** Resolves secret keys and app ownership, with small bounded caches in front of the database. */
export class Authenticator {
  private readonly keys = new BoundedCache<string, CachedKey>(CACHE_MAX);
  private readonly appOwners = new BoundedCache<string, string>(CACHE_MAX);
  private readonly renewals = new Renewals<string>(CACHE_MAX);

  constructor(private readonly rt: Runtime) {}

  async principalFor(key: string): Promise<Principal | null> {
    if (!SECRET_KEY_SHAPE.test(key)) return null;
    const hash = hashSecretKey(key);
    const known = this.cachedPrincipal(key, hash);
    if (known !== undefined) return known;
    const cached = await this.fetchKey(hash);
    return principalOf(key, cached.row, cached.fetchedMs);
  }

  /** Reads the key's row and caches it, as of the time the read began. */
  private async fetchKey(hash: string): Promise<CachedKey> {
    const nowMs = this.rt.clock.nowMs();
    const found = await this.rt.store.db
      .selectFrom('secret_keys')
      .select(['hash', 'account_id', 'livemode', 'expires_at', 'revoked'])
      .where('hash', '=', hash)
      .executeTakeFirst();
    // The index found the row by equality; compare again in constant time so no early-exit compare decides.
    const cached: CachedKey = { row: found && constantTimeEqual(found.hash, hash) ? found : null, fetchedMs: nowMs };
    this.keys.set(hash, cached);
    return cached;
  }

  /**
   * principalFor without the database: the answer when the key is malformed (null) or its row is
   * cached and fresh; undefined when the database must be asked. The auth hook asks this first,
   * so a request with a known key pays no promise for its look-up.
   */
  knownPrincipal(key: string): Principal | null | undefined {
    if (!SECRET_KEY_SHAPE.test(key)) return null;
    return this.cachedPrincipal(key, hashSecretKey(key));
  }

  /** The answer from the cached row of the key with this hash, when it is fresh; else undefined. */
  private cachedPrincipal(key: string, hash: string): Principal | null | undefined {
    const cached = this.keys.get(hash);
    const nowMs = this.rt.clock.nowMs();
    if (!cached || nowMs - cached.fetchedMs >= KEY_CACHE_TTL_MS || nowMs < cached.fetchedMs) return undefined;
    // Read again in the background before it expires (Renewals); a revocation still takes effect
    // within KEY_CACHE_TTL_MS of the read that last saw the key valid.
    if (nowMs - cached.fetchedMs >= KEY_RENEW_AFTER_MS) this.renewals.start(hash, () => this.fetchKey(hash));
    return principalOf(key, cached.row, nowMs);
  }

  /** The owning account of an app when it is cached (apps never change owner), else undefined. */
  knownAppOwner(appId: string): string | undefined {
    return this.appOwners.get(appId);
  }

  /** The owning account of an app, or null when no such app exists. Apps never change owner. */
  async appOwner(appId: string): Promise<string | null> {
    const cached = this.appOwners.get(appId);
    if (cached !== undefined) return cached;
    const row = await this.rt.store.db.selectFrom('apps').select('account_id').where('id', '=', appId).executeTakeFirst();
    // Unknown ids are not cached: the app may be created a moment later by the CLI.
    if (row) this.appOwners.set(appId, row.account_id);
    return row?.account_id ?? null;
  }
}
