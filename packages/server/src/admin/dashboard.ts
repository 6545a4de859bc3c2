import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';

/**
 * The console's build: the copy the build puts in the server's own dist/dashboard (all an installed
 * tarball has), else packages/dashboard/dist, from packages/server/{src,dist}/admin/ (the same
 * depth in both; the tests run src/).
 */
const SHIPPED_DIST = fileURLToPath(new URL('../dashboard/', import.meta.url));
export const DASHBOARD_DIST = existsSync(SHIPPED_DIST + 'index.html') ? SHIPPED_DIST : fileURLToPath(new URL('../../../dashboard/dist/', import.meta.url));

/**
 * The console's static files under /dashboard (same process, same origin as /admin, so the
 * SameSite=Strict session cookie and the CSRF token work without CORS). `/` redirects there.
 * Client-side routes (/dashboard/withdrawals …) answer index.html. Hashed assets are cached for a
 * year; index.html never, so a new build is picked up at the next load.
 */
export async function dashboardRoutes(app: FastifyInstance, dist = DASHBOARD_DIST): Promise<void> {
  app.get('/', { schema: { hide: true } }, (_req, reply) => reply.redirect('/dashboard/'));
  if (!existsSync(dist + 'index.html')) {
    const notBuilt = (_req: unknown, reply: FastifyReply) =>
      reply.code(404).type('text/plain; charset=utf-8').send('The console is not built: run `npm run build` (npm install does it).\n');
    // `/dashboard/*` does not match `/dashboard/` itself, where `/` redirects.
    app.get('/dashboard/', { schema: { hide: true } }, notBuilt);
    app.get('/dashboard/*', { schema: { hide: true } }, notBuilt);
    return;
  }
  await app.register(fastifyStatic, {
    root: dist,
    prefix: '/dashboard/',
    wildcard: false,
    index: false,
    cacheControl: false,
    setHeaders: (res, filePath) => {
      res.setHeader('cache-control', filePath.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const sendIndex = (_req: unknown, reply: FastifyReply) =>
    reply
      .header('cache-control', 'no-cache')
      .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
      .header('x-frame-options', 'DENY')
      .sendFile('index.html');
  // The router ignores trailing slashes: this also answers /dashboard.
  app.get('/dashboard/', { schema: { hide: true } }, sendIndex);
  app.get('/dashboard/*', { schema: { hide: true } }, async (req, reply) => {
    const rest = (req.params as { '*': string })['*'];
    // Real files (assets, favicon) first; anything else is a client-side route.
    if (rest.includes('.') && existsSync(dist + rest.replace(/\.\.+/g, ''))) return reply.sendFile(rest);
    return sendIndex(req, reply);
  });
}
