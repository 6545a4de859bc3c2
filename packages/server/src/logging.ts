import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Fields that must never reach a log line: credentials (secret keys, the Authorization header,
 * request and webhook signatures) and payee data (card/account numbers, names, WeChat open ids).
 * Request and webhook bodies are never logged whole; these paths catch them wherever an object
 * holding one is logged anyway (an error's properties, a channel answer, headers).
 */
const SENSITIVE_KEYS = [
  'authorization',
  'pingplusplus-signature',
  'x-pingplusplus-signature',
  'secret_key',
  'secret_key_test',
  'secret_key_live',
  'key_test',
  'key_live',
  'master_key',
  'account',
  'card_number',
  'name',
  'user_name',
  'open_id',
  'openid',
  'recipient',
  // Node's clientError (a malformed or oversized request head) carries the raw bytes, headers included.
  'rawPacket',
  // The console: operator passwords, session cookies and CSRF tokens.
  'password',
  'password_hash',
  'cookie',
  'set-cookie',
  'x-csrf-token',
  'csrf_token',
] as const;

/** How deep below the top of a log object a sensitive key is still found (pino redact has no `**`). */
const REDACT_DEPTH = 4;

export const REDACTED = '[redacted]';

/** pino `redact` paths: every sensitive key at the top and up to REDACT_DEPTH levels below. */
export function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of SENSITIVE_KEYS) {
    const leaf = /^[A-Za-z_]+$/.test(key) ? `.${key}` : `["${key}"]`;
    for (let depth = 0; depth <= REDACT_DEPTH; depth++) {
      const prefix = Array.from({ length: depth }, () => '*').join('.');
      paths.push(depth === 0 ? leaf.replace(/^\./, '') : prefix + leaf);
    }
  }
  return paths;
}

/**
 * The last line of defence: a secret key inside any text of a line (an error message, a stack, a
 * URL) is cut to its mode before the line is written. Keys are `sk_test_`/`sk_live_` + base62.
 */
const SECRET_KEY_PATTERN = /\b(sk_(?:test|live)_)[A-Za-z0-9]+/g;
export const scrubSecretKeys = (line: string) => line.replace(SECRET_KEY_PATTERN, '$1***');

/** The process logger: JSON lines, sensitive fields redacted. Tests pass a destination to read the lines. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: redactPaths(), censor: REDACTED },
    hooks: { streamWrite: scrubSecretKeys },
  };
  return destination ? pino(options, destination) : pino(options);
}
