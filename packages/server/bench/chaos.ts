import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs, promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { request } from 'undici';
import { freshStorage, tixianCli } from './lib/server.ts';

/**
 * The chaos run (`npm run chaos`): two API processes (`serve --role api`) and two workers
 * (`serve --role worker`) on one PostgreSQL database; many clients drive creates, confirms,
 * cancels, transfers, bonuses and batches at the API processes; every few seconds one of the four
 * processes is killed with SIGKILL and started again; PostgreSQL itself is restarted once. At the
 * end, with every process up again and the work drained, it checks what the issue promises:
 *
 * - `tixian ledger verify` is clean;
 * - every withdrawal a client saw confirmed is `succeeded` or `failed`, none is left `pending`, and
 *   its final state is the one its sandbox payee chooses (…0002 fails, anything else succeeds);
 * - the sandbox channel was submitted each order exactly once (`sandbox_payouts.submits`);
 * - every event was delivered to the receiver at least once;
 * - no answer was a 5xx, except while PostgreSQL was restarting (and a grace period after).
 *
 * Everything is bounded: the run, each request, each start, the drain, the whole process.
 */

export interface ChaosOptions {
  /** PostgreSQL to make the run's database in (a server URL; the database is created and dropped). */
  pgUrl: string;
  durationS: number;
  clients: number;
  /** A process is killed about this often (±50%). */
  killEveryS: number;
  /**
   * `cluster`: restart the whole PostgreSQL server once (pgRestartCommand); `backends`: terminate
   * every backend of the run's database instead (for iterating on a shared machine); `none`.
   */
  pgRestart: 'cluster' | 'backends' | 'none';
  pgRestartCommand: string;
  /** How long after PostgreSQL is back 5xx answers are still excused (pools notice dead connections on use). */
  restartGraceS: number;
  drainTimeoutS: number;
  log(line: string): void;
}

export const DEFAULT_PG_RESTART = 'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main restart';

export const chaosDefaults: Omit<ChaosOptions, 'pgUrl' | 'log'> = {
  durationS: 300,
  clients: 24,
  killEveryS: 4,
  pgRestart: 'cluster',
  pgRestartCommand: DEFAULT_PG_RESTART,
  restartGraceS: 10,
  drainTimeoutS: 180,
};

export interface ChaosReport {
  ok: boolean;
  problems: string[];
  figures: Record<string, number>;
}

