import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { defaults } from '../../src/config.ts';
import { emitEvent } from '../../src/webhooks/outbox.ts';
import type { Runtime } from '../../src/runtime.ts';
import { histogram, isLocalPostgres, postgresMetrics, startWindow, usageOver, waitFor } from '../lib/run.ts';
import type { CustomScenario, Metric, Outcome, RunContext } from '../scenario.ts';

/** Events queued per transaction while filling the backlog. */
const QUEUE_BATCH = 1_000;
/** The drain may take this long plus DRAIN_MS_PER_EVENT per event (100,000 events: 560 s)… */
const DRAIN_BASE_MS = 60_000;
const DRAIN_MS_PER_EVENT = 5;
/** …and gives up sooner when neither the receiver nor the database moved for this long. */
const DRAIN_STALL_MS = 30_000;
/** Database polls while the receiver has not seen every event yet (it is the cheap progress signal). */
const DB_POLL_MS = 1_000;
/** A request body larger than this is not a delivery of ours: answered 413, counted as bad. */
const RECEIVER_MAX_BODY = 256 * 1024;

/** The server's concurrency settings, passed through from this process's environment when set. */
const PASS_THROUGH = ['TIXIAN_WEBHOOK_CONCURRENCY', 'TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY'] as const;

interface Receiver {
  url: string;
  received: number;
  badSignatures: number;
  duplicates: number;
  firstAt: number | null;
  lastAt: number | null;
  close(): Promise<void>;
}

/**
 * The webhook receiver: node:http in this process (pinned to core 1 with the rest of the bench),
 * answering 200 at once. It checks every delivery's RSA signature with the platform public key
 * (~22 µs each with a cached KeyObject) and counts event ids seen twice.
 */
