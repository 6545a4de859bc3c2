import type { HttpClient, RequestOptions } from '../http.ts';
import { seg } from '../http.ts';
import type { List } from '../types.ts';
import type { ListParams } from '../params.ts';
import { listPromise, makePage, type ListPromise } from '../pagination.ts';

/** What the leading arguments of an app-scoped method resolve to. */
export interface Resolved {
  /** `/apps/{app}` with the app encoded. */
  appPath: string;
  /** Ids after the app (user id, object id …), in order, encoded. */
  ids: string[];
  /** Params (if the method takes them), then RequestOptions. */
  rest: unknown[];
}

/**
 * Base of the resources under `/v1/apps/{APP_ID}/…`. Every method takes the app id as its first
 * argument, like Ping++'s SDKs, or leaves it out when the client was made with `appId`:
 * `withdrawals.retrieve(app, id)` and `withdrawals.retrieve(id)` are the same call. The two are
 * told apart by counting the leading string arguments.
 */
export abstract class AppResource {
  constructor(
    protected readonly http: HttpClient,
    private readonly defaultApp: string | undefined,
  ) {}

  protected resolve(args: unknown[], idCount: number, method: string): Resolved {
    let strings = 0;
    while (strings < args.length && typeof args[strings] === 'string') strings++;
    let app: string;
    let first: number;
    if (strings === idCount + 1) {
      app = args[0] as string;
      first = 1;
    } else if (strings === idCount) {
      if (this.defaultApp === undefined) {
        throw new TypeError(`${method}: pass the app id as the first argument, or create the client with { appId }`);
      }
      app = this.defaultApp;
      first = 0;
    } else {
      throw new TypeError(`${method}: expected ${idCount} id argument(s) after the optional app id`);
    }
    const ids = (args.slice(first, first + idCount) as string[]).map(seg);
    return { appPath: `/apps/${seg(app)}`, ids, rest: args.slice(first + idCount) };
  }
}

/**
 * A collection directly under the app, `/v1/apps/{APP_ID}/{collection}`, of objects `T` read with
 * `retrieve` and `list` (params `P`, list object `L`). A subclass names its collection and adds
 * its own verbs, typed, through `target` and `post`.
 */
export abstract class AppCollection<T extends { id: string }, P extends ListParams = ListParams, L extends List<T> = List<T>> extends AppResource {
  /** The path segment after `/apps/{APP_ID}/`, e.g. `balance_bonuses`. */
  protected abstract readonly collection: string;

  retrieve(id: string, options?: RequestOptions): Promise<T>;
  retrieve(app: string, id: string, options?: RequestOptions): Promise<T>;
  retrieve(...args: unknown[]): Promise<T> {
    const { path, rest } = this.target(args, 1, 'retrieve');
    return this.http.request({ method: 'GET', path, idempotent: true }, obj(rest[0]));
  }

  list(params?: P, options?: RequestOptions): ListPromise<T, L>;
  list(app: string, params?: P, options?: RequestOptions): ListPromise<T, L>;
  list(...args: unknown[]): ListPromise<T, L> {
    const { path, rest } = this.target(args, 0, 'list');
    return listFrom<T, L>(this.http, path, obj(rest[0]), obj(rest[1]));
  }

  /**
   * The path a call is about: the collection (`idCount` 0) or one object in it (1), after the
   * optional app id; `rest` is what follows (params, options).
   */
  protected target(args: unknown[], idCount: 0 | 1, verb: string): { path: string; rest: unknown[] } {
    const { appPath, ids, rest } = this.resolve(args, idCount, `${camelCase(this.collection)}.${verb}`);
    return { path: [`${appPath}/${this.collection}`, ...ids].join('/'), rest };
  }

  /** POST params to the collection; `idempotent(params)` says whether a lost answer may be retried. */
  protected post(args: unknown[], idempotent: (params: unknown) => boolean): Promise<T> {
    const { path, rest } = this.target(args, 0, 'create');
    return this.http.request({ method: 'POST', path, body: rest[0] as object, idempotent: idempotent(rest[0]) }, obj(rest[1]));
  }
}

/**
 * A collection whose creates carry an `order_no` (params `C`). The API answers an identical create
 * with the object the first one made, so a create with an `order_no` is retried after a lost answer.
 */
export abstract class OrderedCollection<
  T extends { id: string },
  C extends object,
  P extends ListParams = ListParams,
  L extends List<T> = List<T>,
> extends AppCollection<T, P, L> {
  /** Retried after a lost answer: `order_no` is the idempotency key. */
  create(params: C, options?: RequestOptions): Promise<T>;
  create(app: string, params: C, options?: RequestOptions): Promise<T>;
  create(...args: unknown[]): Promise<T> {
    return this.post(args, hasOrderNo);
  }
}

export function listFrom<T extends { id: string }, L extends List<T>>(
  http: HttpClient,
  path: string,
  params: ListParams | undefined,
  options: RequestOptions | undefined,
): ListPromise<T, L> {
  const fetchPage = (p: object) => http.request<L>({ method: 'GET', path, query: p, idempotent: true }, options);
  const first = { ...params } as ListParams & Record<string, unknown>;
  return listPromise<T, L>(fetchPage(first).then((list) => makePage<T, L>(list, first, fetchPage)));
}

/** Params or options slot of a resolved call: an object or nothing. */
export function obj<T>(v: unknown): T | undefined {
  return v === undefined || v === null ? undefined : (v as T);
}

/** Creates keyed by `order_no` are idempotent: the API answers an identical retry with the first object. */
export function hasOrderNo(params: unknown): boolean {
  const orderNo = (params as { order_no?: unknown } | undefined)?.order_no;
  return typeof orderNo === 'string' && orderNo !== '';
}

/** For a create without an idempotency key: never retried. */
export function never(): boolean {
  return false;
}

/** `balance_bonuses` → `balanceBonuses`, the property name on the client, for error messages. */
function camelCase(snake: string): string {
  return snake.replace(/_(.)/g, (_, c: string) => c.toUpperCase());
}
