import type { Runtime } from '../runtime.ts';
import { newAccountId, newAppId, newSecretKey, newUserPk } from '../domain/ids.ts';
import { constantTimeEqual, hashSecretKey } from '../security/secrets.ts';
import { isUniqueViolation } from '../store/db.ts';
import { BoundedCache } from '../domain/bounded-cache.ts';
import { seconds } from '../clock.ts';

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
  secret_key_test: string;
  secret_key_live: string;
}

/**
 * Merchant accounts own apps and one secret key per mode. Keys are stored twice: a SHA-256 for
 * look-up and a copy sealed with the master key, so the CLI and console can show them again
 * while a copy of the database alone reveals nothing usable.
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
        let account = await trx.selectFrom('accounts').selectAll().where('name', '=', accountName).executeTakeFirst();
        let keys: { test: string; live: string };
        if (!account) {
          keys = { test: newSecretKey('test'), live: newSecretKey('live') };
          account = {
            id: newAccountId(),
            name: accountName,
            created,
            key_test_hash: hashSecretKey(keys.test),
            key_live_hash: hashSecretKey(keys.live),
            key_test_enc: rt.box.seal(keys.test),
            key_live_enc: rt.box.seal(keys.live),
          };
          await trx.insertInto('accounts').values(account).execute();
        } else {
          keys = { test: rt.box.open(account.key_test_enc), live: rt.box.open(account.key_live_enc) };
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
          secret_key_test: keys.test, secret_key_live: keys.live,
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

export interface Principal {
  accountId: string;
  livemode: boolean;
}

const CACHE_MAX = 10_000;
const KEY_CACHE_TTL_MS = 60_000;

/** Resolves secret keys and app ownership, with small bounded caches in front of the database. */
export class Authenticator {
  private readonly keys = new BoundedCache<string, { principal: Principal | null; expiresMs: number }>(CACHE_MAX);
  private readonly appOwners = new BoundedCache<string, string>(CACHE_MAX);

  constructor(private readonly rt: Runtime) {}

  async principalFor(key: string): Promise<Principal | null> {
    if (!/^sk_(test|live)_[A-Za-z0-9]{1,64}$/.test(key)) return null;
    const hash = hashSecretKey(key);
    const now = this.rt.clock.nowMs();
    const cached = this.keys.get(hash);
    if (cached && cached.expiresMs > now) return cached.principal;
    const livemode = key.startsWith('sk_live_');
    const column = livemode ? 'key_live_hash' : 'key_test_hash';
    const row = await this.rt.store.db.selectFrom('accounts').select(['id', column]).where(column, '=', hash).executeTakeFirst();
    const stored = row ? (livemode ? (row as { key_live_hash: string }).key_live_hash : (row as { key_test_hash: string }).key_test_hash) : undefined;
    const principal = row && stored && constantTimeEqual(stored, hash) ? { accountId: row.id, livemode } : null;
    this.keys.set(hash, { principal, expiresMs: now + KEY_CACHE_TTL_MS });
    return principal;
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
