import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.ts';
import type { TrustProxy } from '../config.ts';
import { Authenticator } from '../services/accounts.ts';
import { validatorCompiler } from './validation.ts';
import { registerMetrics } from './plugins/metrics.ts';
import { registerOpenApi } from './plugins/openapi.ts';
import { frameworkErrors, registerErrorHandling } from './plugins/errors.ts';
import { errors } from '../domain/errors.ts';
import { registerBodyParsing } from './plugins/body.ts';
import { registerAuth } from './plugins/auth.ts';
import { usersRoutes } from './routes/users.ts';
import { balanceBonusesRoutes } from './routes/balance_bonuses.ts';
import { balanceSettlementsRoutes } from './routes/balance_settlements.ts';
import { balanceTransactionsRoutes } from './routes/balance_transactions.ts';
import { withdrawalsRoutes } from './routes/withdrawals.ts';
import { batchWithdrawalsRoutes } from './routes/batch_withdrawals.ts';
import { settleAccountsRoutes } from './routes/settle_accounts.ts';
import { balanceTransfersRoutes } from './routes/balance_transfers.ts';
import { eventsRoutes } from './routes/events.ts';
import { registerRequestSignature, registerResponseSignature } from './plugins/signature.ts';
import { registerRequestLog, requestIdFor } from './plugins/request-log.ts';
import { registerRateLimit } from './plugins/rate-limit.ts';
import { registerHealth } from './health.ts';
import { adminRoutes } from '../admin/routes.ts';
import { dashboardRoutes } from '../admin/dashboard.ts';
import { channelNotifyRoutes } from './routes/channel_notify.ts';
import { lazyChildLoggerFactory } from '../logging.ts';
import { clientErrorHandler } from './client-error.ts';

/** A plugin adding the routes of one resource under /v1. */
export type RouteModule = (app: FastifyInstance, rt: Runtime) => Promise<void>;

export const routeModules: RouteModule[] = [
  usersRoutes,
  balanceBonusesRoutes,
  balanceSettlementsRoutes,
  balanceTransactionsRoutes,
  withdrawalsRoutes,
  batchWithdrawalsRoutes,
  settleAccountsRoutes,
  balanceTransfersRoutes,
  eventsRoutes,
];

/**
 * Fastify's `trustProxy` for the setting. A hop count becomes a trust function (the first N hops,
 * whatever their address): Fastify 5.12.1 and later treat a bare number as trusting nothing, as a
 * client reaching the server directly could name its own address. That holds for `true` as much,
 * and the README says when a hop count is safe (only the proxy reaches tixian).
 */
export function fastifyTrustProxy(setting: TrustProxy): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting === 'number') return (_address, hop) => hop < setting;
  return setting;
}

/**
 * The HTTP API: Ping++'s v1 wire protocol. Cross-cutting concerns are hooks (auth, body bytes,
 * errors, response headers); each resource's routes live in one file under routes/.
 */
export async function buildApp(rt: Runtime): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: rt.log as FastifyBaseLogger,
    // A request's child logger is made when something logs through it, not for every request.
    childLoggerFactory: lazyChildLoggerFactory,
    bodyLimit: rt.config.bodyLimitBytes,
    genReqId: requestIdFor,
    requestIdHeader: false,
    requestTimeout: 60_000,
    connectionTimeout: 60_000,
    // A request that reaches a closing server is refused below, in Ping++'s error shape and signed;
    // Fastify's own 503 (`{"error":"Service Unavailable"}`) would skip the error handler and hooks.
    return503OnClosing: false,
    // Fastify's two lines per request are off; plugins/request-log.ts writes one, without the URL.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 128 },
    frameworkErrors,
    // Requests Node's HTTP parser refuses (oversized or malformed heads) get Ping++'s error shape too.
    clientErrorHandler: clientErrorHandler(rt.log as FastifyBaseLogger),
    // req.ip, req.protocol and req.host believe X-Forwarded-* only from the proxies this trusts.
    trustProxy: fastifyTrustProxy(rt.config.trustProxy),
  });
  app.setValidatorCompiler(validatorCompiler);
  registerErrorHandling(app, rt.config.bodyLimitBytes);
  refuseWhileClosing(app);
  // After the error handler (a route keeps the handler set when it was added), before every route.
  registerMetrics(app, rt);
  await registerOpenApi(app);
  registerBodyParsing(app);
  registerAuth(app, new Authenticator(rt));
  registerRequestSignature(app, rt);
  registerResponseSignature(app, rt);
  registerRequestLog(app);
  await registerRateLimit(app, { max: rt.config.rateLimit, windowMs: rt.config.rateLimitWindowMs });

  // Callback-style hooks where nothing is awaited: no promise and no microtask turn per request.
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    // pingpp-nodejs writes its body only on the socket's `connect` event; on Node ≥ 19 the global
    // agent keeps sockets alive, so its 2nd request on a reused socket is never written and hangs.
    // Closing the connection after each answer to that SDK is the only server-side fix.
    const ua = req.headers['user-agent'];
    if (typeof ua === 'string' && ua.includes('NodeBindings')) reply.header('connection', 'close');
    // The last hook before the bytes go out (after the signature): an answer leaves only once
    // every commit made so far is durable. An API write learns its outcome at COMMIT and is
    // answered and signed while its batch's WAL sync is in flight (store/group-commit.ts); other
    // answers rarely find a sync in flight. One whose batch could not be made durable becomes the
    // error its caller would have had (a 5xx answer already is one, and goes out as it is).
    const durable = rt.store.committedDurable();
    if (!durable) return done(null, payload);
    durable.then(
      () => done(null, payload),
      (err: unknown) => (reply.statusCode >= 500 ? done(null, payload) : done(err as Error)),
    );
  });

  registerHealth(app, rt);

  // A worker-role process answers the probes and /metrics only: its /v1 is 404.
  if (rt.config.role === 'worker') return app;
  await app.register(
    async (v1) => {
      for (const routes of routeModules) await routes(v1, rt);
    },
    { prefix: '/v1' },
  );
  // The management console: its API (operator sessions) and its static files.
  await app.register(async (admin) => adminRoutes(admin, rt));
  await app.register(async (console) => dashboardRoutes(console));
  // Channel notifications (WeChat Pay): outside /v1, verified by the channel's signature, not an API key.
  await app.register(async (notify) => channelNotifyRoutes(notify, rt));
  return app;
}

/**
 * While the server drains (SIGTERM: close() waits for the requests in flight), a request that
 * still arrives (pipelined, or on a keep-alive connection that was busy) is refused with a 503
 * api_error before any work: nothing of it is applied, so the client may send it again elsewhere.
 * Fastify has already asked for the connection to close. The probes answer 503 too (health.ts).
 */
function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_req, _reply, done) => done(closing ? errors.shuttingDown() : undefined));
}
