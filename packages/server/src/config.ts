import { isIP } from 'node:net';

/**
 * All configuration, read once: command-line flags win over TIXIAN_* environment variables,
 * which win over defaults. Every limit the service enforces is here, with its unit in its name.
 */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  /** The master key itself (64 hex chars); environment only, never a flag (ps would show it). */
  masterKeyHex: string | undefined;
  /** Where the master key file is; `<dataDir>/master.key` when unset. */
  masterKeyFile: string | undefined;
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
  /** Withdrawals a payout worker pays out at once (its channel calls in flight); it claims more as half of them finish. */
  payoutBatchSize: number;
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
  /** Serve GET /metrics (Prometheus) and count requests; off with --no-metrics / TIXIAN_METRICS=0. */
  metrics: boolean;
  /** When set, /metrics answers only `Authorization: Bearer <token>` (TIXIAN_METRICS_TOKEN). */
  metricsToken: string | undefined;
  /** SQLite group commit: at most this many write transactions share one COMMIT (1 = one commit each). */
  sqliteGroupCommitMax: number;
  /**
   * What this process runs: `api` (the v1 API), `worker` (payout worker and webhook dispatcher,
   * serving only the health probes and /metrics) or `all`. Any number of each, on any hosts.
   */
  role: 'api' | 'worker' | 'all';
  /**
   * `--workers N`: processes `serve` runs (node:cluster), sharing one port. 0 picks: one per core
   * with PostgreSQL, 1 with SQLite (one writer: more processes only queue for its lock).
   */
  clusterWorkers: number;
  /**
   * The address channels reach this service at (https; the base the WeChat Pay transfer notify URL
   * is built on). Unset: no notify_url is sent and payouts are found by querying alone.
   */
  publicUrl: string | undefined;
  /**
   * Which reverse proxies are trusted for X-Forwarded-For / -Proto / -Host (the client's address,
   * https, the public host): false (none: the headers are ignored), true (every hop), a hop count,
   * or the proxies' addresses and CIDRs (and proxy-addr's `loopback`, `linklocal`, `uniquelocal`).
   */
  trustProxy: TrustProxy;
}

export type TrustProxy = boolean | number | string[];

export const defaults: Config = {
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data',
  databaseUrl: undefined,
  masterKeyHex: undefined,
  masterKeyFile: undefined,
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
  payoutBatchSize: 32,
  signResponses: true,
  sqliteSynchronous: 'FULL',
  webhookLeaseMs: 60_000,
  webhookRetryScale: 1,
  rateLimit: 1000,
  rateLimitWindowMs: 1000,
  allowPrivateWebhooks: false,
  webhookDisableAfterMs: 3 * 86_400_000,
  webhookDisableAfterFailures: 20,
  metrics: true,
  metricsToken: undefined,
  sqliteGroupCommitMax: 64,
  role: 'all',
  clusterWorkers: 0,
  publicUrl: undefined,
  trustProxy: false,
};

type Env = Record<string, string | undefined>;

