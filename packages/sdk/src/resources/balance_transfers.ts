import type { RequestOptions } from '../http.ts';
import type { BalanceTransfer } from '../types.ts';
import type { BalanceTransferCreateParams, BalanceTransferListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, hasOrderNo, obj } from './base.ts';

/** /v1/apps/{APP_ID}/balance_transfers — 余额转账 (§11): user to user. */
export class BalanceTransfers extends AppResource {
  /** Retried after a lost answer: `order_no` is the idempotency key. */
  create(params: BalanceTransferCreateParams, options?: RequestOptions): Promise<BalanceTransfer>;
  create(app: string, params: BalanceTransferCreateParams, options?: RequestOptions): Promise<BalanceTransfer>;
  create(...args: unknown[]): Promise<BalanceTransfer> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceTransfers.create');
    return this.http.request({ method: 'POST', path: `${appPath}/balance_transfers`, body: rest[0] as object, idempotent: hasOrderNo(rest[0]) }, obj(rest[1]));
  }

  retrieve(id: string, options?: RequestOptions): Promise<BalanceTransfer>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<BalanceTransfer>;
  retrieve(...args: unknown[]): Promise<BalanceTransfer> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'balanceTransfers.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/balance_transfers/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  list(params?: BalanceTransferListParams, options?: RequestOptions): ListPromise<BalanceTransfer>;
  list(app: string, params?: BalanceTransferListParams, options?: RequestOptions): ListPromise<BalanceTransfer>;
  list(...args: unknown[]): ListPromise<BalanceTransfer> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceTransfers.list');
    return this.listAt(`${appPath}/balance_transfers`, obj(rest[0]), obj(rest[1]));
  }
}
