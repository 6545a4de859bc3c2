import type { RequestOptions } from '../http.ts';
import type { BatchWithdrawal } from '../types.ts';
import type { BatchWithdrawalCreateParams, BatchWithdrawalListParams } from '../params.ts';
import { AppCollection, never } from './base.ts';

/** /v1/apps/{APP_ID}/batch_withdrawals — 批量提现 (§7): confirm or cancel up to 200 withdrawals at once. */
export class BatchWithdrawals extends AppCollection<BatchWithdrawal, BatchWithdrawalListParams> {
  protected readonly collection = 'batch_withdrawals';

  /**
   * Not retried after a lost answer: a batch has no idempotency key, and a repeat would be
   * refused (its withdrawals are no longer `created`) — retrieve or list to find out what happened.
   */
  create(params: BatchWithdrawalCreateParams, options?: RequestOptions): Promise<BatchWithdrawal>;
  create(app: string, params: BatchWithdrawalCreateParams, options?: RequestOptions): Promise<BatchWithdrawal>;
  create(...args: unknown[]): Promise<BatchWithdrawal> {
    return this.post(args, never);
  }
}
