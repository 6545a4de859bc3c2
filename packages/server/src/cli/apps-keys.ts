import { Option, type Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import type { Runtime } from '../runtime.ts';
import { listSecretKeys, rollSecretKey, ROLL_EXPIRY_MAX_S, type SecretKeyInfo } from '../services/accounts.ts';
import { createAccountSigningKey, removeAccountSigningKey, signingKeyForApp, SigningKeyError } from '../security/signing-keys.ts';
import { storageOptions, UsageError, withRuntime } from './shared.ts';

/**
 * `tixian apps keys roll|list` (secret keys, shown once and stored as hashes) and
 * `tixian apps signing-key create` (an account's own response/webhook signing key).
 */

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `30m`, `24h`, `7d` or `0` → seconds, at most 7 days. */
export function parseExpiry(text: string): number {
  const m = /^([0-9]{1,7})([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`--expire-old-in must be a duration like 30m, 24h or 7d (or 0), got ${JSON.stringify(text.slice(0, 32))}`);
  const s = Number(m[1]) * UNIT_S[m[2] || 's']!;
  if (s > ROLL_EXPIRY_MAX_S) throw new UsageError(`--expire-old-in is at most 7d (${ROLL_EXPIRY_MAX_S} s): a rolled key must not live on for long`);
  return s;
}

function parseMode(text: string): boolean {
  if (text !== 'test' && text !== 'live') throw new UsageError(`--mode must be test or live, got ${JSON.stringify(text.slice(0, 32))}`);
  return text === 'live';
}

const iso = (s: number) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

export async function rollKey(rt: Runtime, appId: string, opts: { mode: string; expireOldIn?: string | undefined }): Promise<{ lines: string[]; json: object }> {
  const livemode = parseMode(opts.mode);
  const expireOldInS = opts.expireOldIn === undefined ? 0 : parseExpiry(opts.expireOldIn);
  const rolled = await rollSecretKey(rt, { appId, livemode, expireOldInS });
  const mode = livemode ? 'live' : 'test';
  const lines = [`new ${mode} secret key for account ${rolled.account}: ${rolled.secret_key}`, '  (shown once: tixian keeps only its hash)'];
  if (rolled.old_keys === 0) lines.push(`  there was no valid ${mode} key before`);
  else if (expireOldInS === 0) lines.push(`  ${rolled.old_keys} old ${mode} key(s) revoked now`);
  else lines.push(`  ${rolled.old_keys} old ${mode} key(s) stop working at ${iso(rolled.old_keys_expire_at)}`);
  return { lines, json: rolled };
}

export function keyLines(keys: SecretKeyInfo[]): string[] {
  if (keys.length === 0) return ['no keys'];
  return keys.map((k) => {
    const expiry = k.expires_at === null ? 'no expiry' : `${k.status === 'expiring' ? 'expires' : 'ended'} ${iso(k.expires_at)}`;
    return `${k.hint.padEnd(20)}  ${k.livemode ? 'live' : 'test'}  created ${iso(k.created)}  ${k.status.padEnd(8)}  ${expiry}`;
  });
}

export function registerAppsKeysCommands(apps: Command): void {
  const keys = apps.command('keys').description("an app's account secret keys (shown once; stored as hashes)");

  storageOptions(
    keys
      .command('roll')
      .description('make a new secret key for the account of an app; old keys of that mode stop now, or after --expire-old-in')
      .argument('<app_id>', 'app id (the key belongs to its account)')
      .addOption(new Option('--mode <mode>', 'test or live').choices(['test', 'live']).makeOptionMandatory())
      .option('--expire-old-in <duration>', 'keep the old keys working this long (e.g. 24h; at most 7d); default: stop now')
      .option('--json', 'print JSON'),
  ).action(async (appId: string, opts: ConfigFlags & { mode: string; expireOldIn?: string; json?: boolean }) => {
    // Parsed before the runtime opens, so a typo never reaches the database.
    if (opts.expireOldIn !== undefined) parseExpiry(opts.expireOldIn);
    const { lines, json } = await withRuntime(opts, (rt) => rollKey(rt, appId, opts));
    if (opts.json) console.log(JSON.stringify(json, null, 2));
    else for (const line of lines) console.log(line);
  });

  storageOptions(
    keys
      .command('list')
      .description("list the secret keys of an app's account: hint, mode, created, expiry (never the key)")
      .argument('<app_id>', 'app id')
      .option('--json', 'print JSON'),
  ).action(async (appId: string, opts: ConfigFlags & { json?: boolean }) => {
    const list = await withRuntime(opts, (rt) => listSecretKeys(rt, appId));
    if (opts.json) console.log(JSON.stringify(list, null, 2));
    else for (const line of keyLines(list)) console.log(line);
  });

  const signing = apps.command('signing-key').description("an account's own key for signing webhooks and API responses");
  storageOptions(
    signing
      .command('create')
      .description("switch the account of an app from the shared platform key to a signing key pair of its own; prints its public key")
      .argument('<app_id>', 'app id (the key signs for every app of its account)')
      .option('--replace', 'replace the account key it has already'),
  ).action(async (appId: string, opts: ConfigFlags & { replace?: boolean }) => {
    const made = await withRuntime(opts, async (rt) => {
      try {
        return await createAccountSigningKey(rt, appId, { replace: opts.replace === true });
      } catch (err) {
        throw err instanceof SigningKeyError ? new UsageError(err.message) : err;
      }
    });
    console.error(`account ${made.account} now signs webhooks and responses with its own key${made.replaced ? ' (replaced the previous one)' : ''}; its public key:`);
    process.stdout.write(made.publicKeyPem);
  });

  storageOptions(
    signing
      .command('remove')
      .description('switch the account of an app back to the shared platform key (deletes its own key)')
      .argument('<app_id>', 'app id'),
  ).action(async (appId: string, opts: ConfigFlags) => {
    const done = await withRuntime(opts, async (rt) => {
      try {
        return await removeAccountSigningKey(rt, appId);
      } catch (err) {
        throw err instanceof SigningKeyError ? new UsageError(err.message) : err;
      }
    });
    console.log(done.removed ? `account ${done.account} signs with the platform key again` : `account ${done.account} had no key of its own: it signs with the platform key`);
  });
}

/** The public key that verifies what is signed for an app (its account's own, else the platform key). */
export async function signingPublicKey(rt: Runtime, appId: string | undefined): Promise<string> {
  if (appId === undefined) return rt.platformKey.publicKeyPem;
  const key = await signingKeyForApp(rt, appId);
  if (!key) throw new UsageError(`no such app: ${appId}`);
  return key.publicKeyPem;
}
