import type { FastifyRequest } from 'fastify';
import type { Principal } from '../services/accounts.ts';
import type { Scope, WriteOptions } from '../services/common.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** The body bytes exactly as received: request signatures are verified over these. */
    rawBody: Buffer | null;
  }
}

export function language(req: FastifyRequest): 'zh' | 'en' {
  const header = req.headers['accept-language'];
  return typeof header === 'string' && header.trim().toLowerCase().startsWith('en') ? 'en' : 'zh';
}

/** The key's account and mode, for routes that are not app-scoped (`/v1/events/…`). */
export function accountScopeOf(req: FastifyRequest): Pick<Scope, 'accountId' | 'livemode'> {
  const principal = req.principal;
  if (!principal) throw new Error('a scoped route was reached by an unauthenticated request');
  return { accountId: principal.accountId, livemode: principal.livemode };
}

/** The app scope of a `/v1/apps/:app/…` request; the auth plugin has already checked ownership. */
export function scopeOf(req: FastifyRequest): Scope {
  const app = (req.params as { app?: string }).app;
  if (!app) throw new Error('scopeOf called on a route without :app');
  const principal = req.principal;
  if (!principal) throw new Error('a scoped route was reached by an unauthenticated request');
  return { accountId: principal.accountId, livemode: principal.livemode, app, requestId: req.id };
}

/**
 * What the API's write routes pass their service: the outcome is taken at the batch's COMMIT, so
 * the answer is built and signed while the batch's WAL sync is in flight; app.ts's last hook sends
 * it once that commit is durable (store/group-commit.ts).
 */
export const ANSWER_AT_COMMIT: WriteOptions = Object.freeze({ answerAt: 'committed' });
