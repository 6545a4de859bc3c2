/**
 * Errors, keyed by the API's `error.type` and the HTTP status (§4). Every error the client throws
 * is a TixianError, so one `instanceof` check catches them all; the subclasses say what to do:
 * fix the request (InvalidRequestError), fix the key (AuthenticationError), slow down
 * (RateLimitError), try later (ApiError, ConnectionError).
 */

export interface TixianErrorInit {
  message: string;
  /** `error.type` from the response, or a client-side type for errors that have no response. */
  type: string;
  code?: string | undefined;
  param?: string | undefined;
  statusCode?: number | undefined;
  requestId?: string | undefined;
  /** The parsed response body, when there was one. */
  raw?: unknown;
  /** How many HTTP attempts were made before this error was thrown (1 = no retry). */
  attempts?: number;
  cause?: unknown;
}

export class TixianError extends Error {
  readonly type: string;
  readonly code: string | undefined;
  readonly param: string | undefined;
  readonly statusCode: number | undefined;
  /** The server's `x-request-id` header: quote it when asking the operator about a failure. */
  readonly requestId: string | undefined;
  readonly raw: unknown;
  readonly attempts: number;

  constructor(init: TixianErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.type = init.type;
    this.code = init.code;
    this.param = init.param;
    this.statusCode = init.statusCode;
    this.requestId = init.requestId;
    this.raw = init.raw;
    this.attempts = init.attempts ?? 1;
  }
}

/** 400/404 and other 4xx: a bad parameter, an unknown id, a forbidden state transition. */
export class InvalidRequestError extends TixianError {}
/** 401: missing or invalid API key. */
export class AuthenticationError extends TixianError {}
/** 402 or `channel_error`: the payout channel refused. */
export class ChannelError extends TixianError {}
/** 403/429: rate limited (Ping++'s SDKs disagree on the status; both are mapped here). */
export class RateLimitError extends TixianError {}
/** 5xx or `api_error`, and any answer that is not the API's JSON. */
export class ApiError extends TixianError {}
/** No HTTP answer: DNS, TCP, TLS, a timeout, or an abort by the caller. The outcome is unknown. */
export class ConnectionError extends TixianError {
  /** True when the request hit its `timeoutMs` (rather than failing to connect or being aborted). */
  readonly timedOut: boolean;
  constructor(init: TixianErrorInit & { timedOut?: boolean }) {
    super(init);
    this.timedOut = init.timedOut ?? false;
  }
}
/** A webhook or response signature did not verify. Never retried. */
export class SignatureVerificationError extends TixianError {}

interface WireError {
  type?: unknown;
  message?: unknown;
  code?: unknown;
  param?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The error for one non-2xx answer. The status decides first where Ping++'s SDKs agree on it
 * (401, 402, 403/429), then `error.type`, then the status class.
 */
export function errorFromResponse(statusCode: number, body: unknown, requestId: string | undefined, attempts: number): TixianError {
  const wire = (body !== null && typeof body === 'object' ? (body as { error?: unknown }).error : undefined) as WireError | undefined;
  const type = str(wire?.type) ?? (statusCode >= 500 ? 'api_error' : 'invalid_request_error');
  const init: TixianErrorInit = {
    message: str(wire?.message) ?? `HTTP ${statusCode} without an API error body`,
    type,
    code: str(wire?.code),
    param: str(wire?.param),
    statusCode,
    requestId,
    raw: body,
    attempts,
  };
  if (statusCode === 401) return new AuthenticationError(init);
  if (statusCode === 403 || statusCode === 429) return new RateLimitError(init);
  if (statusCode === 402 || type === 'channel_error') return new ChannelError(init);
  if (type === 'api_error' || statusCode >= 500 || wire === undefined) return new ApiError(init);
  return new InvalidRequestError(init);
}
