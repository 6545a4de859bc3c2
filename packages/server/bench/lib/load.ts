import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

/**
 * autocannon (no type declarations ship with it): the part of its API the benchmarks use.
 * https://github.com/mcollina/autocannon#api
 */
export interface LoadRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /**
   * Called before each send on a connection; returns the request to send (e.g. with a fresh
   * order_no). Returning null starts the connection's sequence again from the first request
   * (e.g. a confirm whose create failed), with a fresh context.
   */
  setupRequest?: (req: LoadRequest, context: Record<string, unknown>) => LoadRequest | null;
  /** Called with each answer to this request; `context` is the connection's, shared along its sequence. */
  onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => void;
}

interface Histogram {
  average: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  total: number;
}

interface AutocannonResult {
  requests: Histogram;
  latency: Histogram;
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  timeout: number;
  requests: LoadRequest[];
  headers?: Record<string, string>;
}

interface AutocannonInstance extends Promise<AutocannonResult> {
  stop(): void;
  /** Every answer: (client, status, bytes, latency ms). */
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, latencyMs: number) => void): this;
}

type Autocannon = ((opts: AutocannonOptions) => AutocannonInstance) & {
  track(instance: unknown, opts?: { renderProgressBar?: boolean }): void;
};

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  requests: LoadRequest[];
}

export interface LoadResult {
  requestsPerS: number;
  total: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  statusCodes: Record<string, number>;
  /** The slowest answers, slowest first: when they arrived (ms after the start) and how long they took. */
  slowest: { atMs: number; latencyMs: number }[];
}

const SLOWEST_KEPT = 5;

/** One bounded autocannon run (its own timeout per request: 10 s). */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const instance = autocannon({ url: o.url, connections: o.connections, duration: o.durationS, timeout: 10, requests: o.requests });
  const started = performance.now();
  const slowest: { atMs: number; latencyMs: number }[] = [];
  instance.on('response', (_client, _status, _bytes, latencyMs) => {
    if (slowest.length === SLOWEST_KEPT && latencyMs <= slowest[SLOWEST_KEPT - 1]!.latencyMs) return;
    slowest.push({ atMs: Math.round(performance.now() - started), latencyMs });
    slowest.sort((a, b) => b.latencyMs - a.latencyMs);
    slowest.length = Math.min(slowest.length, SLOWEST_KEPT);
  });
  const r = await instance;
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = Number(s.count);
  return {
    requestsPerS: r.requests.total / r.duration,
    total: r.requests.total,
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    statusCodes,
    slowest,
  };
}
