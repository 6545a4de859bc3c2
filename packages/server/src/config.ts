/**
 * All configuration, read once: command-line flags win over TIXIAN_* environment variables,
 * which win over defaults. Every limit the service enforces is here, with its unit in its name.
 */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  masterKeyHex: string | undefined;
  logLevel: string;
  bodyLimitBytes: number;
  /** Tolerated distance between a signed request's timestamp and our clock. */
  signatureToleranceS: number;
  /** Sandbox payout channel: how long before a confirmed test withdrawal gets its outcome. */
  sandboxDelayMs: number;
  /** Run the payout worker and webhook dispatcher in this process. */
  workers: boolean;
  webhookTimeoutMs: number;
  webhookConcurrency: number;
  webhookPerEndpointConcurrency: number;
  /** Graceful shutdown: in-flight requests get this long before the process exits anyway. */
  shutdownGraceMs: number;
  poolSize: number;
  /**
   * Sign every response body (X-Pingplusplus-Signature). On by default for SDKs that verify
   * responses (Java with verifyPublicKey); one RSA signature (~250 µs) is the largest per-request
   * cost, so deployments whose clients never verify may turn it off (TIXIAN_SIGN_RESPONSES=0).
   */
  signResponses: boolean;
  /** SQLite durability: FULL (a commit survives a power cut) or NORMAL (survives a crash; faster). */
  sqliteSynchronous: 'FULL' | 'NORMAL';
  /** Payout worker lease: how long a crashed worker's claim blocks others from a withdrawal. */
  payoutLeaseMs: number;
  /**
   * Webhook delivery lease: a claimed delivery is not claimed again for this long, so a crash
   * between send and record re-sends it after the lease (at-least-once). Never shorter than the
   * request timeout plus 1 s (the dispatcher enforces it), or a slow answer would be sent twice.
   */
  webhookLeaseMs: number;
  /**
   * Test-only: multiplies every webhook retry delay (0 < scale ≤ 1), so a spawned server runs the
   * 25-hour Ping++ schedule in seconds. Production leaves it at 1.
   */
  webhookRetryScale: number;
  /** Serve GET /metrics (Prometheus) and count requests; off with --no-metrics / TIXIAN_METRICS=0. */
  metrics: boolean;
  /** When set, /metrics answers only `Authorization: Bearer <token>` (TIXIAN_METRICS_TOKEN). */
  metricsToken: string | undefined;
}

export const defaults: Config = {
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data',
  databaseUrl: undefined,
  masterKeyHex: undefined,
  logLevel: 'info',
  bodyLimitBytes: 256 * 1024,
  signatureToleranceS: 300,
  sandboxDelayMs: 1000,
  workers: true,
  webhookTimeoutMs: 15_000,
  webhookConcurrency: 64,
  webhookPerEndpointConcurrency: 8,
  shutdownGraceMs: 10_000,
  poolSize: 10,
  payoutLeaseMs: 30_000,
  signResponses: true,
  sqliteSynchronous: 'FULL',
  webhookLeaseMs: 60_000,
  webhookRetryScale: 1,
  metrics: true,
  metricsToken: undefined,
};

type Env = Record<string, string | undefined>;

