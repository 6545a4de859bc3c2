import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Runtime } from '../runtime.ts';

/** A readiness probe that waits longer than this is a database that is not ready. */
const READY_TIMEOUT_MS = 2_000;

/**
 * Probes for a load balancer or an orchestrator, outside /v1 and without auth:
 * - `/healthz` (live): the process is up and its event loop answers. It never touches the
 *   database, so a database outage does not make an orchestrator restart every healthy process.
 * - `/readyz` (ready): the database answers a query within READY_TIMEOUT_MS; 503 otherwise, so a
 *   load balancer sends traffic elsewhere until it is back. While shutting down both answer 503.
 */
export function registerHealth(app: FastifyInstance, rt: Runtime): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (req, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`database did not answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([sql`select 1`.execute(rt.store.db), timeout]);
      return { status: 'ok' };
    } catch (err) {
      req.log.warn({ err }, 'readiness check failed: database unreachable');
      return reply.status(503).send({ status: 'unavailable', reason: 'database unreachable' });
    } finally {
      clearTimeout(timer);
    }
  });
}
