import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../../runtime.ts';
import { acceptWechatNotification } from '../../channels/wechat-notify.ts';
import { observeChannelNotification } from '../../observability/metrics.ts';
import { ApiError } from '../../domain/errors.ts';

const wechatAnswer = {
  type: 'object',
  properties: { code: { type: 'string', enum: ['FAIL'] }, message: { type: 'string' } },
  required: ['code', 'message'],
  examples: [{ code: 'FAIL', message: 'signature verification failed' }],
} as const;

/**
 * WeChat Pay's transfer notifications (`notify_url` of transfer-bills, set from `--public-url`).
 * Outside /v1: WeChat sends no API key and no Ping++ request signature, so neither the auth hook
 * nor the request-signature hook applies (both act only on routes that need a principal), and the
 * route opts out of the per-key rate limit by its config. Authenticity comes from WeChat's own
 * signature headers instead; a verified notification only schedules a query
 * (channels/wechat-notify.ts). Answers as WeChat expects: 204 when accepted, 4xx with
 * `{code: "FAIL", message}` otherwise (WeChat then resends on its schedule).
 */
export async function channelNotifyRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Params: { app: string; mode: 'live' | 'test' } }>('/channels/wechat/notify/:app/:mode', {
    config: { rateLimit: false },
    // WeChat reads `{code, message}`, not Ping++'s error object: also for a body that does not parse.
    errorHandler: (err: { statusCode?: number; status?: number }, req, reply) => {
      // ApiError (body parsing, validation) carries `status`; Fastify's own errors `statusCode`.
      const given = err instanceof ApiError ? err.status : err.statusCode;
      const status = typeof given === 'number' && given >= 400 && given < 500 ? given : 500;
      if (status === 500) req.log.error({ err }, 'wechat notification failed');
      observeChannelNotification('wechat', 'rejected');
      return reply.status(status).send({ code: 'FAIL', message: status === 500 ? 'internal error' : 'not a readable notification' });
    },
    schema: {
      tags: ['channels'],
      summary: 'Receive a WeChat Pay transfer notification',
      description: 'WeChat Pay POSTs `MCHTRANSFER.BILL.FINISHED` here (the `notify_url` of each transfer bill when `--public-url` is set). '
        + 'No API key: the request is verified by its `Wechatpay-Signature`, `-Timestamp` (within 5 minutes), `-Nonce` and `-Serial` headers with the app\'s WeChat Pay public key, '
        + 'its `resource` decrypted with the APIv3 key, and it only makes the bill\'s withdrawal queried now; the withdrawal changes only by what the query answers.',
      params: {
        type: 'object',
        properties: { app: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z_]+$' }, mode: { type: 'string', enum: ['live', 'test'] } },
        required: ['app', 'mode'],
      },
      body: {
        type: 'object',
        properties: {
          id: { type: 'string' }, create_time: { type: 'string' }, resource_type: { type: 'string' }, event_type: { type: 'string' }, summary: { type: 'string' },
          resource: {
            type: 'object',
            properties: { algorithm: { type: 'string' }, ciphertext: { type: 'string' }, nonce: { type: 'string' }, associated_data: { type: 'string' }, original_type: { type: 'string' } },
          },
        },
        examples: [{
          id: 'EV-2018022511223320873', create_time: '2026-01-01T12:00:00+08:00', resource_type: 'encrypt-resource', event_type: 'MCHTRANSFER.BILL.FINISHED', summary: '商家转账单据终态通知',
          resource: { algorithm: 'AEAD_AES_256_GCM', ciphertext: 'X2Fs...', nonce: 'fdasflkja484', associated_data: 'mch_payment', original_type: 'mch_payment' },
        }],
      },
      response: {
        204: { description: 'Accepted: the withdrawal is queried now', type: 'null' },
        400: { description: 'Not a readable notification (or no APIv3 key configured)', ...wechatAnswer },
        401: { description: 'The WeChat Pay signature did not verify', ...wechatAnswer },
        404: { description: 'No WeChat Pay credentials for this app and mode', ...wechatAnswer },
      },
    },
  }, async (req, reply) => {
    const header = (name: string) => {
      const v = req.headers[name];
      return typeof v === 'string' ? v : undefined;
    };
    const result = await acceptWechatNotification(rt, req.params.app, req.params.mode === 'live', {
      signature: header('wechatpay-signature'), timestamp: header('wechatpay-timestamp'), nonce: header('wechatpay-nonce'), serial: header('wechatpay-serial'),
    }, req.rawBody ?? Buffer.alloc(0));
    observeChannelNotification('wechat', result.ok ? 'accepted' : 'rejected');
    if (!result.ok) {
      req.log.warn({ app: req.params.app, reason: result.message }, 'wechat notification rejected');
      return reply.status(result.status).send({ code: 'FAIL', message: result.message });
    }
    req.log.info({ app: req.params.app, out_bill_no: result.outBillNo, queried: result.woke }, 'wechat notification accepted; the bill is queried');
    return reply.status(204).send();
  });
}