const TIXIAN = fileURLToPath(new URL('../bin/tixian.mjs', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;
const USERS = 40;
const FUNDS_PER_USER = 1_000_000_000;
const MAX_BATCH = 5;
/** Payee endings and the final state each must reach (sandbox channel, see channels/sandbox.ts). */
const PAYEES = [
  { ending: '', final: 'succeeded' },
  { ending: '0002', final: 'failed' },
  { ending: '0004', final: 'succeeded' }, // the submit's answer is lost: found by a query later
] as const;

// ---------------------------------------------------------------------------------------------
// Processes

/** One `tixian serve` the run keeps alive: killed with SIGKILL now and then, started again. */
class Proc {
  child: ChildProcess | null = null;
  /** Resolves when the current child has exited. */
  private exited: Promise<void> = Promise.resolve();
  starts = 0;
  output = '';

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Between "listening" and the kill: the clients send it requests. */
  listening = false;

  get up(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it and waits until it listens; a start that fails (PostgreSQL down) is tried again, bounded. */
  async start(deadlineMs: number): Promise<void> {
    for (;;) {
      try {
        await this.startOnce();
        this.listening = true;
        return;
      } catch (err) {
        if (Date.now() > deadlineMs) throw err;
        await delay(500);
      }
    }
  }

  private startOnce(): Promise<void> {
    this.starts++;
    const child = spawn(process.execPath, [TIXIAN, 'serve', ...this.args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let out = '';
    const keep = (d: Buffer) => {
      out += d.toString();
      this.output = (this.output + d.toString()).slice(-8192);
    };
    child.stderr!.on('data', keep);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${this.name} did not start within ${START_TIMEOUT_MS} ms:\n${out}`));
      }, START_TIMEOUT_MS);
      child.stdout!.on('data', (d: Buffer) => {
        keep(d);
        if (/listening on http/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? signal}) before listening:\n${out}`));
      });
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    this.listening = false;
    if (this.up) this.child!.kill(signal);
    await this.exited;
  }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver

class Receiver {
  readonly received = new Set<string>();
  deliveries = 0;
  private constructor(readonly server: Server, readonly url: string) {}

  static async start(): Promise<Receiver> {
    const ref: { r?: Receiver } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 1024 * 1024) chunks.push(c);
      });
      req.on('end', () => {
        try {
          const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string };
          if (typeof event.id === 'string') ref.r!.received.add(event.id);
          ref.r!.deliveries++;
        } catch {
          // not an event: answered all the same
        }
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ref.r = new Receiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
    return ref.r;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------
// Load

interface Answer {
  atMs: number;
  status: number;
  /** For a 5xx: Ping++'s error shape with type api_error (what a client's SDK can handle). */
  clean?: boolean;
}

interface LoadState {
  answers: Answer[];
  noAnswer: number;
  /** Withdrawals a client saw confirmed (200 to the confirm or to the batch). */
  confirmed: Set<string>;
  ops: Record<string, number>;
  /** The first few 5xx answers not in Ping++'s shape, for the report. */
  uncleanBodies: string[];
}

type Json = Record<string, unknown>;

class Client {
  private seq = 0;
  constructor(
    private readonly id: number,
    private readonly ports: () => number[],
    private readonly appId: string,
    private readonly key: string,
    private readonly state: LoadState,
  ) {}

  /** One call to a random API process; null when no process answered (killed mid-request). */
  async call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; json: Json } | null> {
    const ports = this.ports();
    const port = ports[Math.floor(Math.random() * ports.length)]!;
    try {
      const res = await request(`http://127.0.0.1:${port}/v1/apps/${this.appId}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        headersTimeout: REQUEST_TIMEOUT_MS,
        bodyTimeout: REQUEST_TIMEOUT_MS,
      });
      const text = await res.body.text();
      let json: Json = {};
      try {
        json = JSON.parse(text) as Json;
      } catch {
        // a non-JSON answer still counts by its status
      }
      const answer: Answer = { atMs: Date.now(), status: res.statusCode };
      if (res.statusCode >= 500) {
        answer.clean = res.statusCode === 500 && (json.error as { type?: unknown } | undefined)?.type === 'api_error';
        if (!answer.clean && this.state.uncleanBodies.length < 3) this.state.uncleanBodies.push(`${method} ${path.split('/')[1]} → ${res.statusCode} ${text.slice(0, 300)}`);
      }
      this.state.answers.push(answer);
      return { status: res.statusCode, json };
    } catch {
      // Killed mid-request, or killed just before it was picked: no answer, no spinning on it.
      this.state.noAnswer++;
      await delay(20);
      return null;
    }
  }

  private orderNo(): string {
    return `c${this.id}x${Date.now().toString(36)}x${this.seq++}`;
  }

  private user(): string {
    return `chaos_${Math.floor(Math.random() * USERS)}`;
  }

  private async createWithdrawal(): Promise<string | null> {
    const payee = PAYEES[Math.floor(Math.random() * PAYEES.length)]!;
    const res = await this.call('POST', '/withdrawals', {
      user: this.user(), amount: 1 + Math.floor(Math.random() * 100), channel: 'alipay', order_no: this.orderNo(),
      extra: { account: `payee@example.com${payee.ending}`, name: '张三' },
    });
    return res?.status === 200 ? (res.json.id as string) : null;
  }

  async step(): Promise<void> {
    const r = Math.random();
    const count = (op: string) => (this.state.ops[op] = (this.state.ops[op] ?? 0) + 1);
    if (r < 0.45) {
      const id = await this.createWithdrawal();
      count('withdrawal_create');
      if (!id) return;
      if (Math.random() < 0.75) {
        count('withdrawal_confirm');
        const res = await this.call('PUT', `/withdrawals/${id}`, { status: 'pending' });
        if (res?.status === 200) this.state.confirmed.add(id);
      } else {
        count('withdrawal_cancel');
        await this.call('PUT', `/withdrawals/${id}`, { status: 'canceled' });
      }
    } else if (r < 0.6) {
      count('balance_transfer');
      const from = this.user();
      let to = this.user();
      if (to === from) to = `chaos_${(Number(from.slice(6)) + 1) % USERS}`;
      await this.call('POST', '/balance_transfers', { user: from, recipient: to, amount: 1 + Math.floor(Math.random() * 50), order_no: this.orderNo() });
    } else if (r < 0.75) {
      count('balance_bonus');
      await this.call('POST', '/balance_bonuses', { user: this.user(), amount: 1 + Math.floor(Math.random() * 50), order_no: this.orderNo() });
    } else if (r < 0.85) {
      count('batch_withdrawal');
      const ids: string[] = [];
      const n = 2 + Math.floor(Math.random() * (MAX_BATCH - 1));
      for (let i = 0; i < n; i++) {
        const id = await this.createWithdrawal();
        if (id) ids.push(id);
      }
      if (ids.length === 0) return;
      const res = await this.call('POST', '/batch_withdrawals', { withdrawals: ids });
      if (res?.status === 200) for (const id of ids) this.state.confirmed.add(id);
    } else {
      count('reads');
      await this.call('GET', `/users/${this.user()}`);
      await this.call('GET', '/withdrawals?limit=10');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The run

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const problems: string[] = [];
  const figures: Record<string, number> = {};
  const storage = await freshStorage('postgres', o.pgUrl);
  const dbName = new URL(storage.databaseUrl!).pathname.slice(1);
  const receiver = await Receiver.start();
  const procs: Proc[] = [];
  try {
    // Migrates, makes the master key and the app; the endpoint receives every event type.
    const app = JSON.parse(tixianCli(['apps', 'create', '--name', 'chaos', '--json'], storage)) as { id: string; secret_key_test: string };
    tixianCli(['apps', 'update', app.id, '--webhook-url', receiver.url], storage);

    const env: NodeJS.ProcessEnv = {
      ...childEnv(),
      TIXIAN_RATE_LIMIT: '0',
      TIXIAN_LOG_LEVEL: 'error',
      TIXIAN_POOL_SIZE: '6',
      TIXIAN_SANDBOX_DELAY_MS: '300',
      TIXIAN_PAYOUT_LEASE_MS: '3000',
      TIXIAN_WEBHOOK_TIMEOUT_MS: '2000',
      TIXIAN_WEBHOOK_LEASE_MS: '3000',
      TIXIAN_WEBHOOK_RETRY_SCALE: '0.001',
      TIXIAN_SHUTDOWN_GRACE_MS: '3000',
    };
    const base = ['--host', '127.0.0.1', '--workers', '1', ...storage.flags];
    const apiPorts = [await freePort(), await freePort()];
    apiPorts.forEach((port, i) => procs.push(new Proc(`api${i + 1}`, [...base, '--role', 'api', '--port', String(port)], env)));
    for (let i = 0; i < 2; i++) procs.push(new Proc(`worker${i + 1}`, [...base, '--role', 'worker', '--port', '0'], env));
    await Promise.all(procs.map((p) => p.start(Date.now() + START_TIMEOUT_MS)));
    o.log(`4 processes up (api on ${apiPorts.join(', ')}); database ${dbName}`);

    const state: LoadState = { answers: [], noAnswer: 0, confirmed: new Set(), ops: {}, uncleanBodies: [] };
    const livePorts = () => {
      const up = apiPorts.filter((_, i) => procs[i]!.listening);
      return up.length > 0 ? up : apiPorts;
    };
    const setup = new Client(-1, livePorts, app.id, app.secret_key_test, state);
    for (let i = 0; i < USERS; i++) {
      const u = await setup.call('POST', '/users', { id: `chaos_${i}` });
      const f = await setup.call('POST', '/balance_settlements', { user: `chaos_${i}`, amount: FUNDS_PER_USER, order_no: `fund${i}` });
      if (u?.status !== 200 || f?.status !== 200) throw new Error(`setup of user chaos_${i} failed: ${u?.status} ${f?.status}`);
    }

    // Load, kills and one PostgreSQL restart, until the end of the run.
    const startMs = Date.now();
    const endMs = startMs + o.durationS * 1000;
    let pgWindow: { fromMs: number; toMs: number } | null = null;
    const loops = Array.from({ length: o.clients }, async (_, i) => {
      const client = new Client(i, livePorts, app.id, app.secret_key_test, state);
      while (Date.now() < endMs) await client.step();
    });
    let kills = 0;
    const chaos = (async () => {
      const restartAtMs = startMs + o.durationS * 400; // 40% into the run
      let restarted = o.pgRestart === 'none';
      while (Date.now() < endMs) {
        await delay(o.killEveryS * 1000 * (0.5 + Math.random()));
        if (Date.now() >= endMs) break;
        if (!restarted && Date.now() >= restartAtMs) {
          restarted = true;
          const fromMs = Date.now();
          await restartPostgres(o, dbName);
          await untilPostgresAnswers(o.pgUrl, Date.now() + 60_000);
          pgWindow = { fromMs, toMs: Date.now() };
          o.log(`PostgreSQL ${o.pgRestart === 'cluster' ? 'restarted' : 'backends terminated'}: ${pgWindow.toMs - fromMs} ms until it answered`);
          continue;
        }
        const victim = procs[Math.floor(Math.random() * procs.length)]!;
        await victim.kill('SIGKILL');
        kills++;
        await victim.start(Date.now() + 90_000);
      }
    })();
    const progress = setInterval(() => {
      o.log(`${Math.round((Date.now() - startMs) / 1000)} s: ${state.answers.length} answers, ${state.confirmed.size} confirmed, ${kills} kills, ${receiver.received.size} events received`);
    }, 15_000);
    try {
      await Promise.all([...loops, chaos]);
    } finally {
      clearInterval(progress);
    }
    for (const p of procs) if (!p.up) await p.start(Date.now() + 60_000);
    o.log(`load over after ${Math.round((Date.now() - startMs) / 1000)} s; draining`);

    // Drain: nothing pending, every event at the receiver.
    const db = new pg.Client({ connectionString: storage.databaseUrl });
    await db.connect();
    try {
      const drainDeadline = Date.now() + o.drainTimeoutS * 1000;
      let pending = -1;
      let missing: string[] = [];
      for (;;) {
        pending = Number((await db.query(`select count(*) as n from withdrawals where status = 'pending'`)).rows[0].n);
        const events = (await db.query<{ id: string }>(`select id from events where app = $1`, [app.id])).rows.map((r) => r.id);
        missing = events.filter((id) => !receiver.received.has(id));
        figures.events = events.length;
        if ((pending === 0 && missing.length === 0) || Date.now() > drainDeadline) break;
        await delay(250);
      }
      if (pending > 0) problems.push(`${pending} withdrawals still pending ${o.drainTimeoutS} s after the load`);
      if (missing.length > 0) problems.push(`${missing.length} events never delivered (e.g. ${missing.slice(0, 3).join(', ')})`);

      // Exactly once at the channel, and the outcome the payee chose.
      const rows = (await db.query<{ id: string; status: string; extra: string; submits: string | null; payouts: string }>(
        `select w.id, w.status, w.extra, max(s.submits) as submits, count(s.key) as payouts
           from withdrawals w left join sandbox_payouts s on s.withdrawal_id = w.id
          where w.app = $1 group by w.id, w.status, w.extra`,
        [app.id],
      )).rows;
      const byId = new Map(rows.map((r) => [r.id, r]));
      const wrong: string[] = [];
      for (const id of state.confirmed) {
        const w = byId.get(id);
        if (!w) {
          wrong.push(`${id}: confirmed but not in the database`);
          continue;
        }
        const ending = /(\d{4})$/.exec((JSON.parse(w.extra) as { account: string }).account)?.[1] ?? '';
        const expected = PAYEES.find((p) => p.ending === ending)?.final ?? 'succeeded';
        if (w.status !== expected) wrong.push(`${id}: ${w.status}, expected ${expected}`);
      }
      for (const w of rows) {
        if (Number(w.payouts) > 1) wrong.push(`${w.id}: ${w.payouts} channel orders`);
        if (w.submits !== null && Number(w.submits) !== 1) wrong.push(`${w.id}: submitted ${w.submits} times`);
        if ((w.status === 'succeeded' || w.status === 'failed') && Number(w.payouts) !== 1) wrong.push(`${w.id}: ${w.status} with ${w.payouts} channel orders`);
      }
      if (wrong.length > 0) problems.push(`${wrong.length} withdrawals not settled exactly once: ${wrong.slice(0, 5).join('; ')}`);
      figures.withdrawals = rows.length;
      figures.succeeded = rows.filter((r) => r.status === 'succeeded').length;
      figures.failed = rows.filter((r) => r.status === 'failed').length;
      figures.canceled = rows.filter((r) => r.status === 'canceled').length;
      figures.queries = Number((await db.query(`select coalesce(sum(queries), 0) as n from sandbox_payouts`)).rows[0].n);
    } finally {
      await db.end();
    }

    // 5xx only while PostgreSQL restarted.
    const window = pgWindow as { fromMs: number; toMs: number } | null;
    const excused = (a: Answer) => window !== null && a.atMs >= window.fromMs - 1000 && a.atMs <= window.toMs + o.restartGraceS * 1000;
    const fivexx = state.answers.filter((a) => a.status >= 500);
    const unexcused = fivexx.filter((a) => !excused(a));
    if (unexcused.length > 0) {
      const codes = [...new Set(unexcused.map((a) => a.status))].join(', ');
      problems.push(`${unexcused.length} 5xx answers (${codes}) outside the PostgreSQL restart, first at ${Math.round((unexcused[0]!.atMs - startMs) / 1000)} s`);
    }
    const unclean = fivexx.filter((a) => !a.clean);
    if (unclean.length > 0) problems.push(`${unclean.length} 5xx answers not a clean 500 api_error (statuses ${[...new Set(unclean.map((a) => a.status))].join(', ')}): ${state.uncleanBodies.join(' | ')}`);
    if (o.pgRestart !== 'none' && !window) problems.push('PostgreSQL was never restarted (run too short?)');
    if (kills === 0) problems.push('no process was killed (run too short?)');
    if (state.confirmed.size === 0) problems.push('no withdrawal was confirmed: the load did nothing');

    for (const p of procs) await p.kill('SIGTERM');
    const ledger = JSON.parse(tixianCli(['ledger', 'verify', '--json'], storage)) as { ok: boolean; drift: unknown[] };
    if (!ledger.ok) problems.push(`ledger verify: ${ledger.drift.length} problems: ${JSON.stringify(ledger.drift.slice(0, 3))}`);

    Object.assign(figures, {
      duration_s: o.durationS,
      answers: state.answers.length,
      answers_2xx: state.answers.filter((a) => a.status < 300).length,
      answers_4xx: state.answers.filter((a) => a.status >= 400 && a.status < 500).length,
      answers_5xx_during_pg_restart: fivexx.length - unexcused.length,
      answers_5xx_other: unexcused.length,
      no_answer_process_killed: state.noAnswer,
      kills,
      pg_restart_ms: window ? window.toMs - window.fromMs : 0,
      confirmed_by_clients: state.confirmed.size,
      webhook_requests: receiver.deliveries,
      ...Object.fromEntries(Object.entries(state.ops).map(([k, v]) => [`op_${k}`, v])),
    });
    return { ok: problems.length === 0, problems, figures };
  } catch (err) {
    for (const p of procs) if (p.output) o.log(`--- ${p.name} (${p.starts} starts), last output:\n${p.output}`);
    throw err;
  } finally {
    for (const p of procs) await p.kill('SIGKILL');
    await receiver.close();
    await storage.drop();
  }
}

async function restartPostgres(o: ChaosOptions, dbName: string): Promise<void> {
  if (o.pgRestart === 'cluster') {
    await promisify(execFile)('sh', ['-c', o.pgRestartCommand], { timeout: 120_000 });
    return;
  }
  const admin = new pg.Client({ connectionString: o.pgUrl });
  await admin.connect();
  try {
    await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [dbName]);
  } finally {
    await admin.end();
  }
}

async function untilPostgresAnswers(url: string, deadlineMs: number): Promise<void> {
  for (;;) {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await c.connect();
      await c.query('select 1');
      await c.end();
      return;
    } catch (err) {
      await c.end().catch(() => undefined);
      if (Date.now() > deadlineMs) throw err;
      await delay(200);
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Environment for tixian children: ours without TIXIAN_* (the run decides) and without loader options. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TIXIAN_') && k !== 'NODE_OPTIONS') env[k] = v;
  return env;
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

const USAGE = `usage: npm run chaos -- [--duration S] [--clients N] [--kill-every S] [--pg-restart cluster|backends|none] [--json]
PostgreSQL: TIXIAN_CHAOS_DATABASE_URL or TIXIAN_TEST_DATABASE_URL (a server URL; the run makes and drops its own database).
--pg-restart cluster runs TIXIAN_CHAOS_PG_RESTART (default: ${DEFAULT_PG_RESTART}).`;

/** `npm run chaos`: one bounded run; exit 0 when every check passed, 1 otherwise, 2 on bad usage. */
export async function chaosMain(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        duration: { type: 'string' },
        clients: { type: 'string' },
        'kill-every': { type: 'string' },
        'pg-restart': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const pgUrl = process.env.TIXIAN_CHAOS_DATABASE_URL || process.env.TIXIAN_TEST_DATABASE_URL;
  const int = (v: string | undefined, fallback: number, min: number, max: number) => {
    const n = v === undefined ? fallback : Number(v);
    return Number.isInteger(n) && n >= min && n <= max ? n : NaN;
  };
  const durationS = int(args.duration, chaosDefaults.durationS, 10, 3600);
  const clients = int(args.clients, chaosDefaults.clients, 1, 256);
  const killEveryS = int(args['kill-every'], chaosDefaults.killEveryS, 1, 600);
  const pgRestart = (args['pg-restart'] ?? chaosDefaults.pgRestart) as ChaosOptions['pgRestart'];
  if (!pgUrl || [durationS, clients, killEveryS].some(Number.isNaN) || !['cluster', 'backends', 'none'].includes(pgRestart)) {
    console.error(`${pgUrl ? 'bad option value' : 'no PostgreSQL URL'}\n${USAGE}`);
    return 2;
  }
  const started = Date.now();
  const log = (line: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);
  // The whole run is bounded: the load, a drain, starts and the restart, with room to spare.
  const hardLimit = setTimeout(() => {
    log('the run exceeded its time bound; giving up');
    process.exit(1);
  }, (durationS + chaosDefaults.drainTimeoutS + 300) * 1000);
  hardLimit.unref();
  const report = await runChaos({
    ...chaosDefaults,
    pgUrl,
    durationS,
    clients,
    killEveryS,
    pgRestart,
    pgRestartCommand: process.env.TIXIAN_CHAOS_PG_RESTART || DEFAULT_PG_RESTART,
    log,
  });
  clearTimeout(hardLimit);
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    console.log(`chaos run: ${report.ok ? 'PASSED' : 'FAILED'} in ${Math.round((Date.now() - started) / 1000)} s`);
    for (const [k, v] of Object.entries(report.figures)) console.log(`  ${k}: ${v}`);
    for (const p of report.problems) console.log(`  PROBLEM: ${p}`);
  }
  return report.ok ? 0 : 1;
}