function intFrom(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in ${min}..${max}, got ${value}`);
  return n;
}

function fractionFrom(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!(n > 0 && n <= 1)) throw new Error(`${name} must be a number in (0, 1], got ${value}`);
  return n;
}

function sqliteSynchronousFrom(value: string | undefined): 'FULL' | 'NORMAL' {
  if (value === undefined || value === '') return defaults.sqliteSynchronous;
  const v = value.toUpperCase();
  if (v !== 'FULL' && v !== 'NORMAL') throw new Error(`TIXIAN_SQLITE_SYNCHRONOUS must be FULL or NORMAL, got ${value}`);
  return v;
}

export interface ConfigFlags {
  host?: string;
  port?: string;
  dataDir?: string;
  databaseUrl?: string;
  sandboxDelayMs?: string;
  workers?: boolean;
  logLevel?: string;
  /** Commander's --no-metrics gives false; true (its default) defers to TIXIAN_METRICS. */
  metrics?: boolean;
  metricsToken?: string;
}

export function loadConfig(flags: ConfigFlags = {}, env: Env = process.env): Config {
  const pick = (flag: string | undefined, envName: string) => flag ?? env[envName] ?? undefined;
  return {
    ...defaults,
    host: pick(flags.host, 'TIXIAN_HOST') ?? defaults.host,
    port: intFrom(pick(flags.port, 'TIXIAN_PORT'), 'port', 0, 65535) ?? defaults.port,
    dataDir: pick(flags.dataDir, 'TIXIAN_DATA_DIR') ?? defaults.dataDir,
    databaseUrl: pick(flags.databaseUrl, 'TIXIAN_DATABASE_URL'),
    masterKeyHex: env.TIXIAN_MASTER_KEY,
    logLevel: pick(flags.logLevel, 'TIXIAN_LOG_LEVEL') ?? defaults.logLevel,
    sandboxDelayMs:
      intFrom(pick(flags.sandboxDelayMs, 'TIXIAN_SANDBOX_DELAY_MS'), 'sandbox delay', 0, 3_600_000) ??
      defaults.sandboxDelayMs,
    workers: flags.workers ?? (env.TIXIAN_WORKERS ? env.TIXIAN_WORKERS !== '0' : defaults.workers),
    signatureToleranceS:
      intFrom(env.TIXIAN_SIGNATURE_TOLERANCE_S, 'TIXIAN_SIGNATURE_TOLERANCE_S', 1, 86_400) ?? defaults.signatureToleranceS,
    webhookTimeoutMs:
      intFrom(env.TIXIAN_WEBHOOK_TIMEOUT_MS, 'TIXIAN_WEBHOOK_TIMEOUT_MS', 100, 120_000) ?? defaults.webhookTimeoutMs,
    poolSize: intFrom(env.TIXIAN_POOL_SIZE, 'TIXIAN_POOL_SIZE', 1, 200) ?? defaults.poolSize,
    sqliteSynchronous: sqliteSynchronousFrom(env.TIXIAN_SQLITE_SYNCHRONOUS),
    signResponses: env.TIXIAN_SIGN_RESPONSES ? env.TIXIAN_SIGN_RESPONSES !== '0' : defaults.signResponses,
    payoutLeaseMs: intFrom(env.TIXIAN_PAYOUT_LEASE_MS, 'TIXIAN_PAYOUT_LEASE_MS', 100, 3_600_000) ?? defaults.payoutLeaseMs,
    webhookConcurrency:
      intFrom(env.TIXIAN_WEBHOOK_CONCURRENCY, 'TIXIAN_WEBHOOK_CONCURRENCY', 1, 1024) ?? defaults.webhookConcurrency,
    webhookPerEndpointConcurrency:
      intFrom(env.TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY, 'TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY', 1, 256) ??
      defaults.webhookPerEndpointConcurrency,
    webhookLeaseMs: intFrom(env.TIXIAN_WEBHOOK_LEASE_MS, 'TIXIAN_WEBHOOK_LEASE_MS', 1_000, 3_600_000) ?? defaults.webhookLeaseMs,
    webhookRetryScale: fractionFrom(env.TIXIAN_WEBHOOK_RETRY_SCALE, 'TIXIAN_WEBHOOK_RETRY_SCALE') ?? defaults.webhookRetryScale,
    metrics: flags.metrics === false ? false : env.TIXIAN_METRICS ? env.TIXIAN_METRICS !== '0' : defaults.metrics,
    metricsToken: metricsTokenFrom(pick(flags.metricsToken, 'TIXIAN_METRICS_TOKEN')),
  };
}

/** A metrics token guards an endpoint reachable from the network: long enough not to be guessed. */
function metricsTokenFrom(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length < 16 || value.length > 256 || !/^[\x21-\x7e]+$/.test(value)) {
    throw new Error('TIXIAN_METRICS_TOKEN (--metrics-token) must be 16..256 printable ASCII characters without spaces');
  }
  return value;
}
