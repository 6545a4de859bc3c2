import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { isLocalPostgres, loadProblems, postgresMetrics, startWindow, usageOver, waitFor } from '../lib/run.ts';
import type { LoadRequest } from '../lib/load.ts';
import type { Runtime } from '../../src/runtime.ts';
import type { CustomScenario, Metric, Scenario, Target } from '../scenario.ts';

const USERS = 100;
/**
 * Each user's withdrawable money: far more than any run withdraws at 1 fen each (a 10 s run makes
 * a few thousand withdrawals over 100 users), and under the 2^31 − 1 balance cap.
 */
const FUNDS_PER_USER = 2_000_000_000;
const AMOUNT = 1;
const EXTRA = { account: 'x@y.cn', name: '张三' };

/** How long the create + confirm run may wait for the payout worker to settle everything it confirmed. */
const DRAIN_TIMEOUT_MS = 180_000;
/** …and gives up sooner when nothing moved for this long. */
const DRAIN_STALL_MS = 30_000;

type Call = Target['call'];

/** 100 users with money they can withdraw (a balance settlement each), created through `call`. */
export async function fundedUsers(t: Target, call: Call = t.call): Promise<string[]> {
  const users = Array.from({ length: USERS }, (_, i) => `bench_wd_${i}`);
  const BATCH = 10;
  for (let i = 0; i < users.length; i += BATCH) {
    await Promise.all(
      users.slice(i, i + BATCH).map(async (id, j) => {
        await call('POST', `/v1/apps/${t.appId}/users`, { id });
        await call('POST', `/v1/apps/${t.appId}/balance_settlements`, { user: id, amount: FUNDS_PER_USER, order_no: `fund${i + j}` });
      }),
    );
  }
  return users;
}

/** Withdrawal bodies: a fresh alphanumeric order_no each (alipay allows 1-64 letters or digits), round-robin over the users. */
export function withdrawalBodies(users: string[]): () => string {
  let n = 0;
  const run = Date.now().toString(36);
  return () => {
    const i = n++;
    return JSON.stringify({ user: users[i % users.length], amount: AMOUNT, channel: 'alipay', order_no: `w${run}x${i}`, extra: EXTRA, description: 'bench' });
  };
}

/**
 * POST /v1/apps/:app/withdrawals, a fresh order_no each, over 100 funded users: auth, body schema,
 * the per-channel `extra` check, the order_no pre-check and one ledger transaction (conditional
 * UPDATE of the user's withdrawable balance, journal entry, postings, balance_transaction, the
 * withdrawal row), and the response signature.
 */
export const withdrawalCreate: Scenario<string[]> = {
  name: 'withdrawal_create',
  description: 'POST withdrawals (fresh order_no, 100 funded users)',
  setup: (t) => fundedUsers(t),
  requests(t, users) {
    const body = withdrawalBodies(users);
    return [{ method: 'POST', path: `/v1/apps/${t.appId}/withdrawals`, headers: t.headers, setupRequest: (req) => ({ ...req, body: body() }) }];
  },
};

// ---------------------------------------------------------------------------------------------
// Signed requests

/**
 * The merchant's key pair, made once per bench process; the private key stays a KeyObject, so a
 * signature costs the RSA operation only (~250 µs on this machine kind, on the load generator's
 * core), never a PEM parse.
 */
let merchantKey: { privateKey: KeyObject; publicPem: string } | undefined;
function merchant(): { privateKey: KeyObject; publicPem: string } {
  if (!merchantKey) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    merchantKey = {
      privateKey: createPrivateKey(pair.privateKey.export({ type: 'pkcs8', format: 'pem' })),
      publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    };
  }
  return merchantKey;
}

/** The two headers a Ping++ SDK adds: base64 RSA-SHA256 over body bytes + request target + timestamp. */
function signatureHeaders(key: KeyObject, body: string, target: string): Record<string, string> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = sign('sha256', Buffer.from(body + target + timestamp, 'utf8'), key).toString('base64');
  return { 'pingplusplus-signature': signature, 'pingplusplus-request-timestamp': timestamp };
}

