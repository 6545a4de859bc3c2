import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Config } from '../config.ts';
import { createLogger } from '../logging.ts';
import { openRuntime } from '../runtime.ts';
import { engineText, storageHint } from './serve.ts';

/** What a cluster process sends its primary once it listens. */
export const LISTENING_MESSAGE = 'tixian:listening';

/** A process that dies sooner than this after its start is restarted after a growing pause. */
const STABLE_AFTER_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * How many processes `serve` runs. PostgreSQL takes writes from many connections at once, so one
 * process per core; SQLite has one writer, and more processes only wait for its lock (the bench
 * measures this), so one unless asked.
 */
export function clusterSize(config: Config, cpuMax: string | null = readCpuMax()): number {
  if (config.clusterWorkers > 0) return config.clusterWorkers;
  const postgres = Boolean(config.databaseUrl && /^postgres/i.test(config.databaseUrl));
  return postgres ? usableCores(os.availableParallelism(), cpuMax) : 1;
}

/**
 * The cores this process may use: the CPUs it may run on, capped by a cgroup CPU quota
 * (`cpu.max`, e.g. a container limited to 2 CPUs on a 64-core node). Without the cap a pod would
 * fork one process per core of its node, each with its own pool of PostgreSQL connections.
 */
export function usableCores(cpus: number, cpuMax: string | null): number {
  const m = cpuMax ? /^(\d+)\s+(\d+)/.exec(cpuMax.trim()) : null;
  const quota = m ? Math.ceil(Number(m[1]) / Number(m[2])) : Infinity;
  return Math.max(1, Math.min(cpus, quota));
}

function readCpuMax(): string | null {
  try {
    return readFileSync('/sys/fs/cgroup/cpu.max', 'utf8');
  } catch {
    return null; // not Linux, or cgroup v1: no quota known
  }
}

/**
 * The cluster's primary: migrates once (so N processes do not race to), forks `size` processes
 * that share the port (the kernel spreads the connections), prints one listening
 * line when all listen, and restarts any process that dies until it is told to stop. A process
 * that fails before it listens (the port taken, the database unreachable) stops the whole start
 * with that process's exit code: its one-line reason is already on stderr.
 */
export async function runCluster(config: Config, size: number): Promise<void> {
  const log = createLogger(config.logLevel);
  // The runtime, not the bare store: an empty database also needs its master key and platform key
  // made once, before N processes would each try.
  const rt = await openRuntime(config, { log });
  const noApps = (await rt.store.db.selectFrom('apps').select('id').limit(1).execute()).length === 0;
  await rt.close();

  let stopping = false;
  let started = false;
  const restarts = new Map<number, number>();
  const listening = new Set<number>();
  let address = '';

  const fork = (slot: number): ClusterWorker => {
    const child = cluster.fork({ TIXIAN_CLUSTER_SLOT: String(slot) });
    const bornMs = Date.now();
    child.on('message', (msg: { type?: string; address?: string }) => {
      if (msg?.type !== LISTENING_MESSAGE) return;
      address = msg.address ?? address;
      listening.add(slot);
      if (Date.now() - bornMs > STABLE_AFTER_MS) restarts.set(slot, 0);
      if (!started && listening.size === size) {
        started = true;
        announce();
      }
    });
    child.once('exit', (code, signal) => {
      listening.delete(slot);
      if (stopping) return;
      if (!started) {
        // One process could not start: neither can the others. Its reason is on stderr already.
        void stopAll().then(() => process.exit(code || 1));
        return;
      }
      const tries = (Date.now() - bornMs < STABLE_AFTER_MS ? (restarts.get(slot) ?? 0) : 0) + 1;
      restarts.set(slot, tries);
      const delayMs = Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** Math.min(tries - 1, 10));
      log.warn({ slot, child_pid: child.process.pid, code, signal, restart_in_ms: delayMs }, 'cluster process died; restarting it');
      setTimeout(() => {
        if (!stopping) children.set(slot, fork(slot));
      }, delayMs).unref();
    });
    return child;
  };

  const children = new Map<number, ClusterWorker>();
  const announce = () => {
    const role = config.role === 'all' ? '' : `; role ${config.role}`;
    console.log(`tixian listening on ${address} (${engineText(config)}; ${size} processes${role})`);
    if (noApps) console.log(`No apps yet. Create one (it prints your secret keys):\n  npx tixian apps create --name "My app"${storageHint(config)} --json`);
  };

  /** SIGTERM to every process; each drains its requests (shutdownGraceMs), then SIGKILL for stragglers. */
  const stopAll = async () => {
    stopping = true;
    const alive = [...children.values()].filter((c) => c.process.exitCode === null && c.process.signalCode === null);
    const exits = alive.map((c) => new Promise<void>((resolve) => c.process.once('exit', () => resolve())));
    for (const c of alive) c.process.kill('SIGTERM');
    const force = setTimeout(() => {
      for (const c of alive) c.process.kill('SIGKILL');
    }, config.shutdownGraceMs + 1_000);
    await Promise.all(exits);
    clearTimeout(force);
  };
  const shutdown = (signal: string) => {
    if (stopping) return;
    log.info({ signal }, 'shutting down the cluster');
    void stopAll();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  // The kernel hands connections to the processes (SCHED_NONE), not the primary (round-robin): a
  // connection the primary had handed to a process that was just SIGKILLed hung for ever.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  for (let slot = 0; slot < size; slot++) children.set(slot, fork(slot));
}

