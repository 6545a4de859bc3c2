import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignatureVerificationError, TixianError } from './errors.ts';
import { parsePublicKey, verifyBytes, type PublicKeyInput } from './signing.ts';
import type { Event } from './types.ts';

/**
 * Webhook verification (§14). Signatures are over the raw request body — the exact bytes that
 * arrived, never a re-serialised object (the most common webhook bug; stripe-node #341). So every
 * function here takes the body as a Buffer or string and refuses a parsed object, and the raw-body
 * helpers below get those bytes out of Node's `http`, Express and Fastify.
 *
 * The package exports this module as the namespace `webhooks` (`import { webhooks } from
 * '@tixian/sdk'`, also `tixian.webhooks`): every value exported here is part of it.
 */

/** The body exactly as received. A string is taken as its UTF-8 bytes. */
export type RawBody = string | Uint8Array;

/** A header as Node (`req.headers[name]`) or fetch (`headers.get(name)`) hands it over. */
export type HeaderValue = string | string[] | null | undefined;

/** Node's `IncomingHttpHeaders` (lower-case keys) or a fetch `Headers`. */
export type HeadersLike = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

/** Ping++'s webhook signature header (case-insensitive on the wire; Node lower-cases it). */
export const SIGNATURE_HEADER = 'x-pingplusplus-signature';

/**
 * Whether `signatureHeader` (X-Pingplusplus-Signature: base64 RSA-SHA256 of the body) was made by
 * the platform key whose public half is `publicKey` (PEM, as shown in the dashboard or printed by
 * `tixian apps show`). A missing or malformed signature is `false`; a malformed key throws.
 */
export function verify(rawBody: RawBody, signatureHeader: HeaderValue, publicKey: PublicKeyInput): boolean {
  const bytes = bodyBytes(rawBody);
  return verified(bytes, single(signatureHeader), parsePublicKey(publicKey));
}

function verified(bytes: Buffer, signature: string | undefined, key: KeyObject): boolean {
  return signature !== undefined && verifyBytes(bytes, signature, key);
}

/**
 * Verifies, then parses the body into a typed event: `event.type` narrows `event.data.object`.
 * Throws SignatureVerificationError when the signature does not verify. Dedupe on `event.id`:
 * a delivery may repeat.
 */
export function constructEvent(rawBody: RawBody, signatureHeader: HeaderValue, publicKey: PublicKeyInput): Event {
  const bytes = bodyBytes(rawBody);
  const signature = single(signatureHeader);
  if (!verified(bytes, signature, parsePublicKey(publicKey))) {
    throw new SignatureVerificationError({
      message: signature ? 'X-Pingplusplus-Signature does not match the body' : 'no X-Pingplusplus-Signature header',
      type: 'signature_verification_error',
    });
  }
  return parseEvent(bytes);
}

export interface StandardVerifyOptions {
  /** Largest accepted distance between `webhook-timestamp` and now, in seconds. Default 300. */
  toleranceS?: number;
  /** Now, in Unix seconds (for tests). */
  nowS?: number;
}

const DEFAULT_TOLERANCE_S = 300;

/**
 * Standard Webhooks (standardwebhooks.com) signatures, for endpoints configured with a `whsec_…`
 * secret: `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>` entries over
 * `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the base64-decoded part of the secret
 * after `whsec_`. Entries are compared in constant time; a timestamp further than `toleranceS`
 * from now (either way) is refused, so a captured delivery cannot be replayed later.
 */
export function verifyStandard(rawBody: RawBody, headers: HeadersLike, secret: string, options: StandardVerifyOptions = {}): boolean {
  return checkStandard(bodyBytes(rawBody), headers, secret, options) === null;
}

/** verifyStandard, then the typed event; throws SignatureVerificationError naming the reason. */
export function constructStandardEvent(rawBody: RawBody, headers: HeadersLike, secret: string, options: StandardVerifyOptions = {}): Event {
  const bytes = bodyBytes(rawBody);
  const failure = checkStandard(bytes, headers, secret, options);
  if (failure !== null) throw new SignatureVerificationError({ message: failure, type: 'signature_verification_error' });
  return parseEvent(bytes);
}

/** null when valid, else why not. */
function checkStandard(bytes: Buffer, headers: HeadersLike, secret: string, options: StandardVerifyOptions): string | null {
  const key = standardKey(secret);
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) return 'missing webhook-id, webhook-timestamp or webhook-signature header';
  if (!/^\d{1,12}$/.test(timestamp)) return 'webhook-timestamp is not Unix seconds';
  const toleranceS = options.toleranceS ?? DEFAULT_TOLERANCE_S;
  const nowS = options.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - Number(timestamp)) > toleranceS) return `webhook-timestamp is more than ${toleranceS} s from now`;
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(bytes).digest();
  for (const entry of signatures.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma === -1 || entry.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(entry.slice(comma + 1), 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return null;
  }
  return 'no v1 signature in webhook-signature matches the body';
}

