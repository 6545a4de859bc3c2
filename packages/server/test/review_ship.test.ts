import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../src/admin/dashboard.ts';

describe('the console without a build', () => {
  it('says so at /dashboard/, where / redirects, not only below it', async () => {
    const app = Fastify({ routerOptions: { ignoreTrailingSlash: true } });
    await app.register(async (scope) => dashboardRoutes(scope, '/nonexistent-tixian-console/'));
    try {
      expect((await app.inject({ url: '/' })).headers.location).toBe('/dashboard/');
      for (const url of ['/dashboard/', '/dashboard', '/dashboard/withdrawals']) {
        const res = await app.inject({ url });
        expect([url, res.statusCode, res.body]).toEqual([url, 404, expect.stringContaining('The console is not built')]);
      }
    } finally {
      await app.close();
    }
  });
});
