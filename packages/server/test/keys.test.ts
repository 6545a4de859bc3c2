import { createVerify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Migrator, sql } from 'kysely';
import pino from 'pino';
import { ManualClock } from '../src/clock.ts';
import { defaults, type Config } from '../src/config.ts';
import { openRuntime } from '../src/runtime.ts';
import { Store } from '../src/store/db.ts';
import { migrationProvider } from '../src/store/migrations.ts';
import { SecretBox, hashSecretKey } from '../src/security/secrets.ts';
import {
  Authenticator, createApp, KEY_CACHE_TTL_MS, KEY_RENEW_AFTER_MS, listSecretKeys, rollSecretKey, ROLL_EXPIRY_MAX_S, VALID_KEYS_MAX,
} from '../src/services/accounts.ts';
import {
  cachedSigningKeyFor, createAccountSigningKey, removeAccountSigningKey, SIGNING_KEY_RENEW_AFTER_MS, SIGNING_KEY_TTL_MS, signingKeyFor,
} from '../src/security/signing-keys.ts';
import { POLICY_RENEW_AFTER_MS, POLICY_TTL_MS, signaturePolicy } from '../src/services/app_settings.ts';
import { keyLines, parseExpiry, rollKey, signingPublicKey } from '../src/cli/apps-keys.ts';
import { UsageError } from '../src/cli/shared.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { WebhookDispatcher } from '../src/webhooks/dispatcher.ts';
import { describeEngines, freshStorage, Harness, shownKey } from './helpers/harness.ts';
import { emitTestEvent, Receiver } from './helpers/receiver.ts';

const verifies = (body: string | Buffer, signature: unknown, publicKeyPem: string) =>
  typeof signature === 'string' && createVerify('RSA-SHA256').update(body).verify(publicKeyPem, signature, 'base64');

let accounts = 0;
/** An app in an account of its own, with the keys shown at its creation. */
async function freshAccount(h: Harness, name = 'keys') {
  const app = await createApp(h.rt, { name, account: `keys-${++accounts}-${Math.random().toString(36).slice(2, 8)}` });
  return { app, test: shownKey(app.secret_key_test), live: shownKey(app.secret_key_live) };
}

describe('parseExpiry', () => {
  it('reads s/m/h/d durations up to 7 days and refuses the rest', () => {
    expect([parseExpiry('0'), parseExpiry('90'), parseExpiry('90s'), parseExpiry('30m'), parseExpiry('24h'), parseExpiry('7d')]).toEqual([0, 90, 90, 1800, 86_400, ROLL_EXPIRY_MAX_S]);
    for (const bad of ['8d', '169h', `${ROLL_EXPIRY_MAX_S + 1}`, '-1h', '1.5h', '1w', '', 'h', '24 h', '99999999d']) {
      expect(() => parseExpiry(bad), bad).toThrow(UsageError);
    }
  });
});

