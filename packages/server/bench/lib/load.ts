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

interface AutocannonResult {
  errors: number;
  timeouts: number;
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
  /**
   * Seconds of load before the measured `durationS`, on the same connections, whose answers are
   * not counted. Not a run of its own: a new run opens new connections, and the first answers on
   * new connections after a steady state are slow for about a second (V8 deoptimises Node's
   * socket, stream and request code for the objects' new shapes and recompiles it, on the one
   * core the server has), which a run that starts measuring then reports as its tail.
   */
  warmupS?: number;
  /** Called when the measured part starts (at once without a warm-up): the caller's usage window. */
  onMeasureStart?: () => void;
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

/** At most this many latencies are kept for the percentiles (8 bytes each; ~1 minute at 10k/s). */
const LATENCIES_KEPT = 1_000_000;

/**
 * One bounded autocannon run (its own timeout per request: 10 s): `warmupS` then `durationS` on
 * the same connections. The figures are the measured part's, from each answer as it arrives:
 * rate, latency percentiles (of 2xx answers, as autocannon's), status codes.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const warmupMs = Math.max(0, o.warmupS ?? 0) * 1000;
  const instance = autocannon({ url: o.url, connections: o.connections, duration: (warmupMs / 1000) + o.durationS, timeout: 10, requests: o.requests });
  const started = performance.now();
  let measureFrom = started;
  const measureTo = () => measureFrom + o.durationS * 1000;
  const latencies = new Float64Array(LATENCIES_KEPT);
  let kept = 0;
  let total = 0;
  let non2xx = 0;
  const statusCodes: Record<string, number> = {};
  const slowest: { atMs: number; latencyMs: number }[] = [];
  let measuring = warmupMs === 0;
  const startMeasuring = () => {
    measureFrom = performance.now();
    measuring = true;
    o.onMeasureStart?.();
  };
  const timer = measuring ? (startMeasuring(), null) : setTimeout(startMeasuring, warmupMs);
  instance.on('response', (_client, status, _bytes, latencyMs) => {
    const now = performance.now();
    if (!measuring || now > measureTo()) return;
    total++;
    statusCodes[status] = (statusCodes[status] ?? 0) + 1;
    if (status < 200 || status > 299) return void non2xx++;
    if (kept < LATENCIES_KEPT) latencies[kept++] = latencyMs;
    if (slowest.length === SLOWEST_KEPT && latencyMs <= slowest[SLOWEST_KEPT - 1]!.latencyMs) return;
    slowest.push({ atMs: Math.round(now - measureFrom), latencyMs });
    slowest.sort((a, b) => b.latencyMs - a.latencyMs);
    slowest.length = Math.min(slowest.length, SLOWEST_KEPT);
  });
  let r: AutocannonResult;
  try {
    r = await instance;
  } finally {
    if (timer) clearTimeout(timer);
  }
  // autocannon's own clock may stop the run a little before measureTo.
  const measuredS = Math.max(1e-3, (Math.min(performance.now(), measureTo()) - measureFrom) / 1000);
  const sorted = latencies.subarray(0, kept).sort();
  const at = (q: number) => (kept === 0 ? 0 : sorted[Math.min(kept - 1, Math.ceil(q * kept) - 1)]!);
  return {
    requestsPerS: measuring ? total / measuredS : 0,
    total,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: at(1),
    non2xx,
    // The whole run's: an error in the warm-up makes the figures as untrustworthy as one after it.
    errors: r.errors + r.timeouts,
    statusCodes,
    slowest,
  };
}
