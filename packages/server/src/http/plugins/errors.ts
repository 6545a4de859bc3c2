import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, errors } from '../../domain/errors.ts';
import { language } from '../context.ts';
import { validationError } from '../../domain/validation-errors.ts';
import { noteRejection } from './request-log.ts';
import { isDatabaseBusy } from '../../store/db.ts';

/**
 * The only place errors become JSON. Known errors keep their status; a database that could not be
 * had in time (a lock held elsewhere, a full queue or pool) is a 503 `api_error`, database_busy;
 * anything unexpected is a generic 500 `api_error` naming the request id, with details in the log only. Never a 502:
 * Ping++'s SDKs re-send on 502 and pingpp-go turns a second 502 into an empty success.
 */
function toApiError(err: FastifyError | ApiError | Error, requestId: string, bodyLimitBytes: number): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as FastifyError;
  if (fe.validation) return validationError(fe.validation as Parameters<typeof validationError>[0]);
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.bodyTooLarge(bodyLimitBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errors.badContentType('unknown');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return errors.badJson();
  }
  if (isDatabaseBusy(err)) return errors.databaseBusy();
  const status = fe.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return new ApiError({ status, code: 'bad_request', zh: `请求无效：${fe.message}`, en: `Bad request: ${fe.message}` });
  }
  return errors.internal(requestId);
}

function send(req: FastifyRequest, reply: FastifyReply, e: ApiError) {
  return reply.status(e.status).type('application/json; charset=utf-8').send(e.toJSON(language(req)));
}

export function registerErrorHandling(app: FastifyInstance, bodyLimitBytes: number): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const apiError = toApiError(err, req.id, bodyLimitBytes);
    // The details of a fault go to the log only (names, keys and card numbers redacted there); a
    // refusal is summed up by its code on the request's access line (request-log.ts).
    if (apiError.status >= 500) req.log.error({ err }, 'unhandled error');
    noteRejection(req, apiError.code, apiError.param);
    return send(req, reply, apiError);
  });
  app.setNotFoundHandler((req, reply) => {
    const e = errors.routeNotFound(req.method, req.url.split('?')[0] ?? req.url);
    noteRejection(req, e.code, e.param);
    return send(req, reply, e);
  });
}

/**
 * Fastify's `frameworkErrors` option: malformed percent-encoding and over-long path segments are
 * answered by the router before any hook runs; they get Ping++'s error shape too.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  void send(req, reply, err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? errors.uriTooLong() : errors.invalidUrl());
}
