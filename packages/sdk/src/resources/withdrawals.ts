import type { RequestOptions } from '../http.ts';
import { InvalidRequestError } from '../errors.ts';
import type { Withdrawal, WithdrawalList, WithdrawalStatus } from '../types.ts';
import type { WithdrawalCreateParams, WithdrawalListParams } from '../params.ts';
import { obj, OrderedCollection } from './base.ts';

/**
 * /v1/apps/{APP_ID}/withdrawals — 余额提现 (§6). `create` makes a withdrawal request (status
 * `created`; no money moves until `confirm`), retried after a lost answer with its `order_no`.
 * `list` is newest first; its page carries `total_withdrawals_amount` over every matching withdrawal.
 */
export class Withdrawals extends OrderedCollection<Withdrawal, WithdrawalCreateParams, WithdrawalListParams, WithdrawalList> {
  protected readonly collection = 'withdrawals';

  /** PUT `{"status":"pending"}`: starts the payout. The answer is `pending` (or already final). */
  confirm(id: string, options?: RequestOptions): Promise<Withdrawal>;
  confirm(app: string, id: string, options?: RequestOptions): Promise<Withdrawal>;
  confirm(...args: unknown[]): Promise<Withdrawal> {
    const { path, rest } = this.target(args, 1, 'confirm');
    return this.transition(path, 'pending', obj(rest[0]));
  }

  /** PUT `{"status":"canceled"}`: only from `created`; the held amount returns to the user. */
  cancel(id: string, options?: RequestOptions): Promise<Withdrawal>;
  cancel(app: string, id: string, options?: RequestOptions): Promise<Withdrawal>;
  cancel(...args: unknown[]): Promise<Withdrawal> {
    const { path, rest } = this.target(args, 1, 'cancel');
    return this.transition(path, 'canceled', obj(rest[0]));
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
