import type { RequestOptions } from '../http.ts';
import type { BatchWithdrawal } from '../types.ts';
import type { BatchWithdrawalCreateParams, BatchWithdrawalListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, obj } from './base.ts';

/** /v1/apps/{APP_ID}/batch_withdrawals — 批量提现 (§7): confirm or cancel up to 200 withdrawals at once. */
export class BatchWithdrawals extends AppResource {
  /**
   * Not retried after a lost answer: a batch has no idempotency key, and a repeat would be
   * refused (its withdrawals are no longer `created`) — retrieve or list to find out what happened.
   */
  create(params: BatchWithdrawalCreateParams, options?: RequestOptions): Promise<BatchWithdrawal>;
  create(app: string, params: BatchWithdrawalCreateParams, options?: RequestOptions): Promise<BatchWithdrawal>;
  create(...args: unknown[]): Promise<BatchWithdrawal> {
    const { appPath, rest } = this.resolve(args, 0, 'batchWithdrawals.create');
    return this.http.request({ method: 'POST', path: `${appPath}/batch_withdrawals`, body: rest[0] as object, idempotent: false }, obj(rest[1]));
  }

  retrieve(id: string, options?: RequestOptions): Promise<BatchWithdrawal>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<BatchWithdrawal>;
  retrieve(...args: unknown[]): Promise<BatchWithdrawal> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'batchWithdrawals.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/batch_withdrawals/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  list(params?: BatchWithdrawalListParams, options?: RequestOptions): ListPromise<BatchWithdrawal>;
  list(app: string, params?: BatchWithdrawalListParams, options?: RequestOptions): ListPromise<BatchWithdrawal>;
  list(...args: unknown[]): ListPromise<BatchWithdrawal> {
    const { appPath, rest } = this.resolve(args, 0, 'batchWithdrawals.list');
    return this.listAt(`${appPath}/batch_withdrawals`, obj(rest[0]), obj(rest[1]));
  }
}
