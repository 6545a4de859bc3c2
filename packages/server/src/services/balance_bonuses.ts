import type { Runtime } from '../runtime.ts';
import type { BalanceBonus } from '@tixian/sdk';
import type { BalanceBonusRow } from '../store/schema.ts';
import type { ListParams } from '../store/paging.ts';
import { parseJsonObject, type Scope, type WriteOptions } from './common.ts';
import { createCredit, listScoped, retrieveScoped, type CreditParams } from './credits.ts';

export function balanceBonusToWire(row: BalanceBonusRow): BalanceBonus {
  return {
    id: row.id,
    object: 'balance_bonus',
    app: row.app,
    created: row.created,
    livemode: row.livemode === 1,
    paid: true,
    refunded: false,
    amount: row.amount,
    amount_refunded: 0,
    time_paid: row.time_paid,
    user: row.user,
    order_no: row.order_no,
    balance_transaction: row.balance_transaction,
    description: row.description,
    metadata: parseJsonObject(row.metadata),
  };
}

/**
 * 余额赠送: the merchant gives a user spendable money that cannot be withdrawn. Available balance
 * rises, withdrawable does not (a `receipts_extra` line); bonus_funding carries the other side.
 */
export async function createBalanceBonus(rt: Runtime, scope: Scope, p: CreditParams, options: WriteOptions = {}): Promise<BalanceBonus> {
  const row = await createCredit<BalanceBonusRow>(rt, scope, {
    table: 'balance_bonuses', object: 'balance_bonus', idKind: 'balance_bonus',
    bucket: 'bonus', lineType: 'receipts_extra', funding: 'bonus_funding',
    finish: (common, createdS) => ({ ...common, time_paid: createdS }),
  }, p, options);
  return balanceBonusToWire(row);
}

export async function retrieveBalanceBonus(rt: Runtime, scope: Scope, id: string): Promise<BalanceBonus> {
  return balanceBonusToWire(await retrieveScoped<BalanceBonusRow>(rt, scope, 'balance_bonuses', 'balance_bonus', id));
}

export async function listBalanceBonuses(rt: Runtime, scope: Scope, p: ListParams & { user?: string }) {
  const { rows, hasMore } = await listScoped<BalanceBonusRow>(rt, scope, 'balance_bonuses', p);
  return { data: rows.map(balanceBonusToWire), hasMore };
}
