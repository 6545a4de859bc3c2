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
  /** Requests per rateLimitWindowMs per secret key (403 rate_limit_exceeded beyond); 0 turns it off. */
  rateLimit: number;
  rateLimitWindowMs: number;
  /**
   * Live-mode webhook endpoints may resolve to loopback, private, link-local, unique-local,
   * multicast or unspecified addresses (refused by default: SSRF). Test mode always may.
   */
  allowPrivateWebhooks: boolean;
  /**
   * Auto-disable: an endpoint is disabled once every try has failed for this long AND at least
   * webhookDisableAfterFailures tries in a row failed (both, so neither a burst of failures in a
   * short outage nor one old failure disables it).
   */
  webhookDisableAfterMs: number;
  webhookDisableAfterFailures: number;
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
  rateLimit: 1000,
  rateLimitWindowMs: 1000,
  allowPrivateWebhooks: false,
  webhookDisableAfterMs: 3 * 86_400_000,
  webhookDisableAfterFailures: 20,
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
  rateLimit?: string;
  rateLimitWindow?: string;
  bodyLimit?: string;
  allowPrivateWebhooks?: boolean;
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
    rateLimit: intFrom(pick(flags.rateLimit, 'TIXIAN_RATE_LIMIT'), 'TIXIAN_RATE_LIMIT (--rate-limit)', 0, 1_000_000) ?? defaults.rateLimit,
    rateLimitWindowMs:
      durationMsFrom(pick(flags.rateLimitWindow, 'TIXIAN_RATE_LIMIT_WINDOW'), 'TIXIAN_RATE_LIMIT_WINDOW (--rate-limit-window)', 100, 3_600_000) ??
      defaults.rateLimitWindowMs,
    bodyLimitBytes: bytesFrom(pick(flags.bodyLimit, 'TIXIAN_BODY_LIMIT'), 'TIXIAN_BODY_LIMIT (--body-limit)', 1024, 64 * 1024 * 1024) ?? defaults.bodyLimitBytes,
    allowPrivateWebhooks:
      flags.allowPrivateWebhooks ?? (env.TIXIAN_ALLOW_PRIVATE_WEBHOOKS ? env.TIXIAN_ALLOW_PRIVATE_WEBHOOKS !== '0' : defaults.allowPrivateWebhooks),
    webhookDisableAfterMs:
      (intFrom(env.TIXIAN_WEBHOOK_DISABLE_AFTER_S, 'TIXIAN_WEBHOOK_DISABLE_AFTER_S', 60, 90 * 86_400) ?? defaults.webhookDisableAfterMs / 1000) * 1000,
    webhookDisableAfterFailures:
      intFrom(env.TIXIAN_WEBHOOK_DISABLE_AFTER_FAILURES, 'TIXIAN_WEBHOOK_DISABLE_AFTER_FAILURES', 1, 1_000_000) ??
      defaults.webhookDisableAfterFailures,
  };
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration with its unit, e.g. `500ms`, `1s`, `30m`, `2h`, `1d`; the unit is required. */
export function durationMsFrom(value: string | undefined, name: string, minMs: number, maxMs: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_UNITS_MS[m[2]!]! : NaN;
  if (!(ms >= minMs && ms <= maxMs)) throw new Error(`${name} must be a duration like 1s or 30m, from ${minMs} ms to ${maxMs} ms, got ${value}`);
  return ms;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, kib: 1024, mb: 1024 * 1024, mib: 1024 * 1024 };

/** A size in bytes, e.g. `262144`, `256kb`, `1mb` (k and m are 1024-based). */
export function bytesFrom(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(\d{1,12})\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit ? Number(m[1]) * unit : NaN;
  if (!(n >= min && n <= max)) throw new Error(`${name} must be a size like 262144, 256kb or 1mb, from ${min} to ${max} bytes, got ${value}`);
  return n;
}