async function startReceiver(platformKey: KeyObject): Promise<Receiver> {
  const seen = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= RECEIVER_MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const now = performance.now();
      r.received++;
      r.firstAt ??= now;
      r.lastAt = now;
      const body = Buffer.concat(chunks);
      const signature = req.headers['x-pingplusplus-signature'];
      const ok =
        size <= RECEIVER_MAX_BODY && typeof signature === 'string' && verify('sha256', body, platformKey, Buffer.from(signature, 'base64'));
      if (!ok) r.badSignatures++;
      // The body starts {"id":"evt_…"; no need to parse all of it.
      const id = /^\{"id":"(evt_[0-9]+)"/.exec(body.subarray(0, 64).toString('latin1'))?.[1];
      if (id !== undefined) {
        if (seen.has(id)) r.duplicates++;
        else seen.add(id);
      }
      res.writeHead(size <= RECEIVER_MAX_BODY ? 200 : 413, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const r: Receiver = {
    url: `http://127.0.0.1:${port}/webhooks`,
    received: 0,
    badSignatures: 0,
    duplicates: 0,
    firstAt: null,
    lastAt: null,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return r;
}

/** A withdrawal as its succeeded event carries it (the size of a real event body, ~900 bytes). */
function withdrawalObject(appId: string, i: number, nowS: number): Record<string, unknown> {
  const id = `1701${String(nowS).slice(-8)}${String(i).padStart(8, '0')}`;
  return {
    id, object: 'withdrawal', app: appId, amount: 100, asset_transaction: null, balance_transaction: `${id}1`, channel: 'alipay',
    created: nowS, description: 'bench', extra: { account: 'x@y.cn', name: '张三', account_type: 'ALIPAY_LOGONID' }, failure_msg: null,
    fee: 0, livemode: false, metadata: {}, operation_url: null, order_no: `wh${i}`, source: `tr_${id}_1`, status: 'succeeded',
    time_canceled: null, time_succeeded: nowS, user: `bench_wh_${i % 100}`, user_fee: 0, settle_account: null,
  };
}

/** Queues `count` withdrawal-succeeded events with the outbox (one delivery each), QUEUE_BATCH per transaction. */
async function queueEvents(rt: Runtime, appId: string, count: number): Promise<void> {
  const app = await rt.store.db.selectFrom('apps').select('account_id').where('id', '=', appId).executeTakeFirstOrThrow();
  for (let done = 0; done < count; ) {
    const n = Math.min(QUEUE_BATCH, count - done);
    await rt.store.transaction(async (trx) => {
      for (let k = 0; k < n; k++) {
        const nowMs = rt.clock.nowMs();
        await emitEvent(trx, {
          app: appId, accountId: app.account_id, livemode: false, type: 'balance.withdrawal.succeeded',
          object: withdrawalObject(appId, done + k, Math.floor(nowMs / 1000)), request: null, nowMs,
        });
      }
    });
    done += n;
  }
}

/** Deliveries still to make: pending rows (due or leased) have a next_attempt_ms; finished ones do not (indexed). */
async function remainingDeliveries(rt: Runtime): Promise<number> {
  const row = await rt.store.db
    .selectFrom('webhook_deliveries')
    .select(sql<number>`count(*)`.as('n'))
    .where('next_attempt_ms', 'is not', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function deliveryStatuses(rt: Runtime): Promise<Record<string, number>> {
  const rows = await rt.store.db.selectFrom('webhook_deliveries').select(['status', sql<number>`count(*)`.as('n')]).groupBy('status').execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/**
 * How the server batched its writes (from its /metrics): tries per record transaction, and SQLite
 * COMMITs (group commit batches; NaN on PostgreSQL). NaN when /metrics does not answer.
 */
async function serverBatching(baseUrl: string): Promise<{ recordBatch: number; commits: number }> {
  try {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    const records = histogram(text, 'tixian_webhook_record_batch_size');
    const commits = histogram(text, 'tixian_sqlite_group_commit_transactions');
    return { recordBatch: records.sum / records.count, commits: commits.count };
  } catch {
    return { recordBatch: NaN, commits: NaN };
  }
}

/**
 * A backlog of `--events` withdrawal-succeeded events (default 100,000), one endpoint, queued in
 * the database before the server starts; then `tixian serve` with its workers drains it to a
 * local receiver. Reports signed deliveries per second, the time from the server listening until
 * every delivery row is `succeeded`, and the server's peak memory (VmHWM).
 *
 * `serverEnv` null: the server's defaults, or TIXIAN_WEBHOOK_CONCURRENCY /
 * TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY from this process's environment when set.
 */
function webhookScenario(name: string, description: string, serverEnv: Record<string, string> | null, unpinned = false): CustomScenario {
  return {
    name,
    description,
    run: (ctx) => drainBacklog(ctx, serverEnv ?? passThrough(), unpinned),
  };
}

function passThrough(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASS_THROUGH) if (process.env[name]) env[name] = process.env[name]!;
  return env;
}

/** The defaults: 64 tries in flight, 8 per endpoint; with a single endpoint the 8 is the bound. */
export const webhookDelivery = webhookScenario(
  'webhook_delivery',
  'drain a backlog of N queued events to one local receiver, default concurrency (64, 8 per endpoint)',
  null,
);

/** The same with 64 per endpoint: what the dispatcher can do when the per-endpoint bound is not the limit. */
export const webhookDeliveryWide = webhookScenario(
  'webhook_delivery_wide',
  'the same backlog, 64 tries in flight to the one endpoint',
  { TIXIAN_WEBHOOK_CONCURRENCY: '64', TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY: '64' },
);

/**
 * The defaults with the server free on both cores: its signing pool then has a thread
 * (`security/sign-pool.ts`: cores − 1), which signs beside the event loop. The receiver, in the
 * bench process, still shares core 1 with it. One API process (`--workers 1`) on either engine.
 */
export const webhookDeliveryTwoCores = webhookScenario(
  'webhook_delivery_two_cores',
  'the default backlog drain with the server unpinned: a signing thread on the second core',
  null,
  true,
);

async function drainBacklog(ctx: RunContext, env: Record<string, string>, unpinned: boolean): Promise<Outcome> {
  const events = ctx.options.events;
  const rt = await ctx.openRuntime();
  const receiver = await startReceiver(createPublicKey(rt.platformKey.publicKeyPem));
  try {
    await ctx.tixian(['apps', 'update', ctx.appId, '--webhook-url', receiver.url]);
    const queueStart = performance.now();
    await queueEvents(rt, ctx.appId, events);
    const queueS = (performance.now() - queueStart) / 1000;
    const queued = await remainingDeliveries(rt);
    if (queued !== events) throw new Error(`queued ${queued} deliveries for ${events} events`);
    await ctx.storage.analyze();

    // One process on both engines (on PostgreSQL `serve` otherwise starts one per usable core once
    // unpinned): the figure is per process, and the one measured is the one draining.
    const server = await ctx.startServer({ workers: true, env, unpinned, ...(unpinned ? { args: ['--workers', '1'] } : {}) });
    const window = startWindow(server, { postgres: isLocalPostgres(ctx.storage) });

    let remaining = queued;
    let lastDbPoll = 0;
    let lastMove = performance.now();
    let lastSeen = -1;
    const drained = await waitFor(
      async () => {
        const now = performance.now();
        if (receiver.received !== lastSeen) [lastSeen, lastMove] = [receiver.received, now];
        // Poll the database once a second, and at every check once the receiver has seen them all.
        if (receiver.received < events && now - lastDbPoll < DB_POLL_MS) return false;
        lastDbPoll = now;
        const left = await remainingDeliveries(rt);
        if (left !== remaining) [remaining, lastMove] = [left, performance.now()];
        return remaining === 0 || performance.now() - lastMove > DRAIN_STALL_MS;
      },
      { everyMs: 20, timeoutMs: DRAIN_BASE_MS + DRAIN_MS_PER_EVENT * events },
    );
    const drainEnd = performance.now();
    const batching = await serverBatching(server.baseUrl);
    const used = window.end();
    const stopped = await server.stop();
    const statuses = await deliveryStatuses(rt);

    const drainS = (drainEnd - server.listeningAt) / 1000;
    const succeeded = statuses.succeeded ?? 0;
    const steady = receiver.firstAt !== null && receiver.lastAt !== null && receiver.lastAt > receiver.firstAt
      ? (receiver.received - 1) / ((receiver.lastAt - receiver.firstAt) / 1000)
      : 0;
    const metrics: Metric[] = [
      { name: 'events', value: events, unit: '' },
      { name: 'drained in', value: drainS, unit: 's' },
      { name: 'deliveries/s', value: succeeded / drainS, unit: '' },
      { name: 'at the receiver, first to last', value: steady, unit: '/s' },
      { name: 'first delivery after', value: receiver.firstAt === null ? NaN : (receiver.firstAt - server.listeningAt) / 1000, unit: 's' },
      { name: 'received', value: receiver.received, unit: '' },
      { name: 'duplicates', value: receiver.duplicates, unit: '' },
      { name: 'bad signatures', value: receiver.badSignatures, unit: '' },
      { name: 'server RSS at the end', value: (stopped.usage?.rssBytes ?? NaN) / 2 ** 20, unit: 'MB' },
      { name: 'concurrency', value: Number(env.TIXIAN_WEBHOOK_CONCURRENCY ?? defaults.webhookConcurrency), unit: '' },
      { name: 'per endpoint', value: Number(env.TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY ?? defaults.webhookPerEndpointConcurrency), unit: '' },
      { name: 'queueing took', value: queueS, unit: 's' },
      { name: 'tries per record transaction', value: batching.recordBatch, unit: '' },
    ];
    if (ctx.engine === 'sqlite') metrics.push({ name: 'SQLite commits per delivery', value: batching.commits / Math.max(1, succeeded), unit: '' });
    metrics.push(...postgresMetrics(used, succeeded, 'delivery'));
    const problems: string[] = [];
    if (!drained || remaining > 0) problems.push(`${remaining} deliveries not finished after ${drainS.toFixed(1)} s`);
    if (succeeded !== events) problems.push(`${succeeded} of ${events} deliveries succeeded ${JSON.stringify(statuses)}`);
    if (receiver.badSignatures > 0) problems.push(`${receiver.badSignatures} deliveries with a bad signature`);
    return { load: null, ...used, server: usageOver(used.server, stopped.usage), metrics, problems };
  } finally {
    await receiver.close();
  }
}
