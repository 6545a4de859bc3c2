import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../../runtime.ts';
import { ApiError } from '../../domain/errors.ts';
import { collectProcessMetrics, observeHttpRequest, readBacklog, registry, setBacklogGauges, type Backlog } from '../../observability/metrics.ts';

/** Backlog gauges are read from the database at most this often, however often /metrics is scraped. */
export const BACKLOG_CACHE_MS = 5_000;

const unauthorized = () =>
  new ApiError({
    status: 401, code: 'invalid_metrics_token',
    zh: '访问 /metrics 需要有效的 Authorization: Bearer <metrics token>。',
    en: 'A valid Authorization: Bearer <metrics token> is required for /metrics.',
  });

/** SHA-256 first, so the comparison takes the same time whatever the length of the guess. */
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function bearer(req: FastifyRequest): string | null {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || header.length > 1024) return null;
  const m = /^bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

/**
 * GET /metrics in Prometheus text format, plus the per-request counter and latency histogram
 * (labelled with the route pattern, never the raw URL). Off with TIXIAN_METRICS=0 / --no-metrics;
 * with TIXIAN_METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>`.
 */
export function registerMetrics(app: FastifyInstance, rt: Runtime): void {
  if (!rt.config.metrics) return;
  collectProcessMetrics();
  const token = rt.config.metricsToken;
  const expected = token ? digest(token) : null;
  if (!token && !isLoopback(rt.config.host)) {
    rt.log.warn({ host: rt.config.host }, '/metrics is served without a token on a non-loopback address; set TIXIAN_METRICS_TOKEN');
  }

  app.addHook('onResponse', (req, reply, done) => {
    observeHttpRequest(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime);
    done();
  });

  let cached: { atMs: number; backlog: Backlog } | null = null;
  let reading: Promise<void> | null = null;
  const refreshBacklog = async () => {
    const nowMs = rt.clock.nowMs();
    if (cached && nowMs - cached.atMs < BACKLOG_CACHE_MS) return setBacklogGauges(cached.backlog, nowMs);
    // Concurrent scrapes share one read.
    reading ??= readBacklog(rt.store.db)
      .then((backlog) => void (cached = { atMs: nowMs, backlog }))
      .catch((err: unknown) => rt.log.warn({ err }, 'metrics: reading the backlog failed; gauges keep their last values'))
      .finally(() => (reading = null));
    await reading;
    if (cached) setBacklogGauges(cached.backlog, nowMs);
  };

  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    if (expected) {
      const given = bearer(req);
      if (!given || !timingSafeEqual(digest(given), expected)) throw unauthorized();
    }
    await refreshBacklog();
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
}
