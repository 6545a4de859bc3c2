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

  protected listAt<T extends { id: string }, L extends List<T>>(path: string, params: ListParams | undefined, options: RequestOptions | undefined): ListPromise<T, L> {
    return listFrom<T, L>(this.http, path, params, options);
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
