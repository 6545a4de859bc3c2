import crypto, { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config.ts';
import type { Db } from '../store/db.ts';

const KEY_FILE_SETTING = '--master-key-file / TIXIAN_MASTER_KEY_FILE';
/** The settings row holding the key check value: proof of which key sealed this database's secrets. */
export const MASTER_KEY_CHECK_SETTING = 'master_key_check';
/** Sealed with the master key by every runtime's first start: its presence means secrets exist. */
const PLATFORM_KEY_SETTING = 'platform_rsa_private_key';

export interface MasterKeyOptions {
  dataDir: string;
  /** `<dataDir>/master.key` when unset. */
  keyFile?: string | undefined;
  /** TIXIAN_MASTER_KEY (already checked to be 64 hex chars); wins over any file. */
  keyHex?: string | undefined;
}

/** The master key file's path: the configured one, or master.key in the data directory. */
export function masterKeyPath(options: MasterKeyOptions): string {
  return path.resolve(options.keyFile ?? path.join(options.dataDir, 'master.key'));
}

/**
 * An HMAC of a constant under the key: stored in the database, it tells at start-up whether a key
 * is the one that sealed the secrets, without revealing anything about the key.
 */
export function masterKeyCheckValue(key: Buffer): string {
  return 'v1.' + createHmac('sha256', key).update('tixian master key check').digest('hex');
}

/**
 * The master key encrypts secrets at rest (the platform private key, accounts' own signing keys,
 * webhook endpoint secrets), so a copy of the database alone reveals no usable key; merchant secret
 * keys are not among them (they are kept only as hashes, services/accounts.ts). It lives outside the
 * database: the TIXIAN_MASTER_KEY environment variable (64 hex chars) or a key file
 * (`<data-dir>/master.key` unless --master-key-file says otherwise). Every process sharing one
 * database needs the same key.
 *
 * A new key is made only for a database that holds no sealed secrets yet; a database that does
 * keeps a check value of its key, so a missing or wrong key stops start-up with one line that says
 * which setting to fix, instead of a new key file and an undecipherable secret later.
 */
export async function openMasterKey(db: Db, options: MasterKeyOptions): Promise<Buffer> {
  const file = masterKeyPath(options);
  const source = options.keyHex ? 'TIXIAN_MASTER_KEY' : file;
  const stored = await db.selectFrom('settings').select(['key', 'value']).where('key', 'in', [MASTER_KEY_CHECK_SETTING, PLATFORM_KEY_SETTING]).execute();
  const check = stored.find((r) => r.key === MASTER_KEY_CHECK_SETTING)?.value;
  const platformKey = stored.find((r) => r.key === PLATFORM_KEY_SETTING)?.value;

  let key = options.keyHex ? Buffer.from(options.keyHex, 'hex') : readKeyFile(file);
  let created = false;
  if (!key) {
    if (check !== undefined || platformKey !== undefined) {
      throw new ConfigError(
        `no master key: ${file} does not exist and TIXIAN_MASTER_KEY is not set, but this database holds secrets sealed with a master key; ` +
          `point ${KEY_FILE_SETTING} (or --data-dir) at the key it was first started with, or set TIXIAN_MASTER_KEY`,
      );
    }
    key = createKeyFile(file);
    created = true;
  }
  try {
    if (check !== undefined) {
      if (!constantTimeEqual(check, masterKeyCheckValue(key))) throw wrongKey(source);
      return key;
    }
    // A database from before check values: the platform key tells whether this key opens it.
    if (platformKey !== undefined) {
      try {
        new SecretBox(key).open(platformKey);
      } catch {
        throw wrongKey(source);
      }
    }
    // Two processes may start an empty database at once with different keys: the first check
    // value stored wins and the other process is refused.
    await db.insertInto('settings').values({ key: MASTER_KEY_CHECK_SETTING, value: masterKeyCheckValue(key) }).onConflict((oc) => oc.column('key').doNothing()).execute();
    const winner = await db.selectFrom('settings').select('value').where('key', '=', MASTER_KEY_CHECK_SETTING).executeTakeFirstOrThrow();
    if (!constantTimeEqual(winner.value, masterKeyCheckValue(key))) throw wrongKey(source);
    return key;
  } catch (err) {
    // A key file made a moment ago for a database that turned out to have another key is removed,
    // so the next start does not find a useless key where the right one should go.
    if (created) rmSync(file, { force: true });
    throw err;
  }
}

function wrongKey(source: string): ConfigError {
  return new ConfigError(
    `wrong master key: the key from ${source} is not the one this database's secrets were sealed with; ` +
      `point ${KEY_FILE_SETTING} at the original key file or set TIXIAN_MASTER_KEY to it (a lost master key cannot be recovered: restore it from your backup)`,
  );
}

function readKeyFile(file: string): Buffer | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return null;
    throw new ConfigError(`cannot read the master key file ${file} (${KEY_FILE_SETTING}): ${e.code ?? e.message}; fix its permissions or point the setting at the right file`);
  }
  const key = /^[0-9a-fA-F]{64}$/.test(text.trim()) ? Buffer.from(text.trim(), 'hex') : null;
  if (!key) throw new ConfigError(`the master key file ${file} (${KEY_FILE_SETTING}) does not hold a master key (64 hex characters)`);
  return key;
}

