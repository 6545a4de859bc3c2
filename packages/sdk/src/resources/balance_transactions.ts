import type { RequestOptions } from '../http.ts';
import type { BalanceTransaction } from '../types.ts';
import type { BalanceTransactionListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, obj } from './base.ts';

/** /v1/apps/{APP_ID}/balance_transactions — 余额明细 (§12): the ledger lines, read-only. */
export class BalanceTransactions extends AppResource {
  retrieve(id: string, options?: RequestOptions): Promise<BalanceTransaction>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<BalanceTransaction>;
  retrieve(...args: unknown[]): Promise<BalanceTransaction> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'balanceTransactions.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/balance_transactions/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  list(params?: BalanceTransactionListParams, options?: RequestOptions): ListPromise<BalanceTransaction>;
  list(app: string, params?: BalanceTransactionListParams, options?: RequestOptions): ListPromise<BalanceTransaction>;
  list(...args: unknown[]): ListPromise<BalanceTransaction> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceTransactions.list');
    return this.listAt(`${appPath}/balance_transactions`, obj(rest[0]), obj(rest[1]));
  }
}
