import { createPrivateKey, createPublicKey, KeyObject, sign, verify } from 'node:crypto';

/**
 * RSA signatures of the Ping++ protocol, all RSASSA-PKCS1-v1_5 with SHA-256, base64:
 * - requests (§3): over `raw_body + request_uri + timestamp`, header `Pingplusplus-Signature`;
 * - responses and webhooks (§1, §14): over the raw body, header `X-Pingplusplus-Signature`.
 * Keys are parsed once into KeyObjects: parsing PEM text costs more than the signature itself.
 */

export type PrivateKeyInput = string | Buffer | KeyObject;
export type PublicKeyInput = string | Buffer | KeyObject;

/** A merchant private key, PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`). */
export function parsePrivateKey(input: PrivateKeyInput): KeyObject {
  const key = isKeyObject(input) ? input : createPrivateKey(input);
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
    throw new TypeError(`privateKey must be an RSA private key, got a ${key.type} ${key.asymmetricKeyType ?? ''} key`);
  }
  return key;
}

const publicKeys = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_MAX = 64;

/** A platform public key (PEM SubjectPublicKeyInfo); PEM text is parsed once and cached. */
export function parsePublicKey(input: PublicKeyInput): KeyObject {
  if (isKeyObject(input)) return checkPublic(input);
  const pem = typeof input === 'string' ? input : input.toString('utf8');
  const cached = publicKeys.get(pem);
  if (cached) return cached;
  const key = checkPublic(createPublicKey(pem));
  if (publicKeys.size >= PUBLIC_KEY_CACHE_MAX) publicKeys.clear();
  publicKeys.set(pem, key);
  return key;
}

function checkPublic(key: KeyObject): KeyObject {
  // A private key also verifies (Node derives the public half), but passing one around is a mistake.
  if (key.type !== 'public' || key.asymmetricKeyType !== 'rsa') throw new TypeError('expected an RSA public key');
  return key;
}

function isKeyObject(v: unknown): v is KeyObject {
  return v instanceof KeyObject;
}

/** `Pingplusplus-Signature` for one request: body bytes (empty for GET/DELETE) + path with `/v1` and query + timestamp. */
export function signRequest(key: KeyObject, body: string, requestUri: string, timestampS: string): string {
  return sign('sha256', Buffer.from(body + requestUri + timestampS, 'utf8'), key).toString('base64');
}

/** Checks a base64 RSA-SHA256 signature over exactly these bytes. Malformed signatures are `false`. */
export function verifyBytes(bytes: Uint8Array, signatureB64: string, key: KeyObject): boolean {
  const signature = Buffer.from(signatureB64.trim(), 'base64');
  if (signature.length === 0) return false;
  return verify('sha256', bytes, key, signature);
}
