import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { Runtime } from '../runtime.ts';
import type { Db } from '../store/db.ts';
import { isUniqueViolation } from '../store/db.ts';
import { isPostgres } from '../store/engine.ts';
import type { AuditLogRow, OperatorRow } from '../store/schema.ts';
import { newInternalId } from '../domain/ids.ts';
import { constantTimeEqual } from '../security/secrets.ts';
import { BoundedCache } from '../domain/bounded-cache.ts';
import { decoyHash, hashPassword, PASSWORD_MAX, PASSWORD_MIN, verifyPassword } from './passwords.ts';

/** A session lasts 12 hours from login (an operator's working day); logging in again starts a new one. */
export const SESSION_TTL_MS = 12 * 3600_000;
/** Sessions one operator may hold at once (browsers, machines); the oldest go first. */
const SESSIONS_PER_OPERATOR = 20;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,190}$/;

export interface Operator {
  id: string;
  email: string;
  /** null: a platform operator, who sees every account. */
  account_id: string | null;
}

export class OperatorError extends Error {}

export async function createOperator(
  rt: Runtime,
  input: { email: string; password: string; account?: string | undefined; platform?: boolean | undefined },
): Promise<Operator> {
  const email = input.email.trim().toLowerCase();
  if (!EMAIL.test(email)) throw new OperatorError('email must look like name@example.com (at most 255 characters)');
  checkPassword(input.password);
  if (input.platform && input.account) throw new OperatorError('an operator belongs to one account (--account) or to the platform (--platform), not both');
  if (!input.platform && !input.account) throw new OperatorError('say which merchant account the operator belongs to (--account NAME), or --platform for one who sees all');
  let accountId: string | null = null;
  if (input.account) {
    const account = await rt.store.db.selectFrom('accounts').select('id').where('name', '=', input.account).executeTakeFirst();
    if (!account) throw new OperatorError(`no such account: ${input.account} (tixian apps create --account NAME makes one)`);
    accountId = account.id;
  }
  const row: OperatorRow = {
    id: newInternalId('op'),
    email,
    password_hash: await hashPassword(input.password),
    account_id: accountId,
    disabled: 0,
    created: Math.floor(rt.clock.nowMs() / 1000),
  };
  try {
    // With its audit line (actor `cli`, as disable, enable and set-password), in one transaction.
    await rt.store.transaction(async (trx) => {
      await trx.insertInto('operators').values(row).execute();
      await writeAudit(trx, rt, { operator: CLI_ACTOR, action: 'operator.create', target: row.id, accountId, ip: null, detail: { email, platform: accountId === null } });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new OperatorError(`an operator with email ${email} already exists`);
    throw err;
  }
  return { id: row.id, email, account_id: accountId };
}

/**
 * Who made a change from the CLI, in the audit log: no operator (the command runs with the
 * database's own access, not a console login), shown as `cli`.
 */
export const CLI_ACTOR: AuditActor = { id: null, email: 'cli', account_id: null };

export interface OperatorChange {
  operator: Operator;
  /** Whether the operator was disabled before the change. */
  wasDisabled: boolean;
  /** Sessions deleted with the change. */
  sessionsEnded: number;
}

/** The operator with this e-mail, in the caller's transaction, or an OperatorError (nothing is changed). */
async function operatorByEmail(trx: Db, email: string): Promise<OperatorRow> {
  const normalised = email.trim().toLowerCase();
  if (!EMAIL.test(normalised)) throw new OperatorError('email must look like name@example.com (at most 255 characters)');
  const row = await trx.selectFrom('operators').selectAll().where('email', '=', normalised).executeTakeFirst();
  if (!row) throw new OperatorError(`no operator with email ${normalised} (tixian operators list shows them)`);
  return row;
}

/** Deletes every session of an operator; how many there were. */
async function endSessions(trx: Db, operatorId: string): Promise<number> {
  const [result] = await trx.deleteFrom('operator_sessions').where('operator_id', '=', operatorId).execute();
  return Number(result?.numDeletedRows ?? 0);
}

/**
 * Disables or enables an operator. Disabling also deletes every session they hold, in the same
 * transaction as the flag and its audit line: a cut-off operator's open console is logged out at
 * its next request (sessionOperator also refuses a disabled operator's session; deleting them
 * leaves nothing to refuse). Enabling lets them log in again; it makes no session.
 */
export async function setOperatorDisabled(rt: Runtime, email: string, disabled: boolean, actor: AuditActor = CLI_ACTOR): Promise<OperatorChange> {
  return rt.store.transaction(async (trx) => {
    const row = await operatorByEmail(trx, email);
    await trx.updateTable('operators').set({ disabled: disabled ? 1 : 0 }).where('id', '=', row.id).execute();
    const sessionsEnded = disabled ? await endSessions(trx, row.id) : 0;
    const wasDisabled = Boolean(row.disabled);
    await writeAudit(trx, rt, {
      operator: actor, action: disabled ? 'operator.disable' : 'operator.enable', target: row.id, accountId: row.account_id, ip: null,
      detail: { email: row.email, was_disabled: wasDisabled, ...(disabled ? { sessions_ended: sessionsEnded } : {}) },
    });
    return { operator: toOperator(row), wasDisabled, sessionsEnded };
  });
}

/**
 * Gives an operator a new password (checked and hashed as at creation) and deletes every session
 * they hold, in one transaction with its audit line (which never holds the password): a reset after
 * a compromise logs out whoever had the old one.
 */
export async function setOperatorPassword(rt: Runtime, email: string, password: string, actor: AuditActor = CLI_ACTOR): Promise<OperatorChange> {
  checkPassword(password);
  // The existence check runs before the slow hash too, so an unknown e-mail is refused at once.
  await operatorByEmail(rt.store.db, email);
  const passwordHash = await hashPassword(password);
  return rt.store.transaction(async (trx) => {
    const row = await operatorByEmail(trx, email);
    await trx.updateTable('operators').set({ password_hash: passwordHash }).where('id', '=', row.id).execute();
    const sessionsEnded = await endSessions(trx, row.id);
    await writeAudit(trx, rt, {
      operator: actor, action: 'operator.set_password', target: row.id, accountId: row.account_id, ip: null,
      detail: { email: row.email, sessions_ended: sessionsEnded },
    });
    return { operator: toOperator(row), wasDisabled: Boolean(row.disabled), sessionsEnded };
  });
}

function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new OperatorError(`password must be ${PASSWORD_MIN}-${PASSWORD_MAX} characters`);
  }
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * The CSRF token of a session: an HMAC of the session token, so it needs no storage and is
 * useless without the HttpOnly cookie it belongs to. Sent by the console in `x-csrf-token`.
 */
export const csrfTokenFor = (sessionToken: string) => createHmac('sha256', sessionToken).update('tixian-csrf').digest('base64url');

export function csrfMatches(sessionToken: string, sent: string | undefined): boolean {
  return typeof sent === 'string' && sent.length <= 128 && constantTimeEqual(sent, csrfTokenFor(sessionToken));
}

/**
 * Login throttle: at most LOGIN_FAILURES_MAX failed logins per e-mail and per client address in a
 * window; a success clears the e-mail's count. Per process (several processes each allow as many);
 * bounded, so a flood of made-up e-mails cannot grow it. A try counts from the moment it is let
 * through (`tried`), not when its password has been found wrong: the check takes ~100 ms, and a
 * burst of tries sent at once all passed `blockedFor` before the first failure was counted.
 */
export const LOGIN_FAILURES_MAX = 5;
export const LOGIN_WINDOW_MS = 15 * 60_000;
export class LoginThrottle {
  private readonly failures = new BoundedCache<string, { count: number; sinceMs: number }>(10_000);
  constructor(private readonly nowMs: () => number) {}

  private count(key: string): number {
    const f = this.failures.get(key);
    if (!f || this.nowMs() - f.sinceMs > LOGIN_WINDOW_MS) return 0;
    return f.count;
  }
  /** Milliseconds until another try is allowed, or 0. */
  blockedFor(email: string, ip: string): number {
    for (const key of [`e:${email}`, `i:${ip}`]) {
      // An address may fail more than one e-mail's worth: a shared office NAT.
      const max = key.startsWith('i:') ? LOGIN_FAILURES_MAX * 4 : LOGIN_FAILURES_MAX;
      if (this.count(key) >= max) return Math.max(1, LOGIN_WINDOW_MS - (this.nowMs() - this.failures.get(key)!.sinceMs));
    }
    return 0;
  }
  /** Counts a try against the e-mail and the address, before its password is checked. */
  tried(email: string, ip: string): void {
    for (const key of [`e:${email}`, `i:${ip}`]) {
      const n = this.count(key);
      this.failures.set(key, n === 0 ? { count: 1, sinceMs: this.nowMs() } : { count: n + 1, sinceMs: this.failures.get(key)!.sinceMs });
    }
  }
  /** The password was right: the e-mail starts afresh and the address gets this try back. */
  succeeded(email: string, ip: string): void {
    this.failures.delete(`e:${email}`);
    const n = this.count(`i:${ip}`);
    if (n > 0) this.failures.set(`i:${ip}`, { count: n - 1, sinceMs: this.failures.get(`i:${ip}`)!.sinceMs });
  }
}

/** Checks a password; a new session's token (the cookie value), or null. Unknown e-mails take as long as wrong passwords. */
export async function login(rt: Runtime, email: string, password: string, ip: string | null): Promise<{ operator: Operator; token: string } | null> {
  const normalised = email.trim().toLowerCase();
  const row = await rt.store.db.selectFrom('operators').selectAll().where('email', '=', normalised).executeTakeFirst();
  const ok = await verifyPassword(password, row?.password_hash ?? (await decoyHash()));
  if (!row || !ok || row.disabled) return null;
  const token = randomBytes(32).toString('base64url');
  const nowMs = rt.clock.nowMs();
  const opened = await rt.store.transaction(async (trx) => {
    // The operator must still be as the password was checked against: a disable or new password
    // committed during the check (~100 ms) deleted the sessions, and must not be followed by one
    // made with the old password. The row lock (PostgreSQL) orders this against such a change, which
    // then deletes this session too; SQLite runs one writing transaction at a time.
    let current = trx.selectFrom('operators').select('id').where('id', '=', row.id).where('password_hash', '=', row.password_hash).where('disabled', '=', 0);
    if (isPostgres(trx)) current = current.forUpdate();
    if (!(await current.executeTakeFirst())) return false;
    await trx.insertInto('operator_sessions').values({ token_hash: hashToken(token), operator_id: row.id, created_ms: nowMs, expires_ms: nowMs + SESSION_TTL_MS }).execute();
    // Expired sessions and those beyond the per-operator bound go now: the table stays small.
    await trx.deleteFrom('operator_sessions').where('operator_id', '=', row.id).where('expires_ms', '<=', nowMs).execute();
    const keep = await trx.selectFrom('operator_sessions').select('token_hash').where('operator_id', '=', row.id)
      .orderBy('created_ms', 'desc').limit(SESSIONS_PER_OPERATOR).execute();
    if (keep.length === SESSIONS_PER_OPERATOR) {
      await trx.deleteFrom('operator_sessions').where('operator_id', '=', row.id).where('token_hash', 'not in', keep.map((k) => k.token_hash)).execute();
    }
    await writeAudit(trx, rt, { operator: toOperator(row), action: 'login', ip });
    return true;
  });
  return opened ? { operator: toOperator(row), token } : null;
}

export async function sessionOperator(rt: Runtime, token: string): Promise<Operator | null> {
  if (token.length > 128) return null;
  const row = await rt.store.db
    .selectFrom('operator_sessions')
    .innerJoin('operators', 'operators.id', 'operator_sessions.operator_id')
    .select(['operators.id', 'operators.email', 'operators.account_id', 'operators.disabled', 'operator_sessions.expires_ms'])
    .where('operator_sessions.token_hash', '=', hashToken(token))
    .executeTakeFirst();
  if (!row || row.disabled || Number(row.expires_ms) <= rt.clock.nowMs()) return null;
  return { id: row.id, email: row.email, account_id: row.account_id };
}

export async function logout(rt: Runtime, token: string, operator: Operator, ip: string | null): Promise<void> {
  await rt.store.transaction(async (trx) => {
    await trx.deleteFrom('operator_sessions').where('token_hash', '=', hashToken(token)).execute();
    await writeAudit(trx, rt, { operator, action: 'logout', ip });
  });
}

const toOperator = (row: OperatorRow): Operator => ({ id: row.id, email: row.email, account_id: row.account_id });

/** Who an audit line names: an operator, or CLI_ACTOR for a change made with the CLI (no operator id). */
export interface AuditActor {
  id: string | null;
  email: string;
  account_id: string | null;
}

export interface AuditInput {
  operator: AuditActor;
  action: string;
  app?: string | null;
  livemode?: boolean | null;
  target?: string | null;
  detail?: Record<string, unknown>;
  ip: string | null;
  /** The account the action touched (defaults to the operator's). */
  accountId?: string | null;
}

/**
 * Audit ids sort like the lines were written (the list pages by created, id): the time in ms, then
 * a per-process sequence for lines of the same millisecond (a batch), then randomness.
 */
let auditSeq = 0;
function auditId(nowMs: number): string {
  auditSeq = (auditSeq + 1) % 36 ** 4;
  return newInternalId(`aud_${nowMs.toString(36).padStart(9, '0')}${auditSeq.toString(36).padStart(4, '0')}`);
}

/** Writes one audit line, in the caller's transaction: the change and its record commit together. */
export async function writeAudit(trx: Db, rt: Runtime, a: AuditInput): Promise<void> {
  const nowMs = rt.clock.nowMs();
  const row: AuditLogRow = {
    id: auditId(nowMs),
    created: Math.floor(nowMs / 1000),
    operator_id: a.operator.id,
    operator_email: a.operator.email,
    account_id: a.accountId ?? a.operator.account_id,
    action: a.action,
    app: a.app ?? null,
    livemode: a.livemode === undefined || a.livemode === null ? null : a.livemode ? 1 : 0,
    target: a.target ?? null,
    detail: JSON.stringify(a.detail ?? {}),
    ip: a.ip,
  };
  await trx.insertInto('audit_log').values(row).execute();
}

