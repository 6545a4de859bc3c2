/**
 * The console's calls to the management API (/admin/…). The session is an HttpOnly cookie the
 * page never sees; every change carries the session's CSRF token, which the login (or GET
 * /admin/session after a reload) hands to this page only.
 */
let csrfToken: string | null = null;

export interface Operator {
  id: string;
  email: string;
  account_id: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'accept-language': document.documentElement.lang.startsWith('en') ? 'en' : 'zh-CN' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const res = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const json = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  if (!res.ok) {
    if (res.status === 401 && json.error?.code === 'session_required') window.dispatchEvent(new Event('tixian:logged-out'));
    throw new ApiError(res.status, json.error?.code, json.error?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export async function currentSession(): Promise<Operator | null> {
  try {
    const s = await api<{ operator: Operator; csrf_token: string }>('GET', '/admin/session');
    csrfToken = s.csrf_token;
    return s.operator;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function logIn(email: string, password: string): Promise<Operator> {
  const s = await api<{ operator: Operator; csrf_token: string }>('POST', '/admin/session', { email, password });
  csrfToken = s.csrf_token;
  return s.operator;
}

export async function logOut(): Promise<void> {
  await api('DELETE', '/admin/session');
  csrfToken = null;
}

export interface App {
  id: string;
  name: string;
  account: string;
  account_name: string;
}

export interface Withdrawal {
  id: string;
  app: string;
  amount: number;
  user_fee: number;
  channel: string;
  status: 'created' | 'pending' | 'succeeded' | 'failed' | 'canceled';
  order_no: string;
  user: string;
  created: number;
  description: string | null;
  failure_msg: string | null;
  time_succeeded: number | null;
  time_canceled: number | null;
  extra: Record<string, unknown>;
  settle_account: string | null;
}

export interface AuditLine {
  id: string;
  created: number;
  operator: string;
  action: string;
  app: string | null;
  livemode: boolean | null;
  target: string | null;
  detail: Record<string, unknown>;
  ip: string | null;
}

export interface WithdrawalDetail {
  withdrawal: Withdrawal;
  balance_transactions: { id: string; type: string; amount: number; available_balance: number; created: number; description: string | null }[];
  events: { id: string; type: string; created: number; pending_webhooks: number }[];
  webhook_deliveries: {
    id: string;
    event_id: string;
    status: string;
    attempts: number;
    last_status_code: number | null;
    url: string;
    attempts_list: { id: string; attempted_ms: number; status_code: number | null; duration_ms: number; error: string | null; response_body: string | null }[];
  }[];
  audit: AuditLine[];
}

export interface Overview {
  today: { status: string; count: number; amount: number }[];
  week: { status: string; count: number; amount: number }[];
  waiting: number;
  daily: { day: string; count: number; amount: number; succeeded: number; failed: number }[];
  failing_endpoints: { id: string; url: string; failure_streak: number; failing_since_ms: number | null; auto_disabled: boolean }[];
}

/** Money is fen on the wire; shown as yuan with two decimals, computed without floats. */
export function yuan(fen: number): string {
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  return `${sign}¥${Math.floor(abs / 100).toLocaleString('en-US')}.${String(abs % 100).padStart(2, '0')}`;
}

export const dateTime = (s: number) => new Date(s * 1000).toLocaleString('zh-CN', { hour12: false });
