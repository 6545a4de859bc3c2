import type { KeyObject } from 'node:crypto';
import { ApiError, ConnectionError, SignatureVerificationError, TixianError, errorFromResponse } from './errors.ts';
import { signRequest, verifyBytes } from './signing.ts';

export const VERSION = '0.1.0';
const USER_AGENT = `Tixian/v1 TixianNodeSDK/${VERSION} node/${process.versions.node}`;

/** Per-call overrides. */
export interface RequestOptions {
  /** Time allowed for one attempt, from sending to the last byte of the answer. */
  timeoutMs?: number;
  /** Retries (0…10) after a connection error or timeout, for requests that are safe to repeat. */
  maxNetworkRetries?: number;
  /** Aborts the call (and any pending retry); the call then rejects with a ConnectionError. */
  signal?: AbortSignal;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One API call, as a resource method describes it. */
export interface ApiRequest {
  method: HttpMethod;
  /** Path after `/v1`, ids already encoded: `/apps/app_1/withdrawals/1701…`. */
  path: string;
  query?: object | undefined;
  body?: object | undefined;
  /**
   * Whether sending this request twice has the effect of sending it once, so that a request whose
   * answer was lost may be sent again. Each resource method states it at the call site.
   */
  idempotent: boolean;
}

export interface HttpConfig {
  apiKey: string;
  /** Scheme, host and optional path prefix; the client adds `/v1`. */
  baseUrl: string;
  timeoutMs: number;
  maxNetworkRetries: number;
  privateKey: KeyObject | undefined;
  platformPublicKey: KeyObject | undefined;
  acceptLanguage: string | undefined;
  fetch: typeof fetch;
}

/** Bounds (TIGER_STYLE: a limit on everything). */
export const MAX_NETWORK_RETRIES = 10;
const RETRY_INITIAL_DELAY_MS = 500;
const RETRY_MAX_DELAY_MS = 8_000;
/** Statuses meaning "the request probably never reached the API" (a proxy or a server shutting down). */
const RETRYABLE_STATUSES = new Set([502, 503, 504]);

/**
 * Sends API requests: authentication, signing, timeouts, retries, error mapping. It knows nothing
 * about resources; every resource method is one `request()` with its path and idempotency.
 */
export class HttpClient {
  constructor(readonly config: HttpConfig) {}

