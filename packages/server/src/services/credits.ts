import type { Runtime } from '../runtime.ts';
import type { Metadata } from '@tixian/sdk';
import type { BalanceBonusRow, BalanceSettlementRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { numericId, type NumericIdKind } from '../domain/ids.ts';
import { applyMovement, type AppAccount, type BalanceTransactionType, type Bucket } from '../ledger/ledger.ts';
import { listPage, type ListParams } from '../store/paging.ts';
import { activeUser, createOnce, metadataText, mode, requestHash, type Scope, type WriteOptions } from './common.ts';

/**
 * Money in: a merchant-funded credit to one user, keyed by order_no. Two kinds share this path:
 * balance_bonuses (spendable, not withdrawable) and balance_settlements (withdrawable earnings).
 */
export interface CreditParams {
  user: string;
  amount: number;
  order_no: string;
  description?: string | null;
  metadata?: Metadata | null;
}

interface CreditKind<Row> {
  table: 'balance_bonuses' | 'balance_settlements';
  object: string;
  idKind: NumericIdKind;
  bucket: Bucket;
  lineType: BalanceTransactionType;
  funding: AppAccount;
  /** Adds the kind's own time column to the common row. */
  finish(common: CreditCommon, createdS: number): Row;
}

type CreditRow = BalanceBonusRow | BalanceSettlementRow;
/** The columns bonuses and settlements share (each adds its own time column). */
type CreditCommon = Omit<BalanceBonusRow, 'time_paid'>;

export async function createCredit<Row extends CreditRow>(
  rt: Runtime,
  scope: Scope,
  kind: CreditKind<Row>,
  p: CreditParams,
  options: WriteOptions = {},
): Promise<Row> {
  if (p.user === '0') throw errors.invalidParam('user', `the system user "0" cannot receive a ${kind.object}`, `系统用户 "0" 不能接受 ${kind.object}`);
  const hash = requestHash(p);
  const row = await createOnce<Row>(rt.store.db, kind.table, scope, p.order_no, hash, () =>
    rt.store.transaction(async (trx) => {
      const user = await activeUser(trx, scope, p.user);
      const nowMs = rt.clock.nowMs();
      const created = Math.floor(nowMs / 1000);
      const id = numericId(kind.idKind, nowMs);
      const [line] = await applyMovement(trx, {
        app: scope.app, livemode: scope.livemode, createdS: created, nowMs, type: kind.object, source: id,
        users: [{ userPk: user.pk, userId: user.id, bucket: kind.bucket, amount: p.amount, capped: true, line: { type: kind.lineType, description: p.description ?? null } }],
        apps: [{ account: kind.funding, amount: -p.amount }],
      });
      const row = kind.finish(
        {
          id, app: scope.app, livemode: mode(scope), order_no: p.order_no, request_hash: hash,
          description: p.description ?? null, metadata: metadataText(p.metadata), created,
          user: user.id, user_pk: user.pk, amount: p.amount, balance_transaction: line!,
        },
        created,
      );
      await trx.insertInto(kind.table).values(row).execute();
      return row;
    }, options),
  );
  return row;
}

export async function retrieveScoped<Row>(
  rt: Runtime,
  scope: Scope,
  table: 'balance_bonuses' | 'balance_settlements' | 'balance_transfers' | 'balance_transactions',
  object: string,
  id: string,
): Promise<Row> {
  const row = await rt.store.db.selectFrom(table).selectAll()
    .where('id', '=', id).where('app', '=', scope.app).where('livemode', '=', mode(scope)).executeTakeFirst();
  if (!row) throw errors.notFound(object, id);
  return row as Row;
}

export async function listScoped<Row>(
  rt: Runtime,
  scope: Scope,
  table: 'balance_bonuses' | 'balance_settlements' | 'balance_transfers' | 'balance_transactions',
  p: ListParams & { user?: string; type?: string },
): Promise<{ rows: Row[]; hasMore: boolean }> {
  return listPage<Row>(rt.store.db, table, (qb) => {
    qb = qb.where('app', '=', scope.app).where('livemode', '=', mode(scope));
    if (p.user !== undefined) qb = qb.where('user', '=', p.user);
    // Only balance_transactions have a type; the other tables' lists ignore the parameter.
    if (p.type !== undefined && table === 'balance_transactions') qb = qb.where('type', '=', p.type);
    return qb;
  }, p);
}
