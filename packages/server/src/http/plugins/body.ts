import type { FastifyInstance } from 'fastify';
import { errors } from '../../domain/errors.ts';

/**
 * Request bodies: JSON objects, kept as raw bytes too (request signatures are over the exact
 * bytes; Python, PHP and C# serialise differently and all must verify). SDKs send
 * `application/json` with assorted charset spellings; a body without a Content-Type is read as
 * JSON; any other media type is refused with 415 rather than guessed at.
 */
export function registerBodyParsing(app: FastifyInstance): void {
  // PostgreSQL text cannot hold U+0000 (SQLite can): refuse it in the path and query, as in bodies
  // below, before anything queries with it.
  app.addHook('onRequest', async (req) => {
    for (const part of [req.params, req.query] as (Record<string, unknown> | undefined)[]) {
      for (const [k, v] of Object.entries(part ?? {})) {
        if ((typeof v === 'string' && v.includes('\u0000')) || k.includes('\u0000')) throw nulError(k.replaceAll('\u0000', ''));
      }
    }
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
    const nul = findNul(parsed, '');
    if (nul !== null) return done(nulError(nul || 'body'));
    done(null, parsed);
  });
}

const nulError = (param: string) => errors.invalidParam(param, 'must not contain U+0000', '不能包含 U+0000');

/** The bracketed name of the first string (or key) holding U+0000, or null; bounded by the body size. */
function findNul(v: unknown, name: string): string | null {
  if (typeof v === 'string') return v.includes('\u0000') ? name : null;
  if (v === null || typeof v !== 'object') return null;
  for (const [k, child] of Object.entries(v)) {
    const childName = name ? `${name}[${k}]` : k;
    if (k.includes('\u0000')) return name || 'body';
    const found = findNul(child, childName);
    if (found !== null) return found;
  }
  return null;
}
