import type { RequestOptions } from '../http.ts';
import type { BalanceSettlement } from '../types.ts';
import type { BalanceSettlementCreateParams, BalanceSettlementListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, hasOrderNo, obj } from './base.ts';

/** /v1/apps/{APP_ID}/balance_settlements — 余额结算, a tixian extension: credits earnings as withdrawable money. */
export class BalanceSettlements extends AppResource {
  /** Retried after a lost answer: `order_no` is the idempotency key. */
  create(params: BalanceSettlementCreateParams, options?: RequestOptions): Promise<BalanceSettlement>;
  create(app: string, params: BalanceSettlementCreateParams, options?: RequestOptions): Promise<BalanceSettlement>;
  create(...args: unknown[]): Promise<BalanceSettlement> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceSettlements.create');
    return this.http.request({ method: 'POST', path: `${appPath}/balance_settlements`, body: rest[0] as object, idempotent: hasOrderNo(rest[0]) }, obj(rest[1]));
  }

  retrieve(id: string, options?: RequestOptions): Promise<BalanceSettlement>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<BalanceSettlement>;
  retrieve(...args: unknown[]): Promise<BalanceSettlement> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'balanceSettlements.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/balance_settlements/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  list(params?: BalanceSettlementListParams, options?: RequestOptions): ListPromise<BalanceSettlement>;
  list(app: string, params?: BalanceSettlementListParams, options?: RequestOptions): ListPromise<BalanceSettlement>;
  list(...args: unknown[]): ListPromise<BalanceSettlement> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceSettlements.list');
    return this.listAt(`${appPath}/balance_settlements`, obj(rest[0]), obj(rest[1]));
  }
}
