import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The master key encrypts secrets at rest (merchant secret keys, the platform private key), so a
 * copy of the database alone reveals no usable key. It lives outside the database: the
 * TIXIAN_MASTER_KEY environment variable (64 hex chars) or `<data-dir>/master.key`, made on first use.
 * Every server process sharing one PostgreSQL must be given the same master key.
 */
export function loadMasterKey(dataDir: string, fromEnv: string | undefined): Buffer {
  if (fromEnv) {
    const key = Buffer.from(fromEnv.trim(), 'hex');
    if (key.length !== 32) throw new Error('TIXIAN_MASTER_KEY must be 64 hex characters (32 bytes)');
    return key;
  }
  const file = path.join(dataDir, 'master.key');
  if (existsSync(file)) {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte hex key`);
    return key;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
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
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `sk_test_ibbT****************9KC`: enough to tell keys apart in an error, never enough to use. */
export function maskSecretKey(key: string): string {
  const clean = key.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
  if (clean.length <= 12) return clean.slice(0, 3) + '*'.repeat(Math.max(0, clean.length - 3));
  return clean.slice(0, 12) + '*'.repeat(clean.length - 15) + clean.slice(-3);
}
