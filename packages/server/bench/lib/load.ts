import { createRequire } from 'node:module';

/**
 * autocannon (no type declarations ship with it): the part of its API the benchmarks use.
 * https://github.com/mcollina/autocannon#api
 */
export interface LoadRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Called before each send on a connection; returns the request to send (e.g. with a fresh order_no). */
  setupRequest?: (req: LoadRequest, context: Record<string, unknown>) => LoadRequest;
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

type Autocannon = ((opts: AutocannonOptions) => Promise<AutocannonResult> & { stop(): void }) & {
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
}

/** One bounded autocannon run (its own timeout per request: 10 s). */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const r = await autocannon({ url: o.url, connections: o.connections, duration: o.durationS, timeout: 10, requests: o.requests });
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
  };
}
