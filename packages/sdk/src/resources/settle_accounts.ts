import type { RequestOptions } from '../http.ts';
import type { Deleted, List, SettleAccount } from '../types.ts';
import type { SettleAccountCreateParams, SettleAccountListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, listFrom, obj } from './base.ts';

/** /v1/apps/{APP_ID}/users/{USER_ID}/settle_accounts — a user's payout accounts (§9). */
export class SettleAccounts extends AppResource {
  /** Not retried after a lost answer: there is no idempotency key, a repeat would bind a second account. */
  create(user: string, params: SettleAccountCreateParams, options?: RequestOptions): Promise<SettleAccount>;
  create(app: string, user: string, params: SettleAccountCreateParams, options?: RequestOptions): Promise<SettleAccount>;
  create(...args: unknown[]): Promise<SettleAccount> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'settleAccounts.create');
    return this.http.request(
      { method: 'POST', path: `${appPath}/users/${ids[0]}/settle_accounts`, body: rest[0] as object, idempotent: false },
      obj(rest[1]),
    );
  }

  retrieve(user: string, id: string, options?: RequestOptions): Promise<SettleAccount>;
  retrieve(app: string, user: string, id: string, options?: RequestOptions): Promise<SettleAccount>;
  retrieve(...args: unknown[]): Promise<SettleAccount> {
    const { appPath, ids, rest } = this.resolve(args, 2, 'settleAccounts.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/users/${ids[0]}/settle_accounts/${ids[1]}`, idempotent: true }, obj(rest[0]));
  }

  list(user: string, params?: SettleAccountListParams, options?: RequestOptions): ListPromise<SettleAccount>;
  list(app: string, user: string, params?: SettleAccountListParams, options?: RequestOptions): ListPromise<SettleAccount>;
  list(...args: unknown[]): ListPromise<SettleAccount> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'settleAccounts.list');
    return listFrom<SettleAccount, List<SettleAccount>>(this.http, `${appPath}/users/${ids[0]}/settle_accounts`, obj(rest[0]), obj(rest[1]));
  }

  /**
   * Unbinds the account. Not retried after a lost answer: a repeat of a delete that did succeed
   * answers 404, which would hide the success.
   */
  del(user: string, id: string, options?: RequestOptions): Promise<Deleted>;
  del(app: string, user: string, id: string, options?: RequestOptions): Promise<Deleted>;
  del(...args: unknown[]): Promise<Deleted> {
    const { appPath, ids, rest } = this.resolve(args, 2, 'settleAccounts.del');
    return this.http.request({ method: 'DELETE', path: `${appPath}/users/${ids[0]}/settle_accounts/${ids[1]}`, idempotent: false }, obj(rest[0]));
  }
}