/** Setup calls for an app that requires signatures: the same as Target.call, signed. */
function signedCall(t: Target, key: KeyObject): Call {
  return async (method, target, payload) => {
    const body = payload === undefined ? '' : JSON.stringify(payload);
    const res = await fetch(t.baseUrl + target, {
      method,
      headers: { ...t.headers, ...signatureHeaders(key, body, target) },
      ...(payload !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${target}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

/**
 * withdrawal_create with request signatures required in test mode: the app has the merchant's
 * public key and `--require-signature test`, and every create carries a valid signature over its
 * exact body bytes, path and timestamp (made in setupRequest). Side by side with
 * withdrawal_create, the difference is what checking a signature costs the server.
 */
export const withdrawalCreateSigned: Scenario<string[]> = {
  name: 'withdrawal_create_signed',
  description: 'POST withdrawals, request signatures required (RSA-2048 verify)',
  baseline: 'withdrawal_create',
  async beforeServe(ctx) {
    const file = path.join(ctx.dir, 'merchant_public.pem');
    writeFileSync(file, merchant().publicPem);
    await ctx.tixian(['apps', 'update', ctx.appId, '--rsa-public-key-file', file, '--require-signature', 'test']);
  },
  setup: (t) => fundedUsers(t, signedCall(t, merchant().privateKey)),
  requests(t, users) {
    const body = withdrawalBodies(users);
    const target = `/v1/apps/${t.appId}/withdrawals`;
    const key = merchant().privateKey;
    return [
      {
        method: 'POST',
        path: target,
        setupRequest(req) {
          const b = body();
          return { ...req, body: b, headers: { ...t.headers, ...signatureHeaders(key, b, target) } };
        },
      },
    ];
  },
};

// ---------------------------------------------------------------------------------------------
// Create, confirm, pay

interface PairCounters {
  created: number;
  confirmed: number;
  /** A create that answered non-2xx (its confirm is skipped). */
  createFailed: number;
}

/** Create, then confirm the withdrawal that create made (its id travels in the connection's context). */
function createConfirmRequests(t: Target, users: string[], counters: PairCounters): LoadRequest[] {
  const body = withdrawalBodies(users);
  const base = `/v1/apps/${t.appId}/withdrawals`;
  return [
    {
      method: 'POST',
      path: base,
      headers: t.headers,
      setupRequest: (req) => ({ ...req, body: body() }),
      onResponse(status, text, context) {
        if (status !== 200) {
          counters.createFailed++;
          return;
        }
        counters.created++;
        context.id = (JSON.parse(text) as { id: string }).id;
      },
    },
    {
      method: 'PUT',
      headers: t.headers,
      body: '{"status":"pending"}',
      // No id (the create failed): start the pair again with a new create.
      setupRequest: (req, context) => (typeof context.id === 'string' ? { ...req, path: `${base}/${context.id}` } : null),
      onResponse(status) {
        if (status === 200) counters.confirmed++;
      },
    },
  ];
}

/** Withdrawals of the app by status, read from the database in this process. */
async function statusCounts(rt: Runtime, appId: string): Promise<Record<string, number>> {
  const rows = await rt.store.db
    .selectFrom('withdrawals')
    .select(['status', sql<number>`count(*)`.as('n')])
    .where('app', '=', appId)
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

async function pendingCount(rt: Runtime, appId: string): Promise<number> {
  const row = await rt.store.db
    .selectFrom('withdrawals')
    .select(sql<number>`count(*)`.as('n'))
    .where('app', '=', appId)
    .where('livemode', '=', 0)
    .where('status', '=', 'pending')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Each connection repeats a pair: create a withdrawal, then confirm it (PUT status pending); the
 * payout worker in the same server pays it through the sandbox channel at 0 ms delay. Reports
 * the request rate (both kinds), pairs/s, and the payouts the worker finished while the API was
 * under load; after the run it waits (bounded) until no withdrawal is `pending` and reports the
 * drain time and how many reached `succeeded`, so the figure includes the worker keeping up.
 */
export const withdrawalCreateConfirm: CustomScenario = {
  name: 'withdrawal_create_confirm',
  description: 'POST withdrawals then PUT pending, payout worker on (sandbox 0 ms); drain afterwards',
  async run(ctx) {
    const server = await ctx.startServer({ workers: true, args: ['--sandbox-delay-ms', '0'] });
    const t = ctx.target(server);
    const users = await fundedUsers(t);
    await ctx.storage.analyze();
    const counters: PairCounters = { created: 0, confirmed: 0, createFailed: 0 };
    const requests = createConfirmRequests(t, users, counters);
    const rt = await ctx.openRuntime();
    const warmStart = performance.now();
    if (ctx.options.warmupS > 0) await ctx.load(server, requests, ctx.options.warmupS);
    const warmS = (performance.now() - warmStart) / 1000;

    Object.assign(counters, { created: 0, confirmed: 0, createFailed: 0 });
    const before = await statusCounts(rt, t.appId);
    const window = startWindow(server, { postgres: isLocalPostgres(ctx.storage) });
    const load = await ctx.load(server, requests, ctx.options.durationS);
    const used = window.end();
    const after = await statusCounts(rt, t.appId);

    // Drain: until nothing is pending (bounded in time, and by progress).
    const drainStart = performance.now();
    let last = after.pending ?? 0;
    let lastMove = drainStart;
    const drained = await waitFor(
      async () => {
        const pending = await pendingCount(rt, t.appId);
        if (pending !== last) [last, lastMove] = [pending, performance.now()];
        return pending === 0 || performance.now() - lastMove > DRAIN_STALL_MS;
      },
      { everyMs: 50, timeoutMs: DRAIN_TIMEOUT_MS },
    ).then(async (done) => done && (await pendingCount(rt, t.appId)) === 0);
    const drainS = (performance.now() - drainStart) / 1000;
    const final = await statusCounts(rt, t.appId);
    const stopped = await server.stop();

    const succeededInRun = (after.succeeded ?? 0) - (before.succeeded ?? 0);
    const confirmedTotal = (final.succeeded ?? 0) + (final.failed ?? 0) + (final.pending ?? 0);
    const metrics: Metric[] = [
      { name: 'pairs/s', value: counters.confirmed / used.windowS, unit: '' },
      { name: 'payouts/s during the run', value: succeededInRun / used.windowS, unit: '' },
      { name: 'pending at the end of the run', value: after.pending ?? 0, unit: '' },
      { name: 'drain', value: drainS, unit: 's' },
      // Everything paid, over the whole time it took: warm-up, measured run and drain.
      { name: 'end to end, succeeded / (warm-up + run + drain)', value: (final.succeeded ?? 0) / (warmS + used.windowS + drainS), unit: '/s' },
      { name: 'confirmed in all (warm-up too)', value: confirmedTotal, unit: '' },
      { name: 'succeeded', value: final.succeeded ?? 0, unit: '' },
      { name: 'failed', value: final.failed ?? 0, unit: '' },
      { name: 'never confirmed (run ended between create and confirm)', value: final.created ?? 0, unit: '' },
    ];
    metrics.push(...postgresMetrics(used, load.total, 'request'));
    const problems = loadProblems(load);
    if (!drained) problems.push(`${final.pending ?? 0} withdrawals still pending after ${drainS.toFixed(1)} s`);
    if ((final.failed ?? 0) > 0) problems.push(`${final.failed} withdrawals failed`);
    if (counters.createFailed > 0) problems.push(`${counters.createFailed} creates failed`);
    return { load, ...used, server: usageOver(used.server, stopped.usage), metrics, problems };
  },
};

