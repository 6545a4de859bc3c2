import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';

export type Engine = 'sqlite' | 'postgres';

/** This checkout's `tixian` command: what a run uses unless it names another build (`Storage.bin`, `--against`). */
const TIXIAN = fileURLToPath(new URL('../../bin/tixian.mjs', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const CLI_TIMEOUT_MS = 60_000;
const OUTPUT_KEEP_CHARS = 16 * 1024;

export interface Storage {
  engine: Engine;
  dataDir: string;
  databaseUrl: string | undefined;
  flags: string[];
  /** The `tixian` command this run's CLI calls and servers use: this checkout's, or another build's (`--against`). */
  bin: string;
  /**
   * PostgreSQL: gathers the planner's statistics (ANALYZE) of the run's database; SQLite: nothing,
   * unless asked (`--sqlite-analyze`): then `ANALYZE` from a connection of the bench's, as an
   * operator's `sqlite3 tixian.db 'PRAGMA optimize'` would, while the server runs (store/db.ts
   * prepareSqliteStatistics says what that did to a server before 2026-11-27). Called once a
   * scenario's setup has written its rows (below).
   */
  analyze(): Promise<void>;
  drop(): Promise<void>;
}

/** A fresh, empty database for one run: a temp directory (SQLite) or a new PostgreSQL database, dropped after. */
export async function freshStorage(engine: Engine, pgUrl: string | undefined, options: { sqliteAnalyze?: boolean; bin?: string } = {}): Promise<Storage> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tixian-bench-'));
  const bin = options.bin ?? TIXIAN;
  if (engine === 'sqlite') {
    return {
      engine,
      dataDir,
      databaseUrl: undefined,
      flags: ['--data-dir', dataDir],
      bin,
      analyze: async () => {
        if (!options.sqliteAnalyze) return;
        const db = new BetterSqlite3(path.join(dataDir, 'tixian.db'), { fileMustExist: true });
        try {
          db.pragma('busy_timeout = 5000');
          db.exec('ANALYZE');
        } finally {
          db.close();
        }
      },
      drop: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  if (!pgUrl) throw new Error('PostgreSQL needs TIXIAN_BENCH_DATABASE_URL or TIXIAN_TEST_DATABASE_URL');
  const name = `tixian_bench_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = async (text: string, on = pgUrl) => {
    const c = new pg.Client({ connectionString: on });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(pgUrl);
  url.pathname = `/${name}`;
  return {
    engine,
    dataDir,
    databaseUrl: url.toString(),
    flags: ['--data-dir', dataDir, '--database-url', url.toString()],
    bin,
    // A database made seconds ago has no statistics yet: autovacuum gathers them about a minute
    // after the setup's inserts, after the measured run has begun. Until then the planner's
    // generic plans cannot tell the unique (app, livemode, id) index from the list indexes that
    // share its first two columns, costs them the same, and may take a list index with a filter
    // on id: every create's balance UPDATE and every retrieve then read all the app's users
    // (1,000–3,000 rows, each with its chain of row versions). A serving database has its
    // statistics, so the run gets them too: measured without, 2026-11-27, PostgreSQL spent
    // ~1 ms of CPU per create and ~0.8–1.4 ms per user retrieve.
    analyze: () => admin('ANALYZE', url.toString()),
    drop: async () => {
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Environment for tixian children: ours without TIXIAN_* (the flags decide) and without loader options. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TIXIAN_') && k !== 'NODE_OPTIONS') env[k] = v;
  return env;
}

/** `tixian <args…>` to completion (bounded); returns stdout, throws on a non-zero exit. */
export function tixianCli(args: string[], storage: Storage): string {
  return execFileSync(process.execPath, [storage.bin, ...args, ...storage.flags], {
    cwd: storage.dataDir,
    env: childEnv(),
    encoding: 'utf8',
    timeout: CLI_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** True when `taskset` can pin processes to cores 0 and 1 on this machine. */
export function canPin(cores: number): boolean {
  if (process.platform !== 'linux' || cores < 2) return false;
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** Set by pinSelf: this process, and so every child it starts, is held to one core. */
let selfPinned = false;

/** Pins this process (all its threads) to one core: the load generator runs here. */
export function pinSelf(core: number): void {
  execFileSync('taskset', ['-a', '-cp', String(core), String(process.pid)], { stdio: 'ignore', timeout: 5_000 });
  selfPinned = true;
}

/**
 * How to start node for a server: on core 0 when `pin`, else on every core. A child inherits its
 * parent's CPU mask, so a server started plainly from a pinned bench would share the load
 * generator's one core (until 2026-11-26 the unpinned scenarios did exactly that).
 */
function serverCommand(pin: boolean, args: string[]): [string, string[]] {
  if (pin) return ['taskset', ['-c', '0', process.execPath, ...args]];
  if (selfPinned) return ['taskset', ['-c', `0-${os.cpus().length - 1}`, process.execPath, ...args]];
  return [process.execPath, args];
}

/** The process ids of every process named `postgres` on this machine (throws when pgrep cannot run). */
function postgresPids(): number[] {
  return execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8', timeout: 5_000 }).split('\n').filter((p) => /^[0-9]+$/.test(p)).map(Number);
}

/**
 * `--pin-postgres`: moves a PostgreSQL running on this machine (the postmaster and every process it
 * has, so also the backends it forks later) onto one core, the load generator's, so the server has
 * core 0 to itself. Returns a function that puts back each process's earlier CPU mask (also run
 * at exit, should the bench stop early), or null when no local PostgreSQL can be pinned (another
 * host, no permission): the run then goes on unpinned and says so.
 */
export function pinPostgres(core: number): (() => void) | null {
  let pids: string[];
  try {
    pids = postgresPids().map(String);
  } catch {
    return null;
  }
  const masks = new Map<string, string>();
  try {
    for (const pid of pids) {
      const mask = /affinity mask: ([0-9a-f]+)/.exec(execFileSync('taskset', ['-p', pid], { encoding: 'utf8', timeout: 5_000 }))?.[1];
      if (!mask) continue;
      execFileSync('taskset', ['-a', '-cp', String(core), pid], { stdio: 'ignore', timeout: 5_000 });
      masks.set(pid, mask);
    }
  } catch {
    // A backend that ended meanwhile, or no permission: undo what was done and run unpinned.
    restoreMasks(masks);
    return null;
  }
  if (masks.size === 0) return null;
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    restoreMasks(masks);
  };
  process.once('exit', restore);
  return restore;
}

function restoreMasks(masks: Map<string, string>): void {
  for (const [pid, mask] of masks) {
    try {
      execFileSync('taskset', ['-a', '-p', mask, pid], { stdio: 'ignore', timeout: 5_000 });
    } catch {
      // The process has ended: nothing to put back.
    }
  }
}

/** A process's CPU time so far and its memory, from /proc (Linux). */
export interface ProcUsage {
  /** User + system CPU seconds since the process started. */
  cpuS: number;
  /** Peak resident set size (VmHWM). */
  peakRssBytes: number;
  /** Resident set size now (VmRSS). */
  rssBytes: number;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Reads /proc/<pid>/stat and /status; null where there is no /proc or the process is gone. */
export function procUsage(pid: number | undefined): ProcUsage | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { cpuS, peakRssBytes: kib('VmHWM'), rssBytes: kib('VmRSS') };
  } catch {
    return null;
  }
}

/**
 * CPU seconds so far of every process named `postgres` on this machine, by pid (the postmaster,
 * its backends and background workers), or null when there are none or no /proc. A local
 * PostgreSQL shares the machine's cores with the server and the load generator; what it spends
 * per request says how much of a run's limit is the database (cpuOfPostgresSince).
 */
export function postgresCpu(): Map<number, number> | null {
  let pids: number[];
  try {
    pids = postgresPids();
  } catch {
    return null;
  }
  const cpu = new Map<number, number>();
  for (const pid of pids) {
    const usage = procUsage(pid);
    if (usage) cpu.set(pid, usage.cpuS);
  }
  return cpu.size > 0 ? cpu : null;
}

/**
 * The CPU seconds local PostgreSQL processes spent since `before` (postgresCpu): a process started
 * since counts from its start; one that ended since is lost (the bench's pool keeps its backends
 * for the whole run, so that is at most a short-lived process or two). Null without a reading.
 */
export function cpuOfPostgresSince(before: Map<number, number> | null): number | null {
  const now = postgresCpu();
  if (!before || !now) return null;
  let spent = 0;
  for (const [pid, cpuS] of now) spent += cpuS - (before.get(pid) ?? 0);
  return spent;
}

export interface RunningServer {
  baseUrl: string;
  /** The server's own process id (taskset execs it, so this is node's). */
  pid: number | undefined;
  /** When it printed its address (performance.now() of this process). */
  listeningAt: number;
  /** CPU and memory of the server process now (null without /proc). */
  usage(): ProcUsage | null;
  /** The last lines the server printed (stdout and stderr, bounded). */
  output(): string;
  /** SIGTERM, then wait for the exit (SIGKILL after a bound). `usage` is read just before the signal. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; usage: ProcUsage | null }>;
}

export interface ServerOptions {
  pin: boolean;
  /** Run the payout worker and webhook dispatcher too (default: `--no-workers`). */
  workers?: boolean;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Flags for node itself (e.g. `--cpu-prof`), before the script. */
  nodeArgs?: string[];
}

/**
 * `tixian serve` in a child process, pinned to core 0 when `pin` is set, on a port the OS picks.
 * It runs at the default log level (info: one access line per request), as a new user's server does.
 */
export async function startServer(storage: Storage, options: ServerOptions): Promise<RunningServer> {
  // The bench drives one key far past the default per-key rate limit: 403s would pass for throughput.
  const env = { ...childEnv(), TIXIAN_RATE_LIMIT: '0', ...options.env };
  const args = [
    ...(options.nodeArgs ?? []), storage.bin, 'serve', '--host', '127.0.0.1', '--port', '0', ...(options.workers ? [] : ['--no-workers']),
    ...storage.flags, ...(options.extraArgs ?? []),
  ];
  const [command, commandArgs] = serverCommand(options.pin, args);
  const child: ChildProcess = spawn(command, commandArgs, { cwd: storage.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  // What the server printed (bounded: the tail), for errors and the report.
  let output = '';
  const keep = (d: string) => {
    output += d;
    if (output.length > OUTPUT_KEEP_CHARS) output = output.slice(-OUTPUT_KEEP_CHARS);
  };
  child.stderr!.setEncoding('utf8').on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`tixian serve did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      keep(d);
      const m = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(({ code, signal }) => fail(new Error(`tixian serve exited (${code ?? signal}) before listening:\n${output}`)));
  });

  const listeningAt = performance.now();
  let stopped: ReturnType<RunningServer['stop']> | undefined;
  return {
    baseUrl,
    pid: child.pid,
    listeningAt,
    usage: () => procUsage(child.pid),
    output: () => output,
    stop() {
      stopped ??= stopChild();
      return stopped;
    },
  };

  async function stopChild(): Promise<{ code: number | null; signal: NodeJS.Signals | null; usage: ProcUsage | null }> {
    const usage = procUsage(child.pid);
    const exit = await (async () => {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
      const result = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        return exited;
      }
      return result;
    })();
    return { ...exit, usage };
  }
}
