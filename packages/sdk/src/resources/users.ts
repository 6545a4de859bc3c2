import type { RequestOptions } from '../http.ts';
import type { User } from '../types.ts';
import type { UserCreateParams, UserListParams, UserUpdateParams } from '../params.ts';
import { AppCollection, never, obj } from './base.ts';

/** /v1/apps/{APP_ID}/users — 用户 (§8). */
export class Users extends AppCollection<User, UserListParams> {
  protected readonly collection = 'users';

  /**
   * Not retried after a lost answer: a repeat of a create that did succeed is refused as a
   * duplicate id (400), which would hide the success. Retrieve the id to find out.
   */
  create(params: UserCreateParams, options?: RequestOptions): Promise<User>;
  create(app: string, params: UserCreateParams, options?: RequestOptions): Promise<User>;
  create(...args: unknown[]): Promise<User> {
    return this.post(args, never);
  }

  /**
   * Profile fields, or `{ disabled }` alone. Retried after a lost answer: it sets fields to
   * values, so a second identical PUT leaves the user as the first one did.
   */
  update(id: string, params: UserUpdateParams, options?: RequestOptions): Promise<User>;
  update(app: string, id: string, params: UserUpdateParams, options?: RequestOptions): Promise<User>;
  update(...args: unknown[]): Promise<User> {
    const { path, rest } = this.target(args, 1, 'update');
    return this.http.request({ method: 'PUT', path, body: rest[0] as object, idempotent: true }, obj(rest[1]));
  }
}
