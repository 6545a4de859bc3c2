import type { FastifyRequest } from 'fastify';
import type { Principal } from '../services/accounts.ts';
import type { Scope } from '../services/common.ts';

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

/** The app scope of a `/v1/apps/:app/…` request; the auth plugin has already checked ownership. */
export function scopeOf(req: FastifyRequest): Scope {
  const principal = req.principal;
  if (!principal) throw new Error('scopeOf called on an unauthenticated request');
  const app = (req.params as { app?: string }).app;
  if (!app) throw new Error('scopeOf called on a route without :app');
  return { accountId: principal.accountId, app, livemode: principal.livemode, requestId: req.id };
}
