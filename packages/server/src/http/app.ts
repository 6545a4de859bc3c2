import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Runtime } from '../runtime.ts';
import { newRequestId } from '../domain/ids.ts';
import { ApiError, errors } from '../domain/errors.ts';
import { language } from './context.ts';
import { Authenticator } from '../services/accounts.ts';
import { validatorCompiler } from './validation.ts';
import { registerErrorHandling } from './plugins/errors.ts';
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
 * The HTTP API: Ping++'s v1 wire protocol. Cross-cutting concerns are hooks (auth, body bytes,
 * errors, response headers); each resource's routes live in one file under routes/.
 */
export async function buildApp(rt: Runtime): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: rt.log as FastifyBaseLogger,
    bodyLimit: rt.config.bodyLimitBytes,
    genReqId: () => newRequestId(),
    requestIdHeader: false,
    requestTimeout: 60_000,
    connectionTimeout: 60_000,
    return503OnClosing: true,
    // Per-request access logs would cost more than the request itself on the hot path.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 128 },
    // Malformed percent-encoding and over-long path segments are answered by the router before any
    // hook runs: give them Ping++'s error shape too.
    frameworkErrors: (err, req, reply) => {
      const e = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new ApiError({ status: 414, code: 'uri_too_long', zh: '请求路径过长。', en: 'The request path is too long.' })
        : new ApiError({ status: 400, code: 'invalid_url', zh: '请求路径不是有效的 URL。', en: 'The request path is not a valid URL.' });
      void (reply as unknown as FastifyReply).status(e.status).type('application/json; charset=utf-8').send(e.toJSON(language(req)));
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  registerErrorHandling(app, rt.config.bodyLimitBytes);
  registerBodyParsing(app);
  // PostgreSQL text cannot hold U+0000: refuse it in the path and query before anything queries with it.
  app.addHook('onRequest', async (req) => {
    for (const part of [req.params, req.query] as (Record<string, unknown> | undefined)[]) {
      for (const [k, v] of Object.entries(part ?? {})) {
        if ((typeof v === 'string' && v.includes('\u0000')) || k.includes('\u0000')) throw errors.invalidParam(k.replaceAll('\u0000', ''), 'must not contain U+0000', '不能包含 U+0000');
      }
    }
  });
  registerAuth(app, new Authenticator(rt));
  registerRequestSignature(app, rt);
  registerResponseSignature(app, rt);

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-request-id', req.id);
    // pingpp-nodejs writes its body only on the socket's `connect` event; on Node ≥ 19 the global
    // agent keeps sockets alive, so its 2nd request on a reused socket is never written and hangs.
    // Closing the connection after each answer to that SDK is the only server-side fix.
    const ua = req.headers['user-agent'];
    if (typeof ua === 'string' && ua.includes('NodeBindings')) reply.header('connection', 'close');
    return payload;
  });

  app.get('/healthz', async () => {
    await rt.store.db.selectFrom('settings').select('key').limit(1).execute();
    return { status: 'ok' };
  });

  await app.register(
    async (v1) => {
      for (const routes of routeModules) await routes(v1, rt);
    },
    { prefix: '/v1' },
  );
  return app;
}