function standardKey(secret: string): Buffer {
  if (typeof secret !== 'string') throw new TypeError('the Standard Webhooks secret must be a "whsec_…" string');
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
  if (key.length === 0) throw new TypeError('the Standard Webhooks secret is empty; expected "whsec_<base64>"');
  return key;
}

function parseEvent(bytes: Buffer): Event {
  let event: unknown;
  try {
    event = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new TixianError({ message: 'the webhook body is not JSON', type: 'invalid_event', cause: err });
  }
  const e = event as { object?: unknown; type?: unknown; data?: { object?: unknown } } | null;
  if (e === null || typeof e !== 'object' || e.object !== 'event' || typeof e.type !== 'string' || typeof e.data?.object !== 'object') {
    throw new TixianError({ message: 'the webhook body is not an event object', type: 'invalid_event' });
  }
  return event as Event;
}

function bodyBytes(rawBody: RawBody): Buffer {
  if (typeof rawBody === 'string') return Buffer.from(rawBody, 'utf8');
  if (rawBody instanceof Uint8Array) return Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  throw new TypeError(
    'webhook verification needs the raw request body (a Buffer or string), not a parsed object: ' +
      'use express.raw({ type: "application/json" }), webhooks.fastifyRawBody(app) or webhooks.readRawBody(req)',
  );
}

function single(value: HeaderValue): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') return single((headers as { get(n: string): string | null }).get(name));
  const record = headers as Record<string, string | string[] | undefined>;
  const direct = record[name];
  if (direct !== undefined) return single(direct);
  for (const [k, v] of Object.entries(record)) if (k.toLowerCase() === name) return single(v);
  return undefined;
}

// ---------------------------------------------------------------- raw bodies

/** Node's IncomingMessage, seen structurally: a byte stream, maybe already read by a body parser. */
export interface IncomingLike extends AsyncIterable<Uint8Array | string> {
  body?: unknown;
}

export interface ReadRawBodyOptions {
  /** Refuse bodies larger than this (answer 413). Default 1 MiB; events are a few KiB. */
  limitBytes?: number;
}

const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * The request body as a Buffer, for Node's `http` (reads the stream) and Express with
 * `express.raw({ type: 'application/json' })` (returns the Buffer it left in `req.body`; a plain
 * Uint8Array or a string left there by another raw parser is taken as well).
 * Throws a TypeError when a JSON body parser got there first: the bytes are gone.
 */
export async function readRawBody(req: IncomingLike, options: ReadRawBodyOptions = {}): Promise<Buffer> {
  const limit = options.limitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (req.body !== undefined) {
    if (req.body instanceof Uint8Array || typeof req.body === 'string') return bodyBytes(req.body);
    throw new TypeError('req.body was already parsed by a JSON body parser; mount express.raw({ type: "application/json" }) on the webhook route instead');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
    size += buf.length;
    if (size > limit) throw new RangeError(`webhook body larger than ${limit} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}

/** The parts of a Fastify instance `fastifyRawBody` uses (no dependency on fastify itself). */
export interface FastifyLike {
  hasContentTypeParser(contentType: string): boolean;
  removeContentTypeParser(contentType: string): void;
  addContentTypeParser(
    contentType: string,
    options: { parseAs: 'buffer'; bodyLimit?: number },
    parser: (request: never, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => void,
  ): void;
}

/**
 * Makes `request.body` the raw Buffer for `application/json` in this Fastify context. Call it
 * inside an encapsulated plugin that holds only the webhook route, so the rest of the app keeps
 * Fastify's JSON parser:
 *
 *   app.register(async (scope) => {
 *     webhooks.fastifyRawBody(scope);
 *     scope.post('/webhooks/pingpp', async (req) => {
 *       const event = webhooks.constructEvent(req.body as Buffer, req.headers['x-pingplusplus-signature'], PUBLIC_KEY);
 *       …
 *     });
 *   });
 */
export function fastifyRawBody(app: FastifyLike, options: { bodyLimit?: number } = {}): void {
  if (app.hasContentTypeParser('application/json')) app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', ...(options.bodyLimit !== undefined ? { bodyLimit: options.bodyLimit } : {}) },
    (_request, body, done) => done(null, body),
  );
}