/**
 * A setting that stops start-up: its message names the setting (the flag or the variable it came
 * from) and what is allowed, in one line, and never repeats a secret.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Kind =
  | { type: 'string' }
  | { type: 'int'; min: number; max: number }
  | { type: 'fraction' }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[]; upper?: boolean }
  | { type: 'database_url' }
  | { type: 'master_key' }
  | { type: 'token'; min: number; max: number }
  | { type: 'public_url' }
  | { type: 'trust_proxy' };

/** One configuration setting: its flag (none for secrets), its TIXIAN_* variable, unit and meaning. */
export interface Setting {
  key: keyof Config;
  /** `--port`; null when it may only come from the environment. */
  flag: string | null;
  env: string;
  kind: Kind;
  unit: string;
  help: string;
  /** The default as the README shows it, when the value alone does not say it. */
  defaultText?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Every setting, in the order the README's Configuration table lists them. The flag is the
 * setting's name in kebab-case, the variable TIXIAN_ + its name in upper snake case.
 */
export const settings: readonly Setting[] = [
  { key: 'host', flag: '--host', env: 'TIXIAN_HOST', kind: { type: 'string' }, unit: 'address', help: 'address to listen on; `0.0.0.0` serves other hosts (put TLS in front)' },
  { key: 'port', flag: '--port', env: 'TIXIAN_PORT', kind: { type: 'int', min: 0, max: 65535 }, unit: 'port', help: 'port to listen on (0: any free port)' },
  { key: 'dataDir', flag: '--data-dir', env: 'TIXIAN_DATA_DIR', kind: { type: 'string' }, unit: 'path', help: 'data directory: the SQLite database and master.key (kept 0700)' },
  { key: 'databaseUrl', flag: '--database-url', env: 'TIXIAN_DATABASE_URL', kind: { type: 'database_url' }, unit: 'URL', help: '`postgres://user:pass@host:5432/db` to use PostgreSQL (or `sqlite:/path/file.db`)', defaultText: 'SQLite in the data directory' },
  { key: 'masterKeyFile', flag: '--master-key-file', env: 'TIXIAN_MASTER_KEY_FILE', kind: { type: 'string' }, unit: 'path', help: 'file holding the master key (64 hex chars); made on first start of an empty database', defaultText: '`<data-dir>/master.key`' },
  { key: 'masterKeyHex', flag: null, env: 'TIXIAN_MASTER_KEY', kind: { type: 'master_key' }, unit: '64 hex chars', help: 'the master key itself, instead of a file (environment only: a flag would show in `ps`)' },
  { key: 'logLevel', flag: '--log-level', env: 'TIXIAN_LOG_LEVEL', kind: { type: 'enum', values: LOG_LEVELS }, unit: 'level', help: `how much to log: ${LOG_LEVELS.join(', ')}` },
  { key: 'workers', flag: '--no-workers', env: 'TIXIAN_WORKERS', kind: { type: 'bool' }, unit: 'on/off', help: 'run the payout worker and webhook dispatcher in this process; off: API only, workers elsewhere' },
  { key: 'sandboxDelayMs', flag: '--sandbox-delay-ms', env: 'TIXIAN_SANDBOX_DELAY_MS', kind: { type: 'int', min: 0, max: 3_600_000 }, unit: 'ms', help: 'delay before a test-mode payout gets its outcome' },
  { key: 'bodyLimitBytes', flag: '--body-limit-bytes', env: 'TIXIAN_BODY_LIMIT_BYTES', kind: { type: 'int', min: 1024, max: 16 * 1024 * 1024 }, unit: 'bytes', help: 'largest request body (413 above it)' },
  { key: 'signatureToleranceS', flag: '--signature-tolerance-s', env: 'TIXIAN_SIGNATURE_TOLERANCE_S', kind: { type: 'int', min: 1, max: 86_400 }, unit: 's', help: 'how far a signed request\'s timestamp may be from our clock' },
  { key: 'signResponses', flag: '--no-sign-responses', env: 'TIXIAN_SIGN_RESPONSES', kind: { type: 'bool' }, unit: 'on/off', help: 'sign every response body (`X-Pingplusplus-Signature`); off saves one RSA signature per response' },
  { key: 'shutdownGraceMs', flag: '--shutdown-grace-ms', env: 'TIXIAN_SHUTDOWN_GRACE_MS', kind: { type: 'int', min: 0, max: 600_000 }, unit: 'ms', help: 'on SIGTERM/SIGINT, how long in-flight requests get before the process exits anyway' },
  { key: 'poolSize', flag: '--pool-size', env: 'TIXIAN_POOL_SIZE', kind: { type: 'int', min: 1, max: 200 }, unit: 'connections', help: 'PostgreSQL connections per process' },
  { key: 'sqliteSynchronous', flag: '--sqlite-synchronous', env: 'TIXIAN_SQLITE_SYNCHRONOUS', kind: { type: 'enum', values: ['FULL', 'NORMAL'], upper: true }, unit: 'mode', help: '`FULL`: a commit survives a power cut; `NORMAL`: survives a crash only, about twice the write rate' },
  { key: 'payoutLeaseMs', flag: '--payout-lease-ms', env: 'TIXIAN_PAYOUT_LEASE_MS', kind: { type: 'int', min: 100, max: 3_600_000 }, unit: 'ms', help: 'how long a crashed payout worker\'s claim blocks others from a withdrawal' },
  { key: 'payoutBatchSize', flag: '--payout-batch-size', env: 'TIXIAN_PAYOUT_BATCH_SIZE', kind: { type: 'int', min: 1, max: 500 }, unit: 'withdrawals', help: 'withdrawals a payout worker pays out at once (it claims more as half of them finish): at most this many channel calls in flight per process' },
  { key: 'webhookTimeoutMs', flag: '--webhook-timeout-ms', env: 'TIXIAN_WEBHOOK_TIMEOUT_MS', kind: { type: 'int', min: 100, max: 120_000 }, unit: 'ms', help: 'a webhook delivery not answered within this is retried' },
  { key: 'webhookConcurrency', flag: '--webhook-concurrency', env: 'TIXIAN_WEBHOOK_CONCURRENCY', kind: { type: 'int', min: 1, max: 1024 }, unit: 'requests', help: 'webhook deliveries in flight per process' },
  { key: 'webhookPerEndpointConcurrency', flag: '--webhook-per-endpoint-concurrency', env: 'TIXIAN_WEBHOOK_PER_ENDPOINT_CONCURRENCY', kind: { type: 'int', min: 1, max: 256 }, unit: 'requests', help: 'webhook deliveries in flight per endpoint' },
  { key: 'webhookLeaseMs', flag: '--webhook-lease-ms', env: 'TIXIAN_WEBHOOK_LEASE_MS', kind: { type: 'int', min: 1_000, max: 3_600_000 }, unit: 'ms', help: 'a claimed delivery is not claimed again for this long (at least the timeout + 1 s)' },
  { key: 'webhookRetryScale', flag: '--webhook-retry-scale', env: 'TIXIAN_WEBHOOK_RETRY_SCALE', kind: { type: 'fraction' }, unit: 'factor', help: 'tests only: multiplies every webhook retry delay, (0, 1]' },
  { key: 'webhookDisableAfterMs', flag: '--webhook-disable-after-ms', env: 'TIXIAN_WEBHOOK_DISABLE_AFTER_MS', kind: { type: 'int', min: 60_000, max: 90 * 86_400_000 }, unit: 'ms', help: 'an endpoint whose every try has failed this long (and at least the next setting\'s count in a row) is disabled', defaultText: '259200000 (3 days)' },
  { key: 'webhookDisableAfterFailures', flag: '--webhook-disable-after-failures', env: 'TIXIAN_WEBHOOK_DISABLE_AFTER_FAILURES', kind: { type: 'int', min: 1, max: 1_000_000 }, unit: 'tries', help: 'failed tries in a row before an endpoint may be disabled' },
  { key: 'allowPrivateWebhooks', flag: '--allow-private-webhooks', env: 'TIXIAN_ALLOW_PRIVATE_WEBHOOKS', kind: { type: 'bool' }, unit: 'on/off', help: 'let live-mode webhook endpoints use http and loopback, private or link-local addresses, and test-mode ones link-local and metadata addresses (off: refused, against SSRF)' },
  { key: 'rateLimit', flag: '--rate-limit', env: 'TIXIAN_RATE_LIMIT', kind: { type: 'int', min: 0, max: 1_000_000 }, unit: 'requests', help: 'requests per window per secret key (403 `rate_limit_exceeded` beyond); 0 turns the limit off' },
  { key: 'rateLimitWindowMs', flag: '--rate-limit-window-ms', env: 'TIXIAN_RATE_LIMIT_WINDOW_MS', kind: { type: 'int', min: 100, max: 3_600_000 }, unit: 'ms', help: 'the rate limit\'s window' },
  { key: 'metrics', flag: '--no-metrics', env: 'TIXIAN_METRICS', kind: { type: 'bool' }, unit: 'on/off', help: 'serve `/metrics` (Prometheus) and count requests' },
  { key: 'metricsToken', flag: null, env: 'TIXIAN_METRICS_TOKEN', kind: { type: 'token', min: 16, max: 256 }, unit: 'text', help: '`/metrics` answers only `Authorization: Bearer <token>` (environment only: a flag would show in `ps`)', defaultText: 'none (open)' },
  { key: 'sqliteGroupCommitMax', flag: '--sqlite-group-commit-max', env: 'TIXIAN_SQLITE_GROUP_COMMIT_MAX', kind: { type: 'int', min: 1, max: 1024 }, unit: 'transactions', help: 'SQLite: write transactions arriving together share one COMMIT (one fsync), each in its own savepoint; at most this many (1: a commit each)' },
  { key: 'role', flag: '--role', env: 'TIXIAN_ROLE', kind: { type: 'enum', values: ['api', 'worker', 'all'] }, unit: 'role', help: '`api`: the v1 API only; `worker`: the payout worker and webhook dispatcher only (serving `/healthz`, `/readyz`, `/metrics`); `all`: both' },
  // `--workers` (the node:cluster word, as `--workers N` in other servers), not `--cluster-workers`:
  // TIXIAN_WORKERS is already the on/off switch of `--no-workers`.
  { key: 'clusterWorkers', flag: '--workers', env: 'TIXIAN_CLUSTER_WORKERS', kind: { type: 'int', min: 0, max: 256 }, unit: 'processes', help: 'processes sharing the port (node:cluster); a crashed one is restarted', defaultText: '0: one per core with PostgreSQL, 1 with SQLite' },
  { key: 'publicUrl', flag: '--public-url', env: 'TIXIAN_PUBLIC_URL', kind: { type: 'public_url' }, unit: 'URL', help: 'the https address channels reach this service at; WeChat Pay transfers then carry `notify_url` = `<url>/channels/wechat/notify/<app>/<mode>` (unset: payouts are found by querying alone)', defaultText: 'none' },
  { key: 'trustProxy', flag: '--trust-proxy', env: 'TIXIAN_TRUST_PROXY', kind: { type: 'trust_proxy' }, unit: 'proxies', help: 'behind a reverse proxy: whose `X-Forwarded-For`/`-Proto`/`-Host` to believe (the client address the login throttle and audit log use, https for the console cookie\'s `Secure`): a hop count (`1`: the one proxy in front), the proxies\' addresses or CIDRs, comma-separated (or `loopback`, `linklocal`, `uniquelocal`), or `true` (every hop: the client can set its own address); `false`: the headers are ignored', defaultText: 'off' },
];

/** What `--port` and friends hand over: strings as typed (booleans for --no-… switches). */
export type ConfigFlags = { [K in keyof Config]?: string | boolean | undefined };

/** A database URL with its password replaced, fit for a message or a log line. */
export function maskDatabaseUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];

