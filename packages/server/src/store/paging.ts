import { sql, type SelectQueryBuilder } from 'kysely';
import type { Db } from './db.ts';
import type { Database } from './schema.ts';
import { errors } from '../domain/errors.ts';
import { MAX_AMOUNT } from '../domain/money.ts';
import type { List } from '@tixian/sdk';

export interface ListParams {
  page?: number;
  per_page?: number;
  limit?: number;
  starting_after?: string;
  ending_before?: string;
  created?: number;
  'created[gt]'?: number;
  'created[gte]'?: number;
  'created[lt]'?: number;
  'created[lte]'?: number;
}

const DEFAULT_PER_PAGE = 20;
const DEFAULT_LIMIT = 10;
/**
 * page/per_page reads and throws away every row before the page, so its cost grows with the
 * depth: it is kept for Ping++ compatibility, up to this many skipped rows (500 pages of 20).
 * Deeper answers 400 and points to starting_after, which costs the same at any depth. The SDK's
 * auto-pagination switches to the cursor at the same bound (MAX_PAGE_OFFSET in sdk/src/pagination.ts).
 */
export const MAX_PAGE_OFFSET = 10_000;

type Tables = keyof Database;
// Kysely's builder types do not survive a generic table name; the helper works on the common
// columns every listable table has (id, created) and hands rows back typed by the caller.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyQuery = SelectQueryBuilder<Database, any, any>;

/** Applies `created`, `created[gt|gte|lt|lte]` (Unix seconds) to a query on a table with `created`. */
export function whereCreated(qb: AnyQuery, p: ListParams): AnyQuery {
  if (p.created !== undefined) qb = qb.where('created', '=', p.created);
  if (p['created[gt]'] !== undefined) qb = qb.where('created', '>', p['created[gt]']);
  if (p['created[gte]'] !== undefined) qb = qb.where('created', '>=', p['created[gte]']);
  if (p['created[lt]'] !== undefined) qb = qb.where('created', '<', p['created[lt]']);
  if (p['created[lte]'] !== undefined) qb = qb.where('created', '<=', p['created[lte]']);
  return qb;
}

/**
 * One page of a list, newest first (created desc, then id desc). Both of Ping++'s schemes:
 * page/per_page (what every SDK example uses; preferred when both are sent) and
 * limit/starting_after/ending_before (cursor; stable while rows are being added).
 * `scoped` must already restrict the query to one app (or account) and mode.
 * `filtered` narrows the page only: a cursor is looked up in the whole scope, so a cursor row that
 * no longer matches a filter whose answer changes over time (a withdrawal's or batch's status, a
 * settle account's deletion, events' delivery_success) still marks the place to go on from: the
 * next page holds the matching rows after the cursor's place in the order. A merchant who lists
 * `status=created` and confirms each row before asking for the next page relies on this.
 */
export async function listPage<Row>(
  db: Db,
  table: Tables,
  scoped: (qb: AnyQuery) => AnyQuery,
  p: ListParams,
  /** Column that orders rows created in the same second; must grow with creation time. */
  tie: 'id' | 'pk' = 'id',
  filtered: (qb: AnyQuery) => AnyQuery = (qb) => qb,
): Promise<{ rows: Row[]; hasMore: boolean }> {
  const newestFirst = (qb: AnyQuery) => qb.orderBy('created', 'desc').orderBy(tie, 'desc');
  const matching = () => whereCreated(filtered(scoped(db.selectFrom(table))), p).selectAll();
  const base = () => newestFirst(matching());
  const cursorId = p.starting_after ?? p.ending_before;
  const usePages = p.page !== undefined || p.per_page !== undefined || (p.limit === undefined && cursorId === undefined);
  if (usePages) {
    const perPage = p.per_page ?? p.limit ?? DEFAULT_PER_PAGE;
    const page = p.page ?? 1;
    if ((page - 1) * perPage > MAX_PAGE_OFFSET) {
      throw errors.invalidParam(
        'page',
        `page × per_page may skip at most ${MAX_PAGE_OFFSET} rows; to go deeper, page with limit and starting_after (the id of the last object you received)`,
        `page × per_page 最多跳过 ${MAX_PAGE_OFFSET} 条；更深的翻页请使用 limit 和 starting_after（上一页最后一个对象的 id）`,
      );
    }
    const rows = (await base().limit(perPage + 1).offset((page - 1) * perPage).execute()) as Row[];
    return { rows: rows.slice(0, perPage), hasMore: rows.length > perPage };
  }

  const limit = p.limit ?? DEFAULT_LIMIT;
  if (cursorId === undefined) {
    const rows = (await base().limit(limit + 1).execute()) as Row[];
    return { rows: rows.slice(0, limit), hasMore: rows.length > limit };
  }
  // A cursor counts as sent when it is present, even empty: `starting_after=` is a mistake to
  // name (no object has an empty id), not a request for the first page, and not `ending_before`.
  const after = p.starting_after !== undefined;
  if (after && p.ending_before !== undefined) {
    throw errors.invalidParam('ending_before', 'cannot be combined with starting_after', '不能与 starting_after 同时使用');
  }
  const param = after ? 'starting_after' : 'ending_before';
  if (cursorId === '') throw errors.invalidParam(param, 'must be the id of an object in this list, not empty', '必须是列表中某个对象的 id，不能为空');
  const cursor = (await scoped(db.selectFrom(table)).select(['created', `${tie} as tie`]).where('id', '=', cursorId).executeTakeFirst()) as
    | { created: number; tie: string }
    | undefined;
  if (!cursor) throw errors.invalidParam(param, `no object with id ${cursorId} in this list`, `列表中没有 id 为 ${cursorId} 的对象`);

  // Row values, not `created < c OR (created = c AND id < t)`: both engines read a row-value
  // bound as a range of the (…, created, id) index and start the page right at the cursor, where
  // the OR form walks the index from the newest row, so each page would cost its depth.
  const tieRef = sql.ref(tie);
  if (after) {
    const rows = (await base()
      .where(sql<boolean>`(created, ${tieRef}) < (${cursor.created}, ${cursor.tie})`)
      .limit(limit + 1)
      .execute()) as Row[];
    return { rows: rows.slice(0, limit), hasMore: rows.length > limit };
  }
  const rows = (await matching()
    .where(sql<boolean>`(created, ${tieRef}) > (${cursor.created}, ${cursor.tie})`)
    .orderBy('created', 'asc')
    .orderBy(tie, 'asc')
    .limit(limit + 1)
    .execute()) as Row[];
  return { rows: rows.slice(0, limit).reverse(), hasMore: rows.length > limit };
}

/**
 * A sum of amounts as the API reports it: `total_withdrawals_amount`, a batch's `amount`. Each
 * amount fits in 32 bits, but their sum need not, and the Java and C# SDKs fail to parse a whole
 * answer with a larger value in an int field. So the sum saturates: 2147483647 means "at least
 * that much". Exact sums are in the data itself (each object's amount).
 */
export function saturatedSum(sum: number): number {
  return Math.min(sum, MAX_AMOUNT);
}

export function listObject<T>(url: string | null, data: T[], hasMore: boolean): List<T> {
  return { object: 'list', url, has_more: hasMore, data };
}
