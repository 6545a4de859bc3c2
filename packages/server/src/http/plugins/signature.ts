import { createHash, verify, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../../runtime.ts';
import { seconds } from '../../clock.ts';
import { errors } from '../../domain/errors.ts';
import { signaturePolicy } from '../../services/app_settings.ts';
import { BoundedCache } from '../../domain/bounded-cache.ts';
import { PLATFORM_SIGNATURE_HEADER } from '../../security/platform-key.ts';
import { signingKeyFor, type SigningKey } from '../../security/signing-keys.ts';
import { sharedSignPool } from '../../security/sign-pool.ts';
import { needsPrincipal } from './auth.ts';

const SIGNATURE_HEADER = 'pingplusplus-signature';
const TIMESTAMP_HEADER = 'pingplusplus-request-timestamp';
// base64 of an 8192-bit signature (the largest key we accept) is 1368 characters.
const SIGNATURE_MAX_CHARS = 2048;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const TIMESTAMP = /^[0-9]{1,12}$/;
const EMPTY = Buffer.alloc(0);

/**
 * Request signatures (§3): base64 RSA-SHA256 (PKCS#1 v1.5) over raw body + request target +
 * timestamp header, checked with the app's merchant public key.
 *
 * - POST/PUT must be signed when the app requires it for the key's mode; GET/DELETE are verified
 *   when they carry a signature (every SDK with a private key signs them) but never required to.
 * - A signature on an app without a key is ignored, as Ping++ does.
 * - Runs at preValidation: after body parsing (the raw bytes exist) and auth (the mode and the app
 *   are known), before schema validation and the handler, so a rejected request changes nothing.
 * - Routes without an `:app` (GET /v1/events/:id) have no app key to check against and pass as
 *   they are: Ping++ keeps keys per account, tixian per app.
 */
export function registerRequestSignature(app: FastifyInstance, rt: Runtime): void {
  app.addHook('preValidation', async (req) => {
    if (!needsPrincipal(req)) return;
    const principal = req.principal;
    if (!principal) throw errors.missingApiKey(); // the auth hook answers first; never skip the check
    const appId = (req.params as { app?: string } | undefined)?.app;
    if (appId === undefined) return;
    const mutating = req.method === 'POST' || req.method === 'PUT';
    const signature = req.headers[SIGNATURE_HEADER];
    const signed = signature !== undefined && signature !== '';
    if (!signed && !mutating) return;

    const policy = await signaturePolicy(rt, appId);
    if (!policy) return; // the auth hook has answered 404 for unknown apps already
    const required = mutating && (principal.livemode ? policy.requireLive : policy.requireTest);
    if (!signed) {
      if (required) throw errors.signatureMissing();
      return;
    }
    if (!policy.key) {
      // A switch without a key cannot be set through the services; if a hand-edited row has one,
      // fail closed rather than accept what cannot be checked.
      if (required) throw errors.signatureInvalid();
      return;
    }
    checkSignature(req, signature, policy.key, rt);
  });
}

function checkSignature(req: FastifyRequest, signature: string | string[], key: KeyObject, rt: Runtime): void {
  if (typeof signature !== 'string' || signature.length > SIGNATURE_MAX_CHARS || !BASE64.test(signature)) {
    throw errors.signatureInvalid();
  }
  const timestamp = req.headers[TIMESTAMP_HEADER];
  if (typeof timestamp !== 'string' || !TIMESTAMP.test(timestamp)) throw errors.timestampInvalid();

  // The target exactly as on the wire (Node's parser refuses non-ASCII there, so it is ASCII).
  // pingpp-nodejs appends `?` to every GET/DELETE; accept its signature with or without it.
  const target = req.raw.url ?? req.url;
  const body = req.rawBody ?? EMPTY;
  const sig = Buffer.from(signature, 'base64');
  const ok =
    verifies(body, target, timestamp, sig, key) || (target.endsWith('?') && verifies(body, target.slice(0, -1), timestamp, sig, key));
  if (!ok) throw errors.signatureInvalid();

  // Checked after the signature, so a merchant whose clock is off learns that, not "invalid signature".
  if (Math.abs(seconds(rt.clock) - Number(timestamp)) > rt.config.signatureToleranceS) {
    throw errors.timestampExpired(rt.config.signatureToleranceS);
  }
}

function verifies(body: Buffer, target: string, timestamp: string, sig: Buffer, key: KeyObject): boolean {
  try {
    return verify('sha256', Buffer.concat([body, Buffer.from(target + timestamp, 'utf8')]), key, sig);
  } catch {
    return false; // a signature of the wrong length for the key
  }
}

// Identical bodies (health checks, polled objects, repeated error answers) get identical
// signatures (PKCS#1 v1.5 is deterministic): a SHA-256 costs ~1 µs, an RSA sign ~250 µs.
const SIGNED_MEMO_MAX = 1024;

/**
 * Response signatures (§1): every body, success or error, carries `X-Pingplusplus-Signature`,
 * base64 RSA-SHA256 of the exact bytes sent, with the platform key that also signs webhooks.
 * pingpp-java rejects a 2xx answer without one when `Pingpp.verifyPublicKey` is set.
 */
export function registerResponseSignature(app: FastifyInstance, rt: Runtime): void {
  if (!rt.config.signResponses) return;
  const memo = new BoundedCache<string, string>(SIGNED_MEMO_MAX);
  // The account's own key when it has one (signing-keys.ts), else the platform key; the memo is per key.
  // Signatures are made by worker threads when the process has a spare core (sign-pool.ts).
  const pool = sharedSignPool();
  const signBody = async (key: SigningKey, bytes: Buffer): Promise<string> => {
    const memoKey = key.kid + ':' + createHash('sha256').update(bytes).digest('base64');
    const known = memo.get(memoKey);
    if (known !== undefined) return known;
    const signature = key.privateKey ? await pool.sign(key.privateKey, bytes) : key.sign(bytes);
    memo.set(memoKey, signature);
    return signature;
  };

  app.addHook('onSend', async (req, reply, payload) => {
    let key: SigningKey;
    try {
      key = await signingKeyFor(rt, req.principal?.accountId ?? null);
    } catch (err) {
      // The database went away between the answer and its signature (a PostgreSQL restart). The
      // answer stands, unsigned (a verifying SDK refuses it, as it would a 500): thrown here it
      // would become a second error, answered outside Ping++'s error shape.
      req.log.warn({ err }, 'response left unsigned: the signing key could not be read');
      return payload;
    }
    // JSON answers reach onSend as strings; a stream (none in this API) could not be signed up front.
    if (typeof payload === 'string') reply.header(PLATFORM_SIGNATURE_HEADER, await signBody(key, Buffer.from(payload, 'utf8')));
    else if (Buffer.isBuffer(payload)) reply.header(PLATFORM_SIGNATURE_HEADER, await signBody(key, payload));
    else if (payload === null || payload === undefined) reply.header(PLATFORM_SIGNATURE_HEADER, await signBody(key, EMPTY));
    return payload;
  });
}
