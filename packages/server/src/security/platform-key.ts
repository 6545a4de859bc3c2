import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { Db } from '../store/db.ts';
import type { SecretBox } from './secrets.ts';

const SETTING = 'platform_rsa_private_key';

/** The header that carries the platform key's signature, on webhook requests and API responses alike. */
export const PLATFORM_SIGNATURE_HEADER = 'x-pingplusplus-signature';

/**
 * The platform key pair signs webhook bodies and API responses (X-Pingplusplus-Signature).
 * Made on first start, kept in the database sealed with the master key, so every process
 * sharing the database signs with the same key. Parsed once into KeyObjects: passing PEM text
 * per call costs ~600 µs of parsing on top of the ~250 µs signature (PERFORMANCE.md).
 */
export class PlatformKey {
  private constructor(
    readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
    readonly publicKeyPem: string,
  ) {}

  static async load(db: Db, box: SecretBox): Promise<PlatformKey> {
    const row = await db.selectFrom('settings').select('value').where('key', '=', SETTING).executeTakeFirst();
    if (row) return PlatformKey.fromPem(box.open(row.value));
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    // Two processes may race on first start; the first insert wins and both use its key.
    await db.insertInto('settings').values({ key: SETTING, value: box.seal(pem) }).onConflict((oc) => oc.column('key').doNothing()).execute();
    const stored = await db.selectFrom('settings').select('value').where('key', '=', SETTING).executeTakeFirstOrThrow();
    return PlatformKey.fromPem(box.open(stored.value));
  }

  static fromPem(privatePem: string): PlatformKey {
    const privateKey = createPrivateKey(privatePem);
    const publicKey = createPublicKey(privateKey);
    return new PlatformKey(privateKey, publicKey, publicKey.export({ type: 'spki', format: 'pem' }).toString());
  }

  /** base64 RSASSA-PKCS1-v1_5 SHA-256 of exactly these bytes. */
  sign(body: string | Buffer): string {
    return sign('sha256', typeof body === 'string' ? Buffer.from(body, 'utf8') : body, this.privateKey).toString('base64');
  }
}
