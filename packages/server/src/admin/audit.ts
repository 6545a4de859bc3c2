import type { Runtime } from '../runtime.ts';
import type { AuditLogRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';

export function auditToWire(row: AuditLogRow) {
  return {
    id: row.id, created: Number(row.created), operator: row.operator_email, action: row.action, app: row.app,
    livemode: row.livemode === null ? null : row.livemode === 1, target: row.target, detail: JSON.parse(row.detail) as unknown, ip: row.ip,
  };
}

/**
 * Audit lines newest first; an account's operators see only their account's lines (the cursor
 * too: another account's line is no place to page from). A target is any text (user ids are the
 * merchant's to choose), so a view of one object also names its account and app.
 */
export async function auditLines(
  rt: Runtime,
  p: { accountId: string | null; app?: string | undefined; target?: string | undefined; limit: number; startingAfter?: string | undefined },
): Promise<{ data: ReturnType<typeof auditToWire>[]; has_more: boolean }> {
  const db = rt.store.db;
  let qb = db.selectFrom('audit_log').selectAll();
  if (p.accountId !== null) qb = qb.where('account_id', '=', p.accountId);
  if (p.app) qb = qb.where('app', '=', p.app);
  if (p.target) qb = qb.where('target', '=', p.target);
  if (p.startingAfter) {
    let cursorQb = db.selectFrom('audit_log').select(['created', 'id']).where('id', '=', p.startingAfter);
    if (p.accountId !== null) cursorQb = cursorQb.where('account_id', '=', p.accountId);
    const cursor = await cursorQb.executeTakeFirst();
    if (!cursor) throw errors.invalidParam('starting_after', 'no such audit line', '没有这条审计记录');
    qb = qb.where((eb) => eb.or([eb('created', '<', cursor.created), eb.and([eb('created', '=', cursor.created), eb('id', '<', cursor.id)])]));
  }
  const rows = (await qb.orderBy('created', 'desc').orderBy('id', 'desc').limit(p.limit + 1).execute()) as AuditLogRow[];
  return { data: rows.slice(0, p.limit).map(auditToWire), has_more: rows.length > p.limit };
}
