import cluster from 'node:cluster';
import path from 'node:path';
import { ConfigError, maskDatabaseUrl, type Config } from '../config.ts';
import { openRuntime } from '../runtime.ts';
import { buildApp } from '../http/app.ts';
import type { Worker } from '../workers.ts';
import { runCluster, clusterSize, LISTENING_MESSAGE } from './cluster.ts';

/**
 * `tixian serve`: migrate, listen, run the workers. On SIGTERM/SIGINT: stop accepting, let
 * in-flight requests finish (bounded by shutdownGraceMs), stop the workers, close the database.
 * With more than one process (`--workers N`) this process is the cluster's primary: it migrates,
 * forks N processes that each do the above on the shared port, and restarts any that dies.
 */
export async function serve(config: Config): Promise<void> {
  if (config.role === 'worker' && !config.workers) {
    // Nothing would run (no API, no workers) while /readyz says ready: a shared TIXIAN_WORKERS=0
    // meant for API processes would stop every payout without a word.
    throw new ConfigError('--role worker (TIXIAN_ROLE) with --no-workers (TIXIAN_WORKERS=0) would run nothing: a worker-role process runs only the payout worker and webhook dispatcher; drop one of the two');
  }
  if (cluster.isPrimary && clusterSize(config) > 1) return runCluster(config, clusterSize(config));
  if (!cluster.isWorker) return serveOne(config);
  return serveOne(config).catch((err: unknown) => {
    // A cluster process that cannot start must end once main() has said why (exit code 2 for an
    // operator's mistake): its channel to the primary would otherwise keep it alive for ever.
    cluster.worker?.disconnect();
    throw err;
  });
}

async function serveOne(config: Config): Promise<void> {
  const rt = await openRuntime(config, { migrate: !cluster.isWorker });
  const app = await buildApp(rt);
  let workers: Worker = { stop: async () => {} };

  let stopping = false;
  // A response sent while stopping closes its connection: a keep-alive client whose request was in
  // flight would otherwise hold the server open until keepAliveTimeout.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (stopping) reply.header('connection', 'close');
    done(null, payload);
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
    // A cluster process ends when its work is done; its channel to the primary would keep it alive.
    if (cluster.isWorker) cluster.worker?.disconnect();
  };
  // Before listening: a signal at any moment after the address is printed is a graceful stop.
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  let address: string;
  try {
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await workers.stop();
    await rt.close();
    throw listenError(err, config) ?? err;
  }
  // In a cluster the primary says where the processes listen, once all of them do.
  if (cluster.isWorker) process.send?.({ type: LISTENING_MESSAGE, address });
  else {
    console.log(`tixian listening on ${address} (${engineText(config)}${config.role === 'all' ? '' : `; role ${config.role}`})`);
    const apps = await rt.store.db.selectFrom('apps').select('id').limit(1).execute();
    if (apps.length === 0) {
      console.log(`No apps yet. Create one (it prints your secret keys):\n  npx tixian apps create --name "My app"${storageHint(config)} --json`);
    }
  }
  // Loaded once the first answer can be given: the workers bring the HTTP client (undici, a sixth
  // of all modules loaded) that the API itself never needs.
  if (config.workers && config.role !== 'api' && !stopping) {
    const { startWorkers } = await import('../workers.ts');
    if (!stopping) workers = startWorkers(rt);
  }
}

export function engineText(config: Config): string {
  return config.databaseUrl && /^postgres/i.test(config.databaseUrl) ? 'PostgreSQL' : `SQLite in ${config.dataDir}`;
}

/**
 * The storage flags another command needs to reach this server's data from any directory: the
 * database and the master key that opens its secrets (absolute paths; the password masked).
 */
export function storageHint(config: Config): string {
  const quote = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  let hint = ` --data-dir ${quote(path.resolve(config.dataDir))}`;
  if (config.databaseUrl) hint = ` --database-url ${quote(maskDatabaseUrl(config.databaseUrl))}` + hint;
  if (config.masterKeyFile) hint += ` --master-key-file ${quote(path.resolve(config.masterKeyFile))}`;
  return hint;
}

/** A listen failure the operator can fix (the port taken, a privileged port, a foreign address). */
function listenError(err: unknown, config: Config): ConfigError | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const at = `${config.host}:${config.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new ConfigError(`cannot listen on ${at}: the address is already in use; stop the other process or choose another --port / TIXIAN_PORT`);
    case 'EACCES':
      return new ConfigError(`cannot listen on ${at}: permission denied (ports below 1024 need privileges); choose another --port / TIXIAN_PORT`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError(`cannot listen on ${at}: no such local address; set --host / TIXIAN_HOST to an address of this machine (127.0.0.1, 0.0.0.0)`);
    default:
      return null;
  }
}