/** Parses one setting's text, or throws a ConfigError naming where it came from (`--port`, `TIXIAN_PORT`). */
function parse(setting: Setting, raw: string | boolean, source: string): Config[keyof Config] {
  const fail = (what: string, shown: string = JSON.stringify(raw)): never => {
    throw new ConfigError(`${source} must be ${what}, got ${shown}`);
  };
  const kind = setting.kind;
  if (typeof raw === 'boolean') {
    if (kind.type !== 'bool') fail('a value');
    return raw;
  }
  const text = raw.trim();
  switch (kind.type) {
    case 'string':
      if (text === '') fail('non-empty');
      return text;
    case 'int': {
      const n = /^[+-]?\d+$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(n) || n < kind.min || n > kind.max) fail(`an integer from ${kind.min} to ${kind.max}${setting.unit === 'port' ? '' : ` (${setting.unit})`}`);
      return n;
    }
    case 'fraction': {
      const n = text === '' ? NaN : Number(text);
      if (!(n > 0 && n <= 1)) fail('a number in (0, 1]');
      return n;
    }
    case 'bool': {
      const v = text.toLowerCase();
      if (TRUE_WORDS.includes(v)) return true;
      if (FALSE_WORDS.includes(v)) return false;
      return fail(`one of ${[...TRUE_WORDS, ...FALSE_WORDS].join(', ')}`);
    }
    case 'enum': {
      const v = kind.upper ? text.toUpperCase() : text.toLowerCase();
      if (!kind.values.includes(v)) fail(`one of ${kind.values.join(', ')}`);
      return v;
    }
    case 'database_url':
      if (!/^(postgres(ql)?:\/\/[^\s]+|sqlite:[^\s]+)$/i.test(text)) {
        fail('postgres://user:password@host:5432/database (or sqlite:/path/to/file.db)', JSON.stringify(maskDatabaseUrl(text)));
      }
      return text;
    case 'master_key':
      // The value is a secret: the message says what is wrong, never what was given.
      if (!/^[0-9a-fA-F]{64}$/.test(text)) fail('64 hex characters (32 bytes)', `${text.length} characters`);
      return text.toLowerCase();
    case 'token':
      // A secret too: guessable if short; never echoed.
      if (text.length < kind.min || text.length > kind.max || !/^[\x21-\x7e]+$/.test(text)) {
        fail(`${kind.min}..${kind.max} printable ASCII characters without spaces`, `${text.length} characters`);
      }
      return text;
    case 'public_url': {
      // WeChat Pay wants an https notify URL without a query; plain http only for a local gateway.
      let url: URL | null = null;
      try {
        url = new URL(text);
      } catch {
        url = null;
      }
      const loopback = url !== null && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
      if (!url || text.length > 512 || url.search || url.hash || url.username || url.password || !(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
        fail('an https URL without query or credentials, e.g. https://pay.example.com (plain http only for 127.0.0.1 or localhost)', `${text.length} characters`);
      }
      return text.replace(/\/+$/, '');
    }
    case 'trust_proxy':
      return parseTrustProxy(text, fail);
  }
}

