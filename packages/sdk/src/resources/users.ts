import type { RequestOptions } from '../http.ts';
import type { User } from '../types.ts';
import type { UserCreateParams, UserListParams, UserUpdateParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { AppResource, obj } from './base.ts';

/** /v1/apps/{APP_ID}/users — 用户 (§8). */
export class Users extends AppResource {
  /**
   * Not retried after a lost answer: a repeat of a create that did succeed is refused as a
   * duplicate id (400), which would hide the success. Retrieve the id to find out.
   */
  create(params: UserCreateParams, options?: RequestOptions): Promise<User>;
  create(app: string, params: UserCreateParams, options?: RequestOptions): Promise<User>;
  create(...args: unknown[]): Promise<User> {
    const { appPath, rest } = this.resolve(args, 0, 'users.create');
    return this.http.request({ method: 'POST', path: `${appPath}/users`, body: rest[0] as object, idempotent: false }, obj(rest[1]));
  }

  retrieve(id: string, options?: RequestOptions): Promise<User>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<User>;
  retrieve(...args: unknown[]): Promise<User> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'users.retrieve');
    return this.http.request({ method: 'GET', path: `${appPath}/users/${ids[0]}`, idempotent: true }, obj(rest[0]));
  }

  list(params?: UserListParams, options?: RequestOptions): ListPromise<User>;
  list(app: string, params?: UserListParams, options?: RequestOptions): ListPromise<User>;
  list(...args: unknown[]): ListPromise<User> {
    const { appPath, rest } = this.resolve(args, 0, 'users.list');
    return this.listAt(`${appPath}/users`, obj(rest[0]), obj(rest[1]));
  }

  /**
   * Profile fields, or `{ disabled }` alone. Retried after a lost answer: it sets fields to
   * values, so a second identical PUT leaves the user as the first one did.
   */
  update(id: string, params: UserUpdateParams, options?: RequestOptions): Promise<User>;
  update(app: string, id: string, params: UserUpdateParams, options?: RequestOptions): Promise<User>;
  update(...args: unknown[]): Promise<User> {
    const { appPath, ids, rest } = this.resolve(args, 1, 'users.update');
    return this.http.request({ method: 'PUT', path: `${appPath}/users/${ids[0]}`, body: rest[0] as object, idempotent: true }, obj(rest[1]));
  }
}
