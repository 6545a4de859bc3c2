import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks (https://www.standardwebhooks.com), opt-in per endpoint, sent next to the
 * Ping++ RSA signature (which is always sent). The secret is `whsec_` + base64 of 32 random
 * bytes; the key is the decoded base64 part, and the signed content is `${id}.${timestamp}.${body}`.
 */
const STANDARD_SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 32;

export function newStandardWebhookSecret(): string {
  return STANDARD_SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

export function standardWebhookKey(secret: string): Buffer {
  if (!secret.startsWith(STANDARD_SECRET_PREFIX)) throw new Error('a Standard Webhooks secret starts with whsec_');
  const key = Buffer.from(secret.slice(STANDARD_SECRET_PREFIX.length), 'base64');
  if (key.length < 24 || key.length > 64) throw new Error('a Standard Webhooks secret holds 24 to 64 bytes');
  return key;
}

/** `v1,<base64 HMAC-SHA256>`: the value of the `webhook-signature` header. */
function standardWebhookSignature(key: Buffer, id: string, timestampS: number, body: string): string {
  const mac = createHmac('sha256', key).update(`${id}.${timestampS}.`, 'utf8').update(body, 'utf8').digest('base64');
  return `v1,${mac}`;
}

/** The three Standard Webhooks headers for one try. The id is the event id, the same on every retry. */
export function standardWebhookHeaders(key: Buffer, id: string, timestampS: number, body: string): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampS),
    'webhook-signature': standardWebhookSignature(key, id, timestampS, body),
  };
}