function createKeyFile(file: string): Buffer {
  const dir = path.dirname(file);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return key;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Another process made it between our look and our write: use theirs.
    if (e.code === 'EEXIST' && existsSync(file) && !statSync(file).isDirectory()) return readKeyFile(file)!;
    throw new ConfigError(`cannot create the master key file ${file} (${KEY_FILE_SETTING}, or --data-dir / TIXIAN_DATA_DIR): ${e.code ?? e.message}; ${dir} must be a writable directory`);
  }
}

export class SecretBox {
  constructor(private readonly key: Buffer) {}

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join('.');
  }

  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || body === undefined) throw new Error('unrecognised sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
  }
}

/** Secret keys are 142 bits of randomness, so one SHA-256 is enough to make them unguessable at rest. */
export function hashSecretKey(key: string): string {
  return sha256Hex(key);
}

/** SHA-256 of text (UTF-8), hex. */
export function sha256Hex(text: string): string {
  return oneShotHash ? oneShotHash('sha256', text, 'hex') : createHash('sha256').update(text, 'utf8').digest('hex');
}

/** SHA-256 of bytes, base64 (the response-signature memo's key). */
export function sha256Base64(bytes: Buffer): string {
  return oneShotHash ? oneShotHash('sha256', bytes, 'base64') : createHash('sha256').update(bytes).digest('base64');
}

/**
 * `crypto.hash` (Node ≥ 20.12): the same digest as createHash…digest without a Hash object, about
 * half the cost for the short inputs hashed per request. Older Node 20 releases lack it.
 */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string | Buffer, encoding: 'hex' | 'base64') => string }).hash;

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

const MASK_MAX_CHARS = 64;
const MASK_HEAD = 12;
const MASK_TAIL = 3;
const MASK_MIN_HIDDEN = 8;

/**
 * `sk_test_ibbT****************9KC`: enough to tell keys apart in an error, never enough to use.
 * Whatever the caller sent (any length, any characters) is masked so that most of it stays hidden:
 * 12 leading and 3 trailing characters only when at least 8 remain hidden (a real key has 24
 * random ones), otherwise at most a third of it, from the front.
 */
export function maskSecretKey(key: string): string {
  const clean = key.replace(/[^\x20-\x7e]/g, '?').slice(0, MASK_MAX_CHARS);
  if (clean.length >= MASK_HEAD + MASK_TAIL + MASK_MIN_HIDDEN) {
    return clean.slice(0, MASK_HEAD) + '*'.repeat(clean.length - MASK_HEAD - MASK_TAIL) + clean.slice(-MASK_TAIL);
  }
  const shown = Math.min(3, Math.floor(clean.length / 3));
  return clean.slice(0, shown) + '*'.repeat(clean.length - shown);
}
