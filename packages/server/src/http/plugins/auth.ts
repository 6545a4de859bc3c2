import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors } from '../../domain/errors.ts';
import { maskSecretKey } from '../../security/secrets.ts';
import type { Authenticator } from '../../services/accounts.ts';

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

export function registerAuth(app: FastifyInstance, auth: Authenticator): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/v1/') && req.url !== '/v1') return;
    const key = extractKey(req);
    if (!key) throw errors.missingApiKey();
    const principal = await auth.principalFor(key);
    if (!principal) throw errors.invalidApiKey(maskSecretKey(key));
    req.principal = principal;
    const appId = (req.params as { app?: string } | undefined)?.app;
    if (appId !== undefined) {
      const owner = await auth.appOwner(appId);
      if (owner !== principal.accountId) throw errors.notFound('app', appId, 'app');
    }
  });
}
