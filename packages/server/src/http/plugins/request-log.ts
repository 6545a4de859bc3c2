import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { newRequestId } from '../../domain/ids.ts';
import { isEnabled, unredactedChild } from '../../logging.ts';

/**
 * A caller's own `X-Request-Id` is kept when it is sane (a proxy's or the merchant's trace id, so
 * one id follows a request through every log); anything longer or with other characters would
 * be a way to forge log lines, and gets a fresh id instead.
 */
const INCOMING_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The error a request was answered with, for its access line (a WeakMap: nothing outlives the request). */
const rejections = new WeakMap<object, { code: string | undefined; param: string | undefined }>();

export function noteRejection(req: object, code: string | undefined, param: string | undefined): void {
  rejections.set(req, { code, param });
}

export function requestIdFor(req: Pick<IncomingMessage, 'headers'>): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && INCOMING_REQUEST_ID.test(incoming) ? incoming : newRequestId();
}

/**
 * One access-log line per request, written when the answer has gone out: method, route pattern
 * (never the URL: its query may hold user ids), status, duration and app, with the request id
 * bound by Fastify (`reqId`), and for an error answer its Ping++ `code` and `param`. Never a body
 * or a header. `--log-level warn` turns these off.
 */
export function registerRequestLog(app: FastifyInstance): void {
  // The line's fields are primitives composed here (no object that could hold a secret below a
  // key), so it is written without the per-field redaction pass; the request id is a field rather
  // than a per-request child's binding, in the same place in the line (logging.ts).
  const access = unredactedChild(app.log);
  app.addHook('onResponse', (req, reply, done) => {
    // Probes hit /healthz every few seconds: their successes are debug, not an access line each.
    const route = req.routeOptions.url ?? null;
    const level = reply.statusCode === 200 && route === '/healthz' ? 'debug' : 'info';
    if (!isEnabled(access, level)) return done();
    const params = req.params as { app?: unknown } | undefined;
    const rejection = rejections.get(req);
    access[level](
      {
        reqId: req.id,
        method: req.method,
        route,
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 100) / 100,
        app: typeof params?.app === 'string' ? params.app.slice(0, 128) : null,
        livemode: req.principal ? req.principal.livemode : null,
        ...(rejection ? { error_code: rejection.code ?? null, error_param: rejection.param ?? null } : {}),
      },
      'request',
    );
    done();
  });
}
