import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { errors } from '../../domain/errors.ts';
import { hashSecretKey } from '../../security/secrets.ts';
import { extractKey } from './auth.ts';

export interface RateLimitOptions {
  /** Requests per window per secret key; 0 turns the limit off. */
  max: number;
  windowMs: number;
}

/**
 * Distinct keys counted at once. Each entry is a few hundred bytes, so the bound is ~5 MB; a key
 * pushed out restarts with a fresh window, which only ever lets a key through, never blocks one.
 */
const TRACKED_KEYS_MAX = 10_000;

/**
 * Per-key rate limit (fixed window, in-process: with N API processes a key gets N × max). It runs
 * in `preParsing`, after the auth hook (`onRequest`) has accepted the key and before the body is
 * read, and counts under the key's hash, never the key. Answered as Ping++'s SDKs recognise a rate
 * limit: HTTP 403 (Node, Python, Ruby and Java map it to RateLimitError) with `Retry-After`.
 */
export async function registerRateLimit(app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  if (options.max === 0) return;
  await app.register(rateLimit, {
    global: true,
    hook: 'preParsing',
    max: options.max,
    timeWindow: options.windowMs,
    cache: TRACKED_KEYS_MAX,
    // Only authenticated /v1 requests are counted: /healthz and the rest are not per key.
    allowList: (req: FastifyRequest) => req.principal === null,
    keyGenerator: (req: FastifyRequest) => hashSecretKey(extractKey(req) ?? ''),
    addHeadersOnExceeding: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true },
    addHeaders: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true, 'retry-after': true },
    errorResponseBuilder: (_req, context) => errors.rateLimited(Math.max(1, Math.ceil(context.ttl / 1000))),
  });
}
