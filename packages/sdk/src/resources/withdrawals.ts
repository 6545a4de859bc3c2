import type { RequestOptions } from '../http.ts';
import { InvalidRequestError } from '../errors.ts';
import type { Withdrawal, WithdrawalList, WithdrawalStatus } from '../types.ts';
import type { WithdrawalCreateParams, WithdrawalListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, hasOrderNo, obj } from './base.ts';

/** /v1/apps/{APP_ID}/withdrawals — 余额提现 (§6). */
export class Withdrawals extends AppResource {
  /**
   * Creates a withdrawal request (status `created`); no money moves until `confirm`.
   * Retried after a lost answer: `order_no` is the idempotency key, and the API answers an
   * identical create with the object the first one made.
   */
  create(params: WithdrawalCreateParams, options?: RequestOptions): Promise<Withdrawal>;
  create(app: string, params: WithdrawalCreateParams, options?: RequestOptions): Promise<Withdrawal>;
  create(...args: unknown[]): Promise<Withdrawal> {
    const { appPath, rest } = this.resolve(args, 0, 'withdrawals.create');
    const params = rest[0] as WithdrawalCreateParams;
    return this.http.request({ method: 'POST', path: `${appPath}/withdrawals`, body: params, idempotent: hasOrderNo(params) }, obj(rest[1]));
  }

  retrieve(id: string, options?: RequestOptions): Promise<Withdrawal>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<Withdrawal>;
  retrieve(...args: unknown[]): Promise<Withdrawal> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'withdrawals.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/withdrawals/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  /** Newest first; the page carries `total_withdrawals_amount` over every matching withdrawal. */
  list(params?: WithdrawalListParams, options?: RequestOptions): ListPromise<Withdrawal, WithdrawalList>;
  list(app: string, params?: WithdrawalListParams, options?: RequestOptions): ListPromise<Withdrawal, WithdrawalList>;
  list(...args: unknown[]): ListPromise<Withdrawal, WithdrawalList> {
    const { appPath, rest } = this.resolve(args, 0, 'withdrawals.list');
    return this.listAt<Withdrawal, WithdrawalList>(`${appPath}/withdrawals`, obj(rest[0]), obj(rest[1]));
  }

  /** PUT `{"status":"pending"}`: starts the payout. The answer is `pending` (or already final). */
  confirm(id: string, options?: RequestOptions): Promise<Withdrawal>;
  confirm(app: string, id: string, options?: RequestOptions): Promise<Withdrawal>;
  confirm(...args: unknown[]): Promise<Withdrawal> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'withdrawals.confirm');
    return this.transition(`${appPath}/withdrawals/${ids[0]}`, 'pending', obj(rest[0]));
  }

  /** PUT `{"status":"canceled"}`: only from `created`; the held amount returns to the user. */
  cancel(id: string, options?: RequestOptions): Promise<Withdrawal>;
  cancel(app: string, id: string, options?: RequestOptions): Promise<Withdrawal>;
  cancel(...args: unknown[]): Promise<Withdrawal> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'withdrawals.cancel');
    return this.transition(`${appPath}/withdrawals/${ids[0]}`, 'canceled', obj(rest[0]));
  }

  /**
   * Confirm and cancel are retried after a lost answer. That is safe because the API moves a
   * withdrawal only along its state machine: a repeated transition changes nothing and is
   * refused with 400 "cannot be updated" — there is no second payout. But that refusal, arriving
   * after an attempt whose answer was lost, does not mean the call failed: the lost attempt may
   * have done the work. So in that one case (a retry, answered "cannot be updated") the method
   * reads the withdrawal and returns it when it is where the call wanted it; otherwise the 400
   * stands. A refusal on the first attempt is always thrown as is.
   */
  private async transition(path: string, status: 'pending' | 'canceled', options: RequestOptions | undefined): Promise<Withdrawal> {
    try {
      return await this.http.request<Withdrawal>({ method: 'PUT', path, body: { status }, idempotent: true }, options);
    } catch (err) {
      if (!(err instanceof InvalidRequestError && err.attempts > 1 && isInvalidState(err))) throw err;
      const current = await this.http.request<Withdrawal>({ method: 'GET', path, idempotent: true }, options);
      if (reached(current.status, status)) return current;
      throw err;
    }
  }
}

/** The API's refusal of a transition from the current state (tixian: code `invalid_state`; Ping++: the message). */
function isInvalidState(err: InvalidRequestError): boolean {
  return err.statusCode === 400 && (err.code === 'invalid_state' || /不能被更新状态|cannot be updated/.test(err.message));
}

/** Whether a withdrawal in `current` has gone through the transition to `wanted`. */
function reached(current: WithdrawalStatus, wanted: 'pending' | 'canceled'): boolean {
  if (wanted === 'canceled') return current === 'canceled';
  return current === 'pending' || current === 'succeeded' || current === 'failed';
}
