import type { Runtime } from '../runtime.ts';
import type { BalanceSettlement } from '@tixian/sdk';
import type { BalanceSettlementRow } from '../store/schema.ts';
import type { ListParams } from '../store/paging.ts';
import { parseJsonObject, type Scope, type WriteOptions } from './common.ts';
import { createCredit, listScoped, retrieveScoped, type CreditParams } from './credits.ts';

export function balanceSettlementToWire(row: BalanceSettlementRow): BalanceSettlement {
  return {
    id: row.id,
    object: 'balance_settlement',
    app: row.app,
    created: row.created,
    livemode: row.livemode === 1,
    status: 'succeeded',
    amount: row.amount,
    user: row.user,
    order_no: row.order_no,
    balance_transaction: row.balance_transaction,
    time_succeeded: row.time_succeeded,
    description: row.description,
    metadata: parseJsonObject(row.metadata),
  };
}

/**
 * 入账 (tixian extension): a platform credits a user's earnings as withdrawable money — the way a
 * marketplace pays its sellers into their wallets. A `credited` line; settlement_funding carries
 * the other side.
 */
export async function createBalanceSettlement(rt: Runtime, scope: Scope, p: CreditParams, options: WriteOptions = {}): Promise<BalanceSettlement> {
  const row = await createCredit<BalanceSettlementRow>(rt, scope, {
    table: 'balance_settlements', object: 'balance_settlement', idKind: 'balance_settlement',
    bucket: 'withdrawable', lineType: 'credited', funding: 'settlement_funding',
    finish: (common, createdS) => ({ ...common, time_succeeded: createdS }),
  }, p, options);
  return balanceSettlementToWire(row);
}

export async function retrieveBalanceSettlement(rt: Runtime, scope: Scope, id: string): Promise<BalanceSettlement> {
  return balanceSettlementToWire(await retrieveScoped<BalanceSettlementRow>(rt, scope, 'balance_settlements', 'balance_settlement', id));
}

export async function listBalanceSettlements(rt: Runtime, scope: Scope, p: ListParams & { user?: string }) {
  const { rows, hasMore } = await listScoped<BalanceSettlementRow>(rt, scope, 'balance_settlements', p);
  return { data: rows.map(balanceSettlementToWire), hasMore };
}
