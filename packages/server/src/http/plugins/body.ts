import type { FastifyInstance } from 'fastify';
import { errors, type ApiError } from '../../domain/errors.ts';

/**
 * Request bodies: JSON objects, kept as raw bytes too (request signatures are over the exact
 * bytes; Python, PHP and C# serialise differently and all must verify). SDKs send
 * `application/json` with assorted charset spellings; a body without a Content-Type is read as
 * JSON; any other media type is refused with 415 rather than guessed at.
 */
export function registerBodyParsing(app: FastifyInstance): void {
  // PostgreSQL text cannot hold U+0000 (SQLite can): refuse it in the path and query, as in bodies
  // below, before anything queries with it.
  app.addHook('onRequest', (req, _reply, done) => {
    done(nulIn(req.params as Record<string, unknown> | undefined) ?? nulIn(req.query as Record<string, unknown> | undefined) ?? undefined);
  });
  app.decorateRequest('rawBody', null);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    const buf = body as Buffer;
    req.rawBody = buf;
    const contentType = (req.headers['content-type'] ?? '').toLowerCase();
    const mediaType = contentType.split(';')[0]!.trim();
    if (buf.length === 0) return done(null, req.method === 'GET' || req.method === 'DELETE' ? undefined : {});
    if (mediaType && mediaType !== 'application/json' && !mediaType.endsWith('+json') && mediaType !== 'text/json') {
      return done(errors.badContentType(mediaType.slice(0, 100)));
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.toString('utf8'));
    } catch {
      return done(errors.badJson());
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return done(errors.badJson());
    const problem = inspect(parsed);
    if (problem?.kind === 'depth') return done(tooDeepError());
    if (problem?.kind === 'nul') return done(nulError(problem.name || 'body'));
    done(null, parsed);
  });
}

/** The error for the first key or string value of `part` holding U+0000, or null. */
function nulIn(part: Record<string, unknown> | undefined): ApiError | null {
  if (!part) return null;
  for (const k in part) {
    if (!Object.hasOwn(part, k)) continue;
    const v = part[k];
    if ((typeof v === 'string' && v.includes('\u0000')) || k.includes('\u0000')) return nulError(k.replaceAll('\u0000', ''));
  }
  return null;
}

const nulError = (param: string) => errors.invalidParam(param, 'must not contain U+0000', '不能包含 U+0000');

/**
 * No request of the API nests deeper than 4 (a batch's recipients' extra); 32 leaves room. The cap
 * keeps every later walk of the body (schema validation, serialisation, logging) shallow.
 */
const MAX_BODY_DEPTH = 32;

const tooDeepError = () =>
  errors.invalidParam('body', `must not nest objects or arrays more than ${MAX_BODY_DEPTH} levels deep`, `对象或数组嵌套不能超过 ${MAX_BODY_DEPTH} 层`);

type Problem = { kind: 'depth' } | { kind: 'nul'; name: string };

/**
 * One iterative walk (a recursive one overflows the stack on 40,000 levels, which fit in a small
 * body): the first of nesting deeper than MAX_BODY_DEPTH, or a string or key holding U+0000 (with
 * its bracketed name, `extra[account]`), in document order; null when the body is clean.
 * Linear in the body's size, which the body limit bounds.
 */
function inspect(root: unknown): Problem | null {
  interface Item {
    value: unknown;
    name: string;
    depth: number;
    /** The name to report when the key leading here holds U+0000: the enclosing object's. */
    badKeyName: string | null;
  }
  const stack: Item[] = [{ value: root, name: '', depth: 1, badKeyName: null }];
  while (stack.length > 0) {
    const { value, name, depth, badKeyName } = stack.pop()!;
    if (badKeyName !== null) return { kind: 'nul', name: badKeyName };
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return { kind: 'nul', name };
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_BODY_DEPTH) return { kind: 'depth' };
    const entries = Object.entries(value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, child] = entries[i]!;
      stack.push({ value: child, name: name ? `${name}[${k}]` : k, depth: depth + 1, badKeyName: k.includes('\u0000') ? name || 'body' : null });
    }
  }
  return null;
}
