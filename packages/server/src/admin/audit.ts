import type { Runtime } from '../runtime.ts';
import type { AuditLogRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';

export function auditToWire(row: AuditLogRow) {
  return {
    id: row.id, created: Number(row.created), operator: row.operator_email, action: row.action, app: row.app,
    livemode: row.livemode === null ? null : row.livemode === 1, target: row.target, detail: JSON.parse(row.detail) as unknown, ip: row.ip,
  };
}

/** Audit lines newest first; an account's operators see only their account's lines. */
export async function auditLines(
  rt: Runtime,
  p: { accountId: string | null; target?: string | undefined; limit: number; startingAfter?: string | undefined },
): Promise<{ data: ReturnType<typeof auditToWire>[]; has_more: boolean }> {
  const db = rt.store.db;
  let qb = db.selectFrom('audit_log').selectAll();
  if (p.accountId !== null) qb = qb.where('account_id', '=', p.accountId);
  if (p.target) qb = qb.where('target', '=', p.target);
  if (p.startingAfter) {
    const cursor = await db.selectFrom('audit_log').select(['created', 'id']).where('id', '=', p.startingAfter).executeTakeFirst();
    if (!cursor) throw errors.invalidParam('starting_after', 'no such audit line', '没有这条审计记录');
    qb = qb.where((eb) => eb.or([eb('created', '<', cursor.created), eb.and([eb('created', '=', cursor.created), eb('id', '<', cursor.id)])]));
  }
  const rows = (await qb.orderBy('created', 'desc').orderBy('id', 'desc').limit(p.limit + 1).execute()) as AuditLogRow[];
  return { data: rows.slice(0, p.limit).map(auditToWire), has_more: rows.length > p.limit };
}
