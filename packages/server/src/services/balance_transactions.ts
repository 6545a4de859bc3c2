import type { Runtime } from '../runtime.ts';
import type { BalanceTransaction } from '@tixian/sdk';
import type { BalanceTransactionRow } from '../store/schema.ts';
import type { ListParams } from '../store/paging.ts';
import type { Scope } from './common.ts';
import { listScoped, retrieveScoped } from './credits.ts';

export function balanceTransactionToWire(row: BalanceTransactionRow): BalanceTransaction {
  return {
    id: row.id,
    object: 'balance_transaction',
    app: row.app,
    amount: row.amount,
    available_balance: row.available_balance,
    created: row.created,
    livemode: row.livemode === 1,
    description: row.description,
    source: row.source,
    type: row.type as BalanceTransaction['type'],
    user: row.user,
  };
}

export async function retrieveBalanceTransaction(rt: Runtime, scope: Scope, id: string): Promise<BalanceTransaction> {
  return balanceTransactionToWire(await retrieveScoped<BalanceTransactionRow>(rt, scope, 'balance_transactions', 'balance_transaction', id));
}

export async function listBalanceTransactions(rt: Runtime, scope: Scope, p: ListParams & { user?: string; type?: string }) {
  const { rows, hasMore } = await listScoped<BalanceTransactionRow>(rt, scope, 'balance_transactions', p);
  return { data: rows.map(balanceTransactionToWire), hasMore };
}