/** The most proxy hops, and entries of an address list, trusted: more is a mistake, not a network. */
export const TRUST_PROXY_HOPS_MAX = 16;
const TRUST_PROXY_ENTRIES_MAX = 64;
/** proxy-addr's names for address ranges. */
const TRUST_PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/**
 * `--trust-proxy`: a whole number is a hop count (`1` is one proxy, not "on": `0` is off either way),
 * `true`/`yes`/`on` every hop, `false`/`no`/`off` none; anything else a comma-separated list of IP
 * addresses, CIDRs (`10.0.0.0/8`) and proxy-addr's range names, each checked here so a typo stops
 * start-up instead of trusting nothing (or failing at the first request).
 */
function parseTrustProxy(text: string, fail: (what: string, shown?: string) => never): TrustProxy {
  const what = `a hop count (1-${TRUST_PROXY_HOPS_MAX}), true, false, or proxy addresses/CIDRs separated by commas (e.g. 10.0.0.0/8,127.0.0.1)`;
  const shown = text.length > 200 ? `${text.length} characters` : JSON.stringify(text);
  const v = text.toLowerCase();
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops > TRUST_PROXY_HOPS_MAX) fail(what, shown);
    return hops === 0 ? false : hops;
  }
  if (['true', 'yes', 'on'].includes(v)) return true;
  if (['false', 'no', 'off'].includes(v)) return false;
  const entries = text.split(',').map((e) => e.trim());
  if (entries.length > TRUST_PROXY_ENTRIES_MAX) fail(`at most ${TRUST_PROXY_ENTRIES_MAX} addresses`, `${entries.length}`);
  return entries.map((entry) => {
    if (TRUST_PROXY_NAMES.includes(entry.toLowerCase())) return entry.toLowerCase();
    if (!isAddressOrCidr(entry)) {
      fail(what, entry === '' ? `an empty entry in ${shown}` : `${JSON.stringify(entry.slice(0, 64))}${text.length === entry.length ? '' : ` in ${shown}`}`);
    }
    return entry;
  });
}

function isAddressOrCidr(entry: string): boolean {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash === -1) return true;
  const bits = entry.slice(slash + 1);
  // A prefix of 1 and up (proxy-addr refuses /0: `true` is how to trust every address).
  return /^\d{1,3}$/.test(bits) && Number(bits) >= 1 && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * All configuration, read once: flags win over TIXIAN_* environment variables, which win over
 * defaults. An empty variable counts as unset. Any invalid value stops start-up with a ConfigError.
 */
export function loadConfig(flags: ConfigFlags = {}, env: Env = process.env): Config {
  const config: Config = { ...defaults };
  const values = config as unknown as Record<string, unknown>;
  for (const setting of settings) {
    const flagValue = flags[setting.key];
    if (flagValue !== undefined) {
      const name = setting.flag ?? setting.env;
      const shownFlag = typeof flagValue === 'boolean' ? name : name.replace(/^--no-/, '--');
      values[setting.key] = parse(setting, flagValue, shownFlag);
      continue;
    }
    const envValue = env[setting.env];
    if (envValue !== undefined && envValue !== '') values[setting.key] = parse(setting, envValue, setting.env);
  }
  return config;
}

