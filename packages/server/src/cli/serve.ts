import type { Config } from '../config.ts';
import { openRuntime } from '../runtime.ts';
import { buildApp } from '../http/app.ts';
import { startWorkers, type Worker } from '../workers.ts';

/**
 * `tixian serve`: migrate, listen, run the workers. On SIGTERM/SIGINT: stop accepting, let
 * in-flight requests finish (bounded by shutdownGraceMs), stop the workers, close the database.
 */
export async function serve(config: Config): Promise<void> {
  const rt = await openRuntime(config);
  const app = await buildApp(rt);
  let workers: Worker = { stop: async () => {} };

  let stopping = false;
  // A response sent while stopping closes its connection: a keep-alive client whose request was in
  // flight would otherwise hold the server open until keepAliveTimeout.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (stopping) reply.header('connection', 'close');
    return payload;
  });
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    rt.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      rt.log.error('shutdown grace period over; exiting');
      process.exit(1);
    }, config.shutdownGraceMs);
    force.unref();
    await app.close();
    await workers.stop();
    await rt.close();
    clearTimeout(force);
  };
  // Before listening: a signal at any moment after the address is printed is a graceful stop.
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  const address = await app.listen({ host: config.host, port: config.port });
  const engine = rt.store.engine === 'sqlite' ? `SQLite in ${config.dataDir}` : 'PostgreSQL';
  console.log(`tixian listening on ${address} (${engine})`);
  const apps = await rt.store.db.selectFrom('apps').select('id').limit(1).execute();
  if (apps.length === 0) {
    const storage = config.databaseUrl ? ` --database-url '${config.databaseUrl.replace(/:[^:@/]*@/, ':***@')}'` : ` --data-dir ${config.dataDir}`;
    console.log(`No apps yet. Create one (it prints your secret keys):\n  npx tixian apps create --name "My app"${storage} --json`);
  }
  if (config.workers && !stopping) workers = startWorkers(rt);
}
