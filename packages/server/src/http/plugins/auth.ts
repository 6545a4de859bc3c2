import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors, type ApiError } from '../../domain/errors.ts';
import { maskSecretKey } from '../../security/secrets.ts';
import type { Authenticator, Principal } from '../../services/accounts.ts';

/**
 * Authentication (§2): `Authorization: Basic base64("<key>:")` (Node, Go, curl -u) or
 * `Authorization: Bearer <key>` (Python, PHP, Java, Ruby, C#). The key decides the mode:
 * sk_test_ sees only test objects, sk_live_ only live ones. An app of another account answers
 * 404 exactly like an app that does not exist.
 */
export function extractKey(req: FastifyRequest): string | null {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || header.length > 1024) return null;
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (!scheme || !value) return null;
  if (scheme.toLowerCase() === 'bearer') return value;
  if (scheme.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon === -1 ? decoded : decoded.slice(0, colon);
  }
  return null;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set by the auth plugin on every route under /v1: its handler runs only for a secret key's principal. */
    needsPrincipal?: boolean;
  }
}

export interface RouteRef {
  method: string;
  url: string;
}

const isV1 = (url: string) => url === '/v1' || url.startsWith('/v1/');

const guardedRoutes = new WeakMap<FastifyInstance, RouteRef[]>();

/** Every route registered on `app` that answers only with a principal (tests check each one). */
export function routesNeedingPrincipal(app: FastifyInstance): readonly RouteRef[] {
  return guardedRoutes.get(app) ?? [];
}

/**
 * Whether this request's handler needs a principal, decided by the route the router matched, never
 * by the raw target: the router decodes `%76` to `v` and accepts absolute-form targets
 * (`GET http://host/v1/...`), so a prefix test on `req.url` can be walked around.
 */
export function needsPrincipal(req: FastifyRequest): boolean {
  // The pattern test also covers a /v1 route registered before this plugin's onRoute hook: fail closed.
  // routeOptions is built anew at each read (Fastify): read it once.
  const route = req.routeOptions;
  return route.config.needsPrincipal === true || isV1(route.url ?? '');
}

export function registerAuth(app: FastifyInstance, auth: Authenticator): void {
  const guarded: RouteRef[] = [];
  guardedRoutes.set(app, guarded);
  // Runs for every route added after this point, including those of encapsulated plugins.
  app.addHook('onRoute', (route) => {
    if (!isV1(route.url)) return;
    route.config = { ...route.config, needsPrincipal: true };
    for (const method of [route.method].flat()) guarded.push({ method, url: route.url });
  });
  app.decorateRequest('principal', null);
  // Callback style: with the key and the app in the caches (nearly every request) the decision is
  // made without a promise; otherwise the database is asked.
  app.addHook('onRequest', (req, _reply, done) => {
    // A target no route matched runs no handler; under /v1 it still asks for a key first, as before.
    const required = needsPrincipal(req) || (req.is404 && isV1(req.url));
    if (!required) return done();
    const key = extractKey(req);
    if (!key) return done(errors.missingApiKey());
    const appId = (req.params as { app?: string } | undefined)?.app;
    const principal = auth.knownPrincipal(key);
    if (principal === null) return done(errors.invalidApiKey(maskSecretKey(key)));
    const owner = appId === undefined ? null : auth.knownAppOwner(appId);
    if (principal !== undefined && owner !== undefined) return done(admit(req, principal, appId, owner) ?? undefined);
    authenticate(auth, req, key, appId).then(
      (refusal) => done(refusal ?? undefined),
      (err: unknown) => done(err as Error),
    );
  });
}

/** The key's principal on the request, or the refusal: an app of another account is answered as one that does not exist. */
function admit(req: FastifyRequest, principal: Principal, appId: string | undefined, owner: string | null): ApiError | null {
  req.principal = principal;
  if (appId !== undefined && owner !== principal.accountId) return errors.notFound('app', appId, 'app');
  return null;
}

async function authenticate(auth: Authenticator, req: FastifyRequest, key: string, appId: string | undefined): Promise<ApiError | null> {
  const principal = await auth.principalFor(key);
  if (!principal) return errors.invalidApiKey(maskSecretKey(key));
  return admit(req, principal, appId, appId === undefined ? null : await auth.appOwner(appId));
}
