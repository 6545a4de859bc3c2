/**
 * The one error type of the API. Ping++'s wire shape is
 * {"error": {"type", "message", "code"?, "param"?}}; `code` and `param` are omitted when unused,
 * never null and never numbers (pingpp-go type-asserts them to string and panics otherwise).
 * Messages are kept in Chinese (Ping++'s default) and English (when Accept-Language starts with `en`).
 */
export type ApiErrorType = 'invalid_request_error' | 'api_error' | 'channel_error';

export interface ApiErrorInit {
  status: number;
  type?: ApiErrorType;
  zh: string;
  en: string;
  code?: string;
  param?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly type: ApiErrorType;
  readonly zh: string;
  readonly en: string;
  readonly code: string | undefined;
  readonly param: string | undefined;

  constructor(init: ApiErrorInit) {
    super(init.en);
    this.name = 'ApiError';
    this.status = init.status;
    this.type = init.type ?? 'invalid_request_error';
    this.zh = init.zh;
    this.en = init.en;
    this.code = init.code;
    this.param = init.param;
  }

  toJSON(lang: 'zh' | 'en' = 'zh'): { error: Record<string, string> } {
    const error: Record<string, string> = { type: this.type, message: lang === 'en' ? this.en : this.zh };
    if (this.code !== undefined) error.code = this.code;
    if (this.param !== undefined) error.param = this.param;
    return { error };
  }
}

