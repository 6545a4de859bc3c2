import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { defaults } from '../src/config.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { buildApp } from '../src/http/app.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';

/** `/healthz` says the process is up; `/readyz` says the database answers. */
describeEngines('health probes', (engine) => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let rt: Runtime;
  let app: FastifyInstance;
  beforeAll(async () => {
    storage = await freshStorage(engine);
    rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
    app = await buildApp(rt);
  });
  afterAll(async () => {
    await app?.close();
    await storage?.drop();
  });

  it('both answer 200 without a key while the database is reachable', async () => {
    for (const url of ['/healthz', '/readyz']) {
      const res = await app.inject({ method: 'GET', url });
      expect([url, res.statusCode, res.json()]).toEqual([url, 200, { status: 'ok' }]);
    }
  });

  it('once the database is gone, /readyz answers 503 and /healthz still 200', async () => {
    await rt.close();
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ status: 'unavailable', reason: 'database unreachable' });
    const live = await app.inject({ method: 'GET', url: '/healthz' });
    expect([live.statusCode, live.json()]).toEqual([200, { status: 'ok' }]);
  });
});
