import { verify, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime } from '../../runtime.ts';
import { seconds } from '../../clock.ts';
import { errors } from '../../domain/errors.ts';
import { signaturePolicy } from '../../services/app_settings.ts';
import { BoundedCache } from '../../domain/bounded-cache.ts';
import { PLATFORM_SIGNATURE_HEADER } from '../../security/platform-key.ts';
import { cachedSigningKeyFor, signingKeyFor, type SigningKey } from '../../security/signing-keys.ts';
import { sha256Base64 } from '../../security/secrets.ts';
import { sharedSignPool, signOnLoop } from '../../security/sign-pool.ts';
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
  // Callback style: the common case (a GET without a signature) passes without a promise.
  app.addHook('preValidation', (req, _reply, done) => {
    if (!needsPrincipal(req)) return done();
    const principal = req.principal;
    if (!principal) return done(errors.missingApiKey()); // the auth hook answers first; never skip the check
    const appId = (req.params as { app?: string } | undefined)?.app;
    if (appId === undefined) return done();
    const mutating = req.method === 'POST' || req.method === 'PUT';
    const signature = req.headers[SIGNATURE_HEADER];
    const signed = signature !== undefined && signature !== '';
    if (!signed && !mutating) return done();
    checkRequest(rt, req, principal.livemode, appId, mutating, signed ? signature : undefined).then(
      () => done(),
      (err: unknown) => done(err as Error),
    );
  });
}

async function checkRequest(
  rt: Runtime,
  req: FastifyRequest,
  livemode: boolean,
  appId: string,
  mutating: boolean,
  signature: string | string[] | undefined,
): Promise<void> {
  const policy = await signaturePolicy(rt, appId);
  if (!policy) return; // the auth hook has answered 404 for unknown apps already
  const required = mutating && (livemode ? policy.requireLive : policy.requireTest);
  if (signature === undefined) {
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
  // Signatures are made by worker threads when the process has a spare core (sign-pool.ts); with
  // none, on the event loop a bounded share per turn, and with the key in cache without a promise.
  const pool = sharedSignPool();

  /** Signs, sets the header, and hands the bytes on as the payload (no second UTF-8 encoding). */
  const signInto = (reply: FastifyReply, key: SigningKey, bytes: Buffer, payload: unknown, done: OnSendDone): void => {
    // Only answers that can come again are remembered: reads and errors. A write's answer carries
    // a new object or a new state, so it never does, and remembering each one kept ~0.5 KB per
    // write alive long enough to reach V8's old space (a full collection every ~2 s under creates,
    // ~8 ms each, measured).
    const repeats = reply.request.method === 'GET' || reply.statusCode >= 400;
    const memoKey = repeats ? key.kid + ':' + sha256Base64(bytes) : '';
    const known = repeats ? memo.get(memoKey) : undefined;
    const answer = (signature: string) => {
      if (repeats) memo.set(memoKey, signature);
      reply.header(PLATFORM_SIGNATURE_HEADER, signature);
      done(null, payload === null || payload === undefined ? payload : bytes);
    };
    if (known !== undefined) {
      reply.header(PLATFORM_SIGNATURE_HEADER, known);
      return done(null, payload === null || payload === undefined ? payload : bytes);
    }
    if (!key.privateKey || !pool.hasThreads) {
      // On the event loop, a bounded share per turn (sign-pool.ts: new connections are accepted between turns).
      return signOnLoop(() => key.sign(bytes), (err, signature) => (err ? done(err) : answer(signature!)));
    }
    pool.sign(key.privateKey, bytes).then(answer, (err: unknown) => done(err as Error));
  };

  app.addHook('onSend', (req, reply, payload, done) => {
    // JSON answers reach onSend as strings; a stream (none in this API) could not be signed up front.
    const bytes =
      typeof payload === 'string' ? Buffer.from(payload, 'utf8')
      : Buffer.isBuffer(payload) ? payload
      : payload === null || payload === undefined ? EMPTY
      : null;
    if (bytes === null) return done(null, payload);
    const accountId = req.principal?.accountId ?? null;
    const key = cachedSigningKeyFor(rt, accountId);
    if (key) return signInto(reply, key, bytes, payload, done);
    signingKeyFor(rt, accountId).then(
      (read) => signInto(reply, read, bytes, payload, done),
      (err: unknown) => {
        // The database went away between the answer and its signature (a PostgreSQL restart). The
        // answer stands, unsigned (a verifying SDK refuses it, as it would a 500): passed on as an
        // error it would become a second one, answered outside Ping++'s error shape.
        req.log.warn({ err }, 'response left unsigned: the signing key could not be read');
        done(null, payload);
      },
    );
  });
}

type OnSendDone = (err: Error | null, payload?: unknown) => void;
