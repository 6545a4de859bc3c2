import type { BalanceTransaction } from '../types.ts';
import type { BalanceTransactionListParams } from '../params.ts';
import { AppCollection } from './base.ts';

/** /v1/apps/{APP_ID}/balance_transactions — 余额明细 (§12): the ledger lines, read-only. */
export class BalanceTransactions extends AppCollection<BalanceTransaction, BalanceTransactionListParams> {
  protected readonly collection = 'balance_transactions';
}
