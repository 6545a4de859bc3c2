import { expect, it } from 'vitest';
import { MAX_PAGE_OFFSET, nextParams } from '../src/pagination.ts';

const list = (ids: string[]) => ({ object: 'list' as const, url: '/v1/x', has_more: true, data: ids.map((id) => ({ id })) });

it('page numbers go on by page up to the server\'s maximum offset, then by cursor from the last id', () => {
  const perPage = 100;
  const lastByPage = MAX_PAGE_OFFSET / perPage;
  expect(nextParams(list(['b', 'a']), { per_page: perPage, page: lastByPage, user: 'u' })).toEqual({ per_page: perPage, page: lastByPage + 1, user: 'u' });
  expect(nextParams(list(['b', 'a']), { per_page: perPage, page: lastByPage + 1, user: 'u' })).toEqual({ limit: perPage, starting_after: 'a', user: 'u' });
  // The default per_page (20) is the page's length.
  expect(nextParams(list(Array.from({ length: 20 }, (_, i) => `i${i}`)), { page: MAX_PAGE_OFFSET / 20 + 1 })).toEqual({ limit: 20, starting_after: 'i19' });
});
