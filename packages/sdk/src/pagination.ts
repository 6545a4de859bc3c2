import type { List } from './types.ts';
import type { ListParams } from './params.ts';

/**
 * A page is the API's list object (`object`, `url`, `has_more`, `data`, and any extra fields such
 * as `total_withdrawals_amount`) plus auto-pagination:
 *
 *   const page = await tixian.withdrawals.list({ per_page: 50 });
 *   page.data;                                         // this page
 *   for await (const w of page) …                      // every item, fetching further pages
 *   for await (const p of page.pages()) …              // page by page
 *   for await (const w of tixian.withdrawals.list()) … // the same, straight from the call
 *
 * The next page continues in the scheme the first one used: `page + 1` when the call named
 * `page` or `per_page`, otherwise a cursor (`starting_after` the last id, or `ending_before` the
 * first id when paging backwards). The methods are not enumerable: JSON.stringify(page) is the list.
 */
export interface PageMethods<T, L extends List<T>> extends AsyncIterable<T> {
  /** The following page, or null when `has_more` is false. */
  nextPage(): Promise<Page<T, L> | null>;
  /** This page and every following one. */
  pages(): AsyncGenerator<Page<T, L>, void, undefined>;
  /** Items from this page on, stopping after `limit` (required: an unbounded list is a bug waiting for load). */
  autoPagingToArray(options: { limit: number }): Promise<T[]>;
}

export type Page<T, L extends List<T> = List<T>> = L & PageMethods<T, L>;

/** What `list()` returns: a promise of the first page that can also be iterated directly. */
export type ListPromise<T, L extends List<T> = List<T>> = Promise<Page<T, L>> &
  AsyncIterable<T> & { autoPagingToArray(options: { limit: number }): Promise<T[]> };

export type FetchPage<L> = (params: ListParams & Record<string, unknown>) => Promise<L>;

/** Upper bound of `autoPagingToArray({ limit })`, so a typo cannot load a whole ledger into memory. */
export const AUTO_PAGING_MAX_ITEMS = 100_000;

/**
 * The most rows a `page`/`per_page` request may skip on tixian (`(page − 1) × per_page`); deeper
 * pages answer 400 and point to `starting_after`, which costs the same at any depth.
 */
export const MAX_PAGE_OFFSET = 10_000;

export function nextParams<T extends { id: string }>(
  list: List<T>,
  params: ListParams & Record<string, unknown>,
): (ListParams & Record<string, unknown>) | null {
  if (!list.has_more || list.data.length === 0) return null;
  if (byPageNumber(params)) {
    const page = params.page ?? 1;
    const perPage = params.per_page ?? list.data.length;
    if (page * perPage <= MAX_PAGE_OFFSET) return { ...params, page: page + 1 };
    // tixian answers page=N only up to MAX_PAGE_OFFSET skipped rows: go on by cursor from the last id.
    const { page: _page, per_page: _perPage, ending_before: _before, ...rest } = params;
    return { ...rest, limit: perPage, starting_after: list.data[list.data.length - 1]!.id };
  }
  if (params.ending_before !== undefined && params.starting_after === undefined) {
    return { ...params, ending_before: advanced(params.ending_before, list.data[0]!.id) };
  }
  const { ending_before: _ignored, ...rest } = params;
  return { ...rest, starting_after: advanced(params.starting_after, list.data[list.data.length - 1]!.id) };
}

/** A cursor that does not move would page forever: fail loudly instead. */
function advanced(previous: string | undefined, next: string): string {
  if (previous === next) throw notAdvanced(next);
  return next;
}

/**
 * Page numbers have no cursor to compare, so the pages themselves are: a server that ignores
 * `page` answers the same page again, which starts with the same id.
 */
function checkPageAdvanced<T extends { id: string }>(previous: List<T>, next: List<T>): void {
  const first = next.data[0]?.id;
  if (first !== undefined && first === previous.data[0]?.id) throw notAdvanced(first);
}

function notAdvanced(id: string): Error {
  return new Error(`pagination did not advance (${id} again); the server returned the same page twice`);
}

/** Whether a list call pages by number (`page` / `per_page`) rather than by cursor. */
function byPageNumber(params: ListParams): boolean {
  return params.page !== undefined || params.per_page !== undefined;
}

export function makePage<T extends { id: string }, L extends List<T>>(
  list: L,
  params: ListParams & Record<string, unknown>,
  fetchPage: FetchPage<L>,
): Page<T, L> {
  const nextPage = async (): Promise<Page<T, L> | null> => {
    const next = nextParams(list, params);
    if (next === null) return null;
    const fetched = await fetchPage(next);
    if (byPageNumber(next)) checkPageAdvanced(list, fetched);
    return makePage<T, L>(fetched, next, fetchPage);
  };
  async function* pages(this: void): AsyncGenerator<Page<T, L>, void, undefined> {
    let page: Page<T, L> | null = self;
    while (page !== null) {
      yield page;
      page = await page.nextPage();
    }
  }
  async function* items(): AsyncGenerator<T, void, undefined> {
    for await (const page of pages()) yield* page.data;
  }
  const autoPagingToArray = async ({ limit }: { limit: number }): Promise<T[]> => {
    if (!Number.isInteger(limit) || limit < 1 || limit > AUTO_PAGING_MAX_ITEMS) {
      throw new RangeError(`autoPagingToArray needs an integer limit in 1..${AUTO_PAGING_MAX_ITEMS}, got ${limit}`);
    }
    const out: T[] = [];
    for await (const item of items()) {
      out.push(item);
      if (out.length >= limit) break;
    }
    return out;
  };
  const self = list as Page<T, L>;
  Object.defineProperties(self, {
    nextPage: { value: nextPage, enumerable: false },
    pages: { value: pages, enumerable: false },
    autoPagingToArray: { value: autoPagingToArray, enumerable: false },
    [Symbol.asyncIterator]: { value: items, enumerable: false },
  });
  return self;
}

export function listPromise<T, L extends List<T>>(first: Promise<Page<T, L>>): ListPromise<T, L> {
  async function* items(): AsyncGenerator<T, void, undefined> {
    yield* await first;
  }
  return Object.assign(first, {
    [Symbol.asyncIterator]: items,
    autoPagingToArray: async (options: { limit: number }) => (await first).autoPagingToArray(options),
  });
}