  async request<T>(req: ApiRequest, options: RequestOptions = {}): Promise<T> {
    const maxRetries = options.maxNetworkRetries === undefined ? this.config.maxNetworkRetries : checkRetries(options.maxNetworkRetries);
    const timeoutMs = options.timeoutMs === undefined ? this.config.timeoutMs : checkTimeout(options.timeoutMs);
    const url = this.url(req);
    const body = req.body === undefined ? '' : JSON.stringify(req.body);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt<T>(req.method, url, body, timeoutMs, options.signal, attempt);
      } catch (err) {
        if (!(req.idempotent && attempt <= maxRetries && isRetryable(err, options.signal))) throw err;
        await sleep(backoffMs(attempt), options.signal, attempt);
      }
    }
  }

  private url(req: ApiRequest): URL {
    const qs = req.query === undefined ? '' : encodeQuery(req.query);
    return new URL(this.config.baseUrl + '/v1' + req.path + (qs ? '?' + qs : ''));
  }

  private async attempt<T>(method: HttpMethod, url: URL, body: string, timeoutMs: number, callerSignal: AbortSignal | undefined, attempt: number): Promise<T> {
    // Aborted before this attempt was sent: `attempt - 1` attempts were made.
    if (callerSignal?.aborted) throw abortError(callerSignal, attempt - 1);
    // A new timestamp (and signature) per attempt: the server bounds a signed request's age.
    const timestampS = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.config.apiKey}`,
      accept: 'application/json',
      'user-agent': USER_AGENT,
      'pingplusplus-request-timestamp': timestampS,
    };
    if (body) headers['content-type'] = 'application/json; charset=UTF-8';
    if (this.config.acceptLanguage) headers['accept-language'] = this.config.acceptLanguage;
    // The request-target exactly as fetch sends it: path (with /v1) and query, no scheme or host.
    if (this.config.privateKey) headers['pingplusplus-signature'] = signRequest(this.config.privateKey, body, url.pathname + url.search, timestampS);

    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal ? AbortSignal.any([timeout, callerSignal]) : timeout;
    let status: number;
    let responseHeaders: Headers;
    let bytes: Buffer;
    try {
      const res = await this.config.fetch(url, { method, headers, ...(body ? { body } : {}), signal, redirect: 'error' });
      status = res.status;
      responseHeaders = res.headers;
      bytes = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      if (callerSignal?.aborted) throw abortError(callerSignal, attempt);
      throw connectionError(err, { timedOut: timeout.aborted, timeoutMs, method, url, attempt });
    }

    const requestId = responseHeaders.get('x-request-id') ?? undefined;
    const text = bytes.toString('utf8');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (status < 200 || status >= 300) throw errorFromResponse(status, json ?? text, requestId, attempt);

    if (this.config.platformPublicKey) {
      const signature = responseHeaders.get('x-pingplusplus-signature');
      if (!signature || !verifyBytes(bytes, signature, this.config.platformPublicKey)) {
        throw new SignatureVerificationError({
          message: signature ? 'X-Pingplusplus-Signature does not match the response body' : 'the response carries no X-Pingplusplus-Signature',
          type: 'signature_verification_error', statusCode: status, requestId, raw: json, attempts: attempt,
        });
      }
    }
    if (json === undefined || json === null || typeof json !== 'object') {
      throw new ApiError({ message: `HTTP ${status} with a body that is not a JSON object`, type: 'api_error', statusCode: status, requestId, raw: text, attempts: attempt });
    }
    return json as T;
  }
}

function connectionError(
  err: unknown,
  ctx: { timedOut: boolean; timeoutMs: number; method: string; url: URL; attempt: number },
): ConnectionError {
  const where = `${ctx.method} ${ctx.url.pathname}`;
  const detail = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
  return new ConnectionError({
    message: ctx.timedOut ? `${where} timed out after ${ctx.timeoutMs} ms` : `${where} failed before an answer arrived: ${detail}`,
    type: 'connection_error',
    timedOut: ctx.timedOut,
    attempts: ctx.attempt,
    cause: err,
  });
}

function isRetryable(err: unknown, callerSignal: AbortSignal | undefined): boolean {
  if (callerSignal?.aborted) return false;
  if (err instanceof ConnectionError) return true;
  return err instanceof TixianError && err.statusCode !== undefined && RETRYABLE_STATUSES.has(err.statusCode);
}

/** Timeouts are bounded too: at least 1 ms, at most 10 minutes. */
export function checkTimeout(ms: number): number {
  if (!Number.isInteger(ms) || ms < 1 || ms > 600_000) throw new RangeError(`timeoutMs must be an integer in 1..600000, got ${ms}`);
  return ms;
}

/** Retries are bounded the same way for the client and for one call: an integer in 0..10. */
export function checkRetries(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_NETWORK_RETRIES) {
    throw new RangeError(`maxNetworkRetries must be an integer in 0..${MAX_NETWORK_RETRIES}, got ${n}`);
  }
  return n;
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at 8 s, each scaled by 50–100 %. */
export function backoffMs(attempt: number): number {
  const base = Math.min(RETRY_MAX_DELAY_MS, RETRY_INITIAL_DELAY_MS * 2 ** (attempt - 1));
  return Math.round(base * (0.5 + Math.random() * 0.5));
}

/** The wait before a retry; `attempts` (made so far) goes into the error when the caller aborts it. */
function sleep(ms: number, signal: AbortSignal | undefined, attempts: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal, attempts));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!, attempts));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal, attempts: number): ConnectionError {
  return new ConnectionError({ message: 'aborted by the caller', type: 'connection_error', cause: signal.reason, attempts });
}

/**
 * Query strings the way Ping++'s Node SDK writes them: nested keys with encoded brackets
 * (`created%5Bgte%5D=1`), arrays as repeated keys, booleans as `true`/`false`; `undefined` and
 * `null` are left out.
 */
export function encodeQuery(params: object): string {
  const parts: string[] = [];
  const add = (key: string, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) {
      for (const v of value) add(key, v);
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) add(`${key}[${k}]`, v);
    } else {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
    }
  };
  for (const [k, v] of Object.entries(params)) add(k, v);
  return parts.join('&');
}

/**
 * An id as one path segment. `.` and `..` are refused: encodeURIComponent leaves dots alone and
 * URL parsing would resolve them, sending the request to another path (`del('u1', '..')` would
 * become `DELETE …/users/u1/`).
 */
export function seg(id: string): string {
  if (typeof id !== 'string' || id === '' || id === '.' || id === '..') {
    throw new TypeError(`expected an id string other than "", "." and "..", got ${JSON.stringify(id)}`);
  }
  return encodeURIComponent(id);
}