/** A catalogue of the errors we raise, so wording stays consistent across resources. */
export const errors = {
  invalidParam: (param: string, detail: string, detailZh = detail) =>
    new ApiError({
      status: 400, param, code: 'invalid_parameter',
      zh: `参数 ${param} 无效：${detailZh}。`, en: `Invalid parameter ${param}: ${detail}.`,
    }),
  missingParam: (param: string) =>
    new ApiError({
      status: 400, param, code: 'missing_parameter',
      zh: `缺少参数 ${param}。`, en: `Missing required parameter ${param}.`,
    }),
  unknownParam: (param: string) =>
    new ApiError({
      status: 400, param, code: 'unknown_parameter',
      zh: `不支持的参数 ${param}。`, en: `Unknown parameter ${param}.`,
    }),
  notFound: (object: string, id: string, param = 'id') =>
    new ApiError({
      status: 404, param, code: 'resource_missing',
      zh: `未找到 ${object} : ${id}。`, en: `No such ${object}: ${id}.`,
    }),
  routeNotFound: (method: string, url: string) =>
    new ApiError({
      status: 404, code: 'route_not_found',
      zh: `未找到请求的路径 ${method} ${url}。`, en: `Unrecognized request URL (${method}: ${url}).`,
    }),
  invalidApiKey: (masked: string) =>
    new ApiError({
      status: 401, code: 'invalid_api_key',
      zh: `提供了无效的 API KEY: ${masked}。`, en: `Invalid API key provided: ${masked}.`,
    }),
  missingApiKey: () =>
    new ApiError({
      status: 401, code: 'missing_api_key',
      zh: '没有提供 API KEY，需要在 Authorization 中加入 API KEY。',
      en: 'No API key provided. Set your API key in the Authorization header.',
    }),
  duplicateOrderNo: (orderNo: string) =>
    new ApiError({
      status: 400, param: 'order_no', code: 'duplicate_order_no',
      zh: `订单号 ${orderNo} 已被使用。`, en: `order_no ${orderNo} has already been used.`,
    }),
  insufficientBalance: (param = 'amount') =>
    new ApiError({
      status: 400, param, code: 'insufficient_balance',
      zh: '用户可提现余额不足。', en: "The user's withdrawable balance is insufficient.",
    }),
  userNotFound: (id: string, param = 'user') =>
    new ApiError({
      status: 400, param, code: 'user_not_found',
      zh: `未找到 user : ${id}。`, en: `No such user: ${id}.`,
    }),
  userDisabled: (id: string, param = 'user') =>
    new ApiError({
      status: 400, param, code: 'user_disabled',
      zh: `用户 ${id} 已被禁用。`, en: `User ${id} is disabled.`,
    }),
  duplicateUser: (id: string) =>
    new ApiError({
      status: 400, param: 'id', code: 'duplicate_user',
      zh: `用户 ${id} 已存在。`, en: `User ${id} already exists.`,
    }),
  badJson: () =>
    new ApiError({
      status: 400, code: 'invalid_json',
      zh: '请求体不是有效的 JSON 对象。', en: 'The request body is not a valid JSON object.',
    }),
  badContentType: (contentType: string) =>
    new ApiError({
      status: 415, code: 'unsupported_content_type',
      zh: `不支持的 Content-Type: ${contentType}，请使用 application/json。`,
      en: `Unsupported Content-Type ${contentType}; send application/json.`,
    }),
  bodyTooLarge: (limitBytes: number) =>
    new ApiError({
      status: 413, code: 'request_too_large',
      zh: `请求体超过 ${limitBytes} 字节。`, en: `The request body exceeds ${limitBytes} bytes.`,
    }),
  statusCannotBeUpdated: (object: string, id: string, status: string) =>
    new ApiError({
      status: 400, param: 'status', code: 'invalid_state',
      zh: `${object} ${id} 当前状态为 ${status}，不能被更新状态。`,
      en: `${object} ${id} is ${status} and its status cannot be updated.`,
    }),
  // 403, not 429: Ping++'s Node, Python, Ruby and Java SDKs map 403 to their RateLimitError (spec §4.2).
  rateLimited: (retryAfterS = 1) =>
    new ApiError({
      status: 403, code: 'rate_limit_exceeded',
      zh: `请求过于频繁，请 ${retryAfterS} 秒后再试。`, en: `Too many requests; retry after ${retryAfterS} s.`,
    }),
  channelNotConfigured: (channel: string) =>
    new ApiError({
      status: 402, type: 'channel_error', param: 'channel', code: 'channel_not_configured',
      zh: `渠道 ${channel} 未配置真实付款驱动，Live 模式不能确认提现。`,
      en: `No payout driver is configured for channel ${channel} in live mode; the withdrawal cannot be confirmed.`,
    }),
  channelCredentialsMissing: (channel: string) =>
    new ApiError({
      status: 402, type: 'channel_error', param: 'channel', code: 'channel_not_configured',
      zh: `该应用未设置 ${channel} 渠道的 Live 凭据（tixian channels set），不能确认提现。`,
      en: `This app has no live ${channel} credentials (tixian channels set); the withdrawal cannot be confirmed.`,
    }),
  balanceLimitExceeded: (user: string) =>
    new ApiError({
      status: 400, param: 'amount', code: 'balance_limit_exceeded',
      zh: `该笔入账会使用户 ${user} 的余额（含提现中冻结的金额）超过 2147483647 分。`,
      en: `This credit would take the balance of user ${user} (with what their open withdrawals hold) above 2147483647 fen.`,
    }),
  uriTooLong: () => new ApiError({ status: 414, code: 'uri_too_long', zh: '请求路径过长。', en: 'The request path is too long.' }),
  invalidUrl: () => new ApiError({ status: 400, code: 'invalid_url', zh: '请求路径不是有效的 URL。', en: 'The request path is not a valid URL.' }),
  internal: (requestId: string) =>
    new ApiError({
      status: 500, type: 'api_error', code: 'internal_error',
      zh: `服务器内部错误，请求 ID：${requestId}。`, en: `Internal server error (request ${requestId}).`,
    }),
  databaseBusy: () =>
    new ApiError({
      status: 503, type: 'api_error', code: 'database_busy',
      zh: '数据库繁忙，请稍后重试。', en: 'The database is busy: try again shortly.',
    }),
  shuttingDown: () =>
    new ApiError({
      status: 503, type: 'api_error', code: 'service_unavailable',
      zh: '服务正在停止，本次请求未处理，请重试。', en: 'The server is shutting down; the request was not processed: send it again.',
    }),
  // Request signatures (§3). The zh texts are Ping++'s own (pingpp-java #30, pingpp-python #20).
  signatureMissing: () =>
    new ApiError({
      status: 400, code: 'signature_missing',
      zh: '没有提供签名串，需要在 header 中加入签名串。',
      en: 'No signature provided. Sign the request and send the signature in the Pingplusplus-Signature header.',
    }),
  signatureInvalid: () =>
    new ApiError({
      status: 400, code: 'signature_invalid',
      zh: '提供了无效的签名', en: 'Invalid signature provided.',
    }),
  timestampInvalid: () =>
    new ApiError({
      status: 400, code: 'timestamp_invalid',
      zh: '签名请求缺少有效的 Pingplusplus-Request-Timestamp（Unix 秒）。',
      en: 'A signed request needs a valid Pingplusplus-Request-Timestamp header (Unix seconds).',
    }),
  timestampExpired: (toleranceS: number) =>
    new ApiError({
      status: 400, code: 'timestamp_expired',
      zh: `请求时间戳与服务器时间相差超过 ${toleranceS} 秒，请校准时钟后重新签名。`,
      en: `The request timestamp is more than ${toleranceS} seconds away from the server's clock; check the clock and sign again.`,
    }),
  settleAccountLimit: (user: string, max: number) =>
    new ApiError({
      status: 400, param: 'user', code: 'settle_account_limit',
      zh: `用户 ${user} 的结算账户已达上限 ${max} 个，请先删除不再使用的结算账户。`,
      en: `User ${user} already has ${max} settle accounts, the maximum; delete one first.`,
    }),
  settleAccountNotUsable: (id: string) =>
    new ApiError({
      status: 400, param: 'settle_account', code: 'settle_account_not_usable',
      zh: `该用户没有可用的结算账户 ${id}。`, en: `No usable settle account ${id} for this user.`,
    }),
  tooManyWebhookEndpoints: (max: number) =>
    new ApiError({
      status: 400, param: 'url', code: 'webhook_endpoint_limit',
      zh: `该应用在此模式下的 Webhooks 通知地址已达上限 ${max} 个，请先删除不再使用的地址。`,
      en: `This app already has ${max} webhook endpoints in this mode, the maximum; remove one first.`,
    }),
} as const;