describeEngines('secret keys', (engine) => {
  let h: Harness;
  let clock: ManualClock;
  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 8, 0, 0));
    h = await Harness.start(engine, { clock });
  });
  afterAll(async () => h?.close());

  const status = async (key: string, app: string) => (await h.request('GET', `/v1/apps/${app}/users/0`, { key })).status;

  it('keeps keys only as hashes: no stored value is, contains or opens to a key', async () => {
    const { app, test, live } = await freshAccount(h);
    const db = h.rt.store.db;
    const rows = [
      ...(await db.selectFrom('accounts').selectAll().where('id', '=', app.account).execute()),
      ...(await db.selectFrom('secret_keys').selectAll().where('account_id', '=', app.account).execute()),
    ];
    expect(rows.length).toBe(3);
    const values = rows.flatMap((r) => Object.values(r)).filter((v): v is string => typeof v === 'string');
    for (const key of [test, live]) {
      expect(values).toContain(hashSecretKey(key));
      for (const v of values) {
        expect(v.includes(key.slice(8))).toBe(false);
        let opened: string | null = null;
        try {
          opened = h.rt.box.open(v);
        } catch {
          // not sealed: fine
        }
        expect(opened).not.toBe(key);
      }
    }
  });

  it('shows keys once: an app joining an existing account gets none', async () => {
    const first = await freshAccount(h);
    const second = await createApp(h.rt, { name: 'second', account: first.app.account_name });
    expect(second.account).toBe(first.app.account);
    expect([second.secret_key_test, second.secret_key_live]).toEqual([null, null]);
    // The account's keys reach the new app.
    expect(await status(first.test, second.id)).toBe(200);
  });

  it('a key in use is read again before its entry expires: a revocation made elsewhere lands before the TTL, with no request waiting', async () => {
    const { app, test } = await freshAccount(h);
    const auth = new Authenticator(h.rt);
    const t0 = clock.nowMs();
    const valid = { accountId: app.account, livemode: false };
    expect(await auth.principalFor(test)).toEqual(valid);
    // Revoked behind this process's back (as another process would: no cache here is told).
    await h.rt.store.db.updateTable('secret_keys').set({ revoked: 1 }).where('hash', '=', hashSecretKey(test)).execute();
    clock.advance(KEY_RENEW_AFTER_MS - 1);
    expect(auth.knownPrincipal(test)).toEqual(valid); // young: answered from the entry, not read again
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(auth.knownPrincipal(test)).toEqual(valid);
    clock.advance(1);
    // In use at KEY_RENEW_AFTER_MS: answered from the entry at once, and read again meanwhile,
    expect(auth.knownPrincipal(test)).toEqual(valid);
    // so the revocation is known before the entry would have expired (null: refused, no read needed).
    await vi.waitFor(() => expect(auth.knownPrincipal(test)).toBeNull());
    expect(clock.nowMs() - t0).toBeLessThan(KEY_CACHE_TTL_MS);
  });

  it("an app's signature policy and an account's signing key in use are read again before they expire", async () => {
    const a = await freshAccount(h, 'renewed');
    const t0 = clock.nowMs();
    expect(await signaturePolicy(h.rt, a.app.id)).toMatchObject({ requireTest: false });
    expect((await signingKeyFor(h.rt, a.app.account)).kid).toBe('platform');
    // Both changed by another process: this one's caches are not told.
    await h.rt.store.db.updateTable('apps').set({ require_signature_test: 1 }).where('id', '=', a.app.id).execute();
    const other = await openRuntime(h.rt.config, { log: pino({ level: 'silent' }), clock });
    try {
      await createAccountSigningKey(other, a.app.id);
    } finally {
      await other.close();
    }
    clock.advance(Math.max(POLICY_RENEW_AFTER_MS, SIGNING_KEY_RENEW_AFTER_MS));
    // Still the entries' answers, and each is read again in the background...
    expect(await signaturePolicy(h.rt, a.app.id)).toMatchObject({ requireTest: false });
    expect(cachedSigningKeyFor(h.rt, a.app.account)?.kid).toBe('platform');
    // ...so the changes are known before the entries would have expired.
    await vi.waitFor(async () => expect(await signaturePolicy(h.rt, a.app.id)).toMatchObject({ requireTest: true }));
    await vi.waitFor(() => expect(cachedSigningKeyFor(h.rt, a.app.account)?.kid).toMatch(/^acct:/));
    expect(clock.nowMs() - t0).toBeLessThan(Math.min(POLICY_TTL_MS, SIGNING_KEY_TTL_MS));
  });

  it('roll: the new key works at once; the old one is refused within the cache TTL; the other mode is untouched', async () => {
    const { app, test, live } = await freshAccount(h);
    expect(await status(test, app.id)).toBe(200); // now cached
    const rolled = await rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 0 });
    expect(rolled.secret_key).toMatch(/^sk_test_[0-9A-Za-z]{24}$/);
    expect(rolled.old_keys).toBe(1);
    expect(await status(rolled.secret_key, app.id)).toBe(200);
    clock.advance(KEY_CACHE_TTL_MS);
    expect(await status(test, app.id)).toBe(401);
    expect(await status(rolled.secret_key, app.id)).toBe(200);
    expect(await status(live, app.id)).toBe(200);
  });

  it('roll with a grace period: the old key works until it expires, then never again', async () => {
    const { app, test } = await freshAccount(h);
    const rolled = await rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 24 * 3600 });
    expect(rolled.old_keys_expire_at).toBe(Math.floor(clock.nowMs() / 1000) + 24 * 3600);
    expect(await status(test, app.id)).toBe(200);
    clock.advance(24 * 3600 * 1000 - 1000);
    expect(await status(test, app.id)).toBe(200);
    expect(await status(rolled.secret_key, app.id)).toBe(200);
    clock.advance(1000);
    expect(await status(test, app.id)).toBe(401);
    expect(await status(rolled.secret_key, app.id)).toBe(200);
    // A second roll that ends the grace sooner shortens it; one that would lengthen it does not.
    const again = await rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 3600 });
    const third = await rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 7200 });
    clock.advance(3600 * 1000 + KEY_CACHE_TTL_MS);
    expect(await status(rolled.secret_key, app.id)).toBe(401);
    expect(await status(again.secret_key, app.id)).toBe(200);
    expect(await status(third.secret_key, app.id)).toBe(200);
  });

  it('refuses an expiry beyond 7 days, an unknown app and too many valid keys, changing nothing', async () => {
    const { app, test } = await freshAccount(h);
    const count = () => h.rt.store.db.selectFrom('secret_keys').select('hash').where('account_id', '=', app.account).execute();
    const before = (await count()).length;
    for (const expireOldInS of [ROLL_EXPIRY_MAX_S + 1, -1, 1.5]) {
      await expect(rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS })).rejects.toMatchObject({ status: 400, param: 'expire_old_in' });
    }
    await expect(rollSecretKey(h.rt, { appId: 'app_doesnotexist0000', livemode: false, expireOldInS: 0 })).rejects.toMatchObject({ status: 404 });
    expect((await count()).length).toBe(before);
    for (let i = 1; i < VALID_KEYS_MAX; i++) await rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 3600 });
    await expect(rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 3600 })).rejects.toMatchObject({ status: 400 });
    expect(await status(test, app.id)).toBe(200);
    // An immediate roll is always possible (a leaked key), and revokes every valid key of the mode.
    const rolled = await rollSecretKey(h.rt, { appId: app.id, livemode: false, expireOldInS: 0 });
    expect(rolled.old_keys).toBe(VALID_KEYS_MAX);
    clock.advance(KEY_CACHE_TTL_MS);
    expect(await status(test, app.id)).toBe(401);
  });

  it('keys list and the CLI lines show hints and dates, never a key', async () => {
    const { app, test, live } = await freshAccount(h);
    clock.advance(1000);
    const { lines, json } = await rollKey(h.rt, app.id, { mode: 'live', expireOldIn: '1h' });
    const rolled = (json as { secret_key: string }).secret_key;
    expect(lines.join('\n')).toContain(rolled);
    expect(lines.join('\n')).toMatch(/1 old live key\(s\) stop working at 20\d\d-/);
    const list = await listSecretKeys(h.rt, app.id);
    expect(list.map((k) => [k.livemode, k.status])).toEqual([[true, 'active'], [false, 'active'], [true, 'expiring']]);
    expect(list[0]!.hint).toBe(`sk_live_…${rolled.slice(-4)}`);
    const printed = JSON.stringify(list) + keyLines(list).join('\n');
    for (const key of [test, live, rolled]) expect(printed.includes(key.slice(8, -4))).toBe(false);
    await expect(rollKey(h.rt, app.id, { mode: 'prod' })).rejects.toThrow(UsageError);
    await expect(rollKey(h.rt, app.id, { mode: 'test', expireOldIn: '8d' })).rejects.toThrow(UsageError);
  });

  it('migrates a database made before 0003: old keys still authenticate; the sealed copies are gone', async () => {
    const storage = await freshStorage(engine);
    const config: Config = { ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, logLevel: 'silent' };
    try {
      const store = Store.open({ databaseUrl: storage.databaseUrl, dataDir: storage.dataDir });
      const migrated = await new Migrator({ db: store.db, provider: migrationProvider }).migrateTo('0001_initial');
      expect(migrated.error).toBeUndefined();
      const box = new SecretBox(Buffer.alloc(32, 7));
      const oldTest = 'sk_test_' + 'a'.repeat(24);
      const oldLive = 'sk_live_' + 'b'.repeat(24);
      await sql`INSERT INTO accounts (id, name, created, key_test_hash, key_live_hash, key_test_enc, key_live_enc)
        VALUES ('acct_old', 'old', 1700000000, ${hashSecretKey(oldTest)}, ${hashSecretKey(oldLive)}, ${box.seal(oldTest)}, ${box.seal(oldLive)})`.execute(store.db);
      await sql`INSERT INTO apps (id, account_id, name, created) VALUES ('app_old0000000000000', 'acct_old', 'old app', 1700000000)`.execute(store.db);
      expect(await store.migrate()).toContain('0003_secret_keys');
      const columns = engine === 'sqlite'
        ? (await sql<{ name: string }>`SELECT name FROM pragma_table_info('accounts')`.execute(store.db)).rows.map((r) => r.name)
        : (await sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'accounts'`.execute(store.db)).rows.map((r) => r.name);
      expect(columns.sort()).toEqual(['created', 'id', 'name', 'signing_key_sealed']);
      await store.close();

      const rt = await openRuntime(config, { log: pino({ level: 'silent' }) });
      try {
        const auth = new Authenticator(rt);
        expect(await auth.principalFor(oldTest)).toEqual({ accountId: 'acct_old', livemode: false });
        expect(await auth.principalFor(oldLive)).toEqual({ accountId: 'acct_old', livemode: true });
        expect(await auth.principalFor('sk_test_' + 'c'.repeat(24))).toBeNull();
        expect(await auth.appOwner('app_old0000000000000')).toBe('acct_old');
        const list = await listSecretKeys(rt, 'app_old0000000000000');
        expect(list.map((k) => [k.hint, k.status])).toEqual([['sk_test_…(migrated)', 'active'], ['sk_live_…(migrated)', 'active']]);
        // New accounts and rolls work on the migrated schema.
        const fresh = await createApp(rt, { name: 'after', account: 'after-migration' });
        expect(await new Authenticator(rt).principalFor(shownKey(fresh.secret_key_live))).toEqual({ accountId: fresh.account, livemode: true });
        const rolled = await rollSecretKey(rt, { appId: 'app_old0000000000000', livemode: false, expireOldInS: 0 });
        const after = new Authenticator(rt);
        expect(await after.principalFor(oldTest)).toBeNull();
        expect(await after.principalFor(rolled.secret_key)).toEqual({ accountId: 'acct_old', livemode: false });
      } finally {
        await rt.close();
      }
    } finally {
      await storage.drop();
    }
  });
});

describeEngines('per-account signing keys', (engine) => {
  let h: Harness;
  let clock: ManualClock;
  let receiver: Receiver;
  beforeAll(async () => {
    clock = new ManualClock(Date.UTC(2026, 0, 1, 8, 0, 0));
    h = await Harness.start(engine, { clock, config: { webhookTimeoutMs: 5_000 } });
    receiver = await Receiver.start();
  });
  afterAll(async () => {
    await receiver?.close();
    await h?.close();
  });

  it("an account that switched signs its responses and webhooks with its own key; another still uses the platform key", async () => {
    const own = await freshAccount(h, 'own key');
    const shared = await freshAccount(h, 'platform key');
    const platformPem = h.rt.platformKey.publicKeyPem;
    const made = await createAccountSigningKey(h.rt, own.app.id);
    expect(made.account).toBe(own.app.account);
    expect(made.publicKeyPem).not.toBe(platformPem);
    expect(await signingPublicKey(h.rt, own.app.id)).toBe(made.publicKeyPem);
    expect(await signingPublicKey(h.rt, shared.app.id)).toBe(platformPem);
    expect(await signingPublicKey(h.rt, undefined)).toBe(platformPem);

    // Responses: the same request shape, answered for each account.
    const ownRes = await h.request('GET', `/v1/apps/${own.app.id}/users/0`, { key: own.test });
    const sharedRes = await h.request('GET', `/v1/apps/${shared.app.id}/users/0`, { key: shared.test });
    expect([ownRes.status, sharedRes.status]).toEqual([200, 200]);
    expect(verifies(ownRes.body, ownRes.headers['x-pingplusplus-signature'], made.publicKeyPem)).toBe(true);
    expect(verifies(ownRes.body, ownRes.headers['x-pingplusplus-signature'], platformPem)).toBe(false);
    expect(verifies(sharedRes.body, sharedRes.headers['x-pingplusplus-signature'], platformPem)).toBe(true);
    expect(verifies(sharedRes.body, sharedRes.headers['x-pingplusplus-signature'], made.publicKeyPem)).toBe(false);
    // An error answer to the switched account is signed with its key too; one to no account with the platform key.
    const ownError = await h.request('GET', `/v1/apps/${own.app.id}/users/nobody`, { key: own.test });
    expect(ownError.status).toBe(404);
    expect(verifies(ownError.body, ownError.headers['x-pingplusplus-signature'], made.publicKeyPem)).toBe(true);
    const anonymous = await h.request('GET', `/v1/apps/${own.app.id}/users/0`, { key: null });
    expect(anonymous.status).toBe(401);
    expect(verifies(anonymous.body, anonymous.headers['x-pingplusplus-signature'], platformPem)).toBe(true);

    // Webhooks.
    for (const a of [own, shared]) await upsertEndpoint(h.rt, { app: a.app.id, livemode: false, url: receiver.urlFor(`/${a.app.id}`) });
    await emitTestEvent(h.rt, { app: own.app.id, accountId: own.app.account });
    await emitTestEvent(h.rt, { app: shared.app.id, accountId: shared.app.account });
    const dispatcher = new WebhookDispatcher(h.rt);
    try {
      expect(await dispatcher.drain()).toBe(2);
    } finally {
      await dispatcher.stop();
    }
    const [ownHook] = receiver.to(`/${own.app.id}`);
    const [sharedHook] = receiver.to(`/${shared.app.id}`);
    expect(verifies(ownHook!.rawBody, ownHook!.headers['x-pingplusplus-signature'], made.publicKeyPem)).toBe(true);
    expect(verifies(ownHook!.rawBody, ownHook!.headers['x-pingplusplus-signature'], platformPem)).toBe(false);
    expect(verifies(sharedHook!.rawBody, sharedHook!.headers['x-pingplusplus-signature'], platformPem)).toBe(true);
    expect(verifies(sharedHook!.rawBody, sharedHook!.headers['x-pingplusplus-signature'], made.publicKeyPem)).toBe(false);
  });

  it('keeps the private key sealed, refuses a second key unless replaced, the replacement signs from then on, remove switches back', async () => {
    const a = await freshAccount(h, 'replace');
    const first = await createAccountSigningKey(h.rt, a.app.id);
    const row = await h.rt.store.db.selectFrom('accounts').select('signing_key_sealed').where('id', '=', a.app.account).executeTakeFirstOrThrow();
    expect(row.signing_key_sealed).toMatch(/^v1\./);
    expect(row.signing_key_sealed).not.toContain('PRIVATE KEY');
    await expect(createAccountSigningKey(h.rt, a.app.id)).rejects.toThrow(/already has its own signing key/);
    await expect(createAccountSigningKey(h.rt, 'app_doesnotexist0000')).rejects.toThrow(/no such app/);
    const second = await createAccountSigningKey(h.rt, a.app.id, { replace: true });
    expect(second.replaced).toBe(true);
    expect(second.publicKeyPem).not.toBe(first.publicKeyPem);
    const res = await h.request('GET', `/v1/apps/${a.app.id}/users/0`, { key: a.test });
    expect(verifies(res.body, res.headers['x-pingplusplus-signature'], second.publicKeyPem)).toBe(true);
    expect(verifies(res.body, res.headers['x-pingplusplus-signature'], first.publicKeyPem)).toBe(false);

    expect(await removeAccountSigningKey(h.rt, a.app.id)).toEqual({ account: a.app.account, removed: true });
    expect(await removeAccountSigningKey(h.rt, a.app.id)).toEqual({ account: a.app.account, removed: false });
    const back = await h.request('GET', `/v1/apps/${a.app.id}/users/0`, { key: a.test });
    expect(verifies(back.body, back.headers['x-pingplusplus-signature'], h.rt.platformKey.publicKeyPem)).toBe(true);
    expect(await signingPublicKey(h.rt, a.app.id)).toBe(h.rt.platformKey.publicKeyPem);
  });

  it('callers asking at once for a key this process has not cached share one read of it', async () => {
    const a = await freshAccount(h, 'cold');
    await createAccountSigningKey(h.rt, a.app.id);
    clock.advance(SIGNING_KEY_TTL_MS); // whatever this process cached of the account has expired
    const reads = vi.spyOn(h.rt.store.db, 'selectFrom');
    const accountReads = () => reads.mock.calls.filter(([table]) => table === 'accounts').length;
    try {
      const keys = await Promise.all(Array.from({ length: 10 }, () => signingKeyFor(h.rt, a.app.account)));
      expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
      expect(keys[0]!.kid).toMatch(/^acct:/);
      expect(accountReads()).toBe(1);
      // The shared read is over: once the entry expires, the next caller reads again.
      clock.advance(SIGNING_KEY_TTL_MS);
      expect((await signingKeyFor(h.rt, a.app.account)).kid).toBe(keys[0]!.kid);
      expect(accountReads()).toBe(2);
    } finally {
      reads.mockRestore();
    }
  });

  it('a switch made by another process reaches this one within the signing-key cache TTL', async () => {
    const a = await freshAccount(h, 'elsewhere');
    const platformPem = h.rt.platformKey.publicKeyPem;
    const signedWith = async (pem: string) => {
      const res = await h.request('GET', `/v1/apps/${a.app.id}/users/0`, { key: a.test });
      return verifies(res.body, res.headers['x-pingplusplus-signature'], pem);
    };
    expect(await signedWith(platformPem)).toBe(true); // this process now caches "platform key" for the account
    const other = await openRuntime(h.rt.config, { log: pino({ level: 'silent' }), clock });
    let made: { publicKeyPem: string };
    try {
      made = await createAccountSigningKey(other, a.app.id);
    } finally {
      await other.close();
    }
    expect(await signedWith(platformPem)).toBe(true);
    clock.advance(SIGNING_KEY_TTL_MS);
    expect(await signedWith(made.publicKeyPem)).toBe(true);
    expect(await signedWith(platformPem)).toBe(false);
  });
});
