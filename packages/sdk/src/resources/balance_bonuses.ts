import type { RequestOptions } from '../http.ts';
import type { BalanceBonus } from '../types.ts';
import type { BalanceBonusCreateParams, BalanceBonusListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, hasOrderNo, obj } from './base.ts';

/** /v1/apps/{APP_ID}/balance_bonuses — 余额赠送 (§10): spendable, not withdrawable. */
export class BalanceBonuses extends AppResource {
  /** Retried after a lost answer: `order_no` is the idempotency key. */
  create(params: BalanceBonusCreateParams, options?: RequestOptions): Promise<BalanceBonus>;
  create(app: string, params: BalanceBonusCreateParams, options?: RequestOptions): Promise<BalanceBonus>;
  create(...args: unknown[]): Promise<BalanceBonus> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceBonuses.create');
    return this.http.request({ method: 'POST', path: `${appPath}/balance_bonuses`, body: rest[0] as object, idempotent: hasOrderNo(rest[0]) }, obj(rest[1]));
  }

  retrieve(id: string, options?: RequestOptions): Promise<BalanceBonus>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<BalanceBonus>;
  retrieve(...args: unknown[]): Promise<BalanceBonus> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'balanceBonuses.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/balance_bonuses/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  list(params?: BalanceBonusListParams, options?: RequestOptions): ListPromise<BalanceBonus>;
  list(app: string, params?: BalanceBonusListParams, options?: RequestOptions): ListPromise<BalanceBonus>;
  list(...args: unknown[]): ListPromise<BalanceBonus> {
    const { appPath, rest } = this.resolve(args, 0, 'balanceBonuses.list');
    return this.listAt(`${appPath}/balance_bonuses`, obj(rest[0]), obj(rest[1]));
  }
}
