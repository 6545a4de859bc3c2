import type { FastifyInstance } from 'fastify';
import { errors } from '../../domain/errors.ts';

/**
 * Request bodies: JSON objects, kept as raw bytes too (request signatures are over the exact
 * bytes; Python, PHP and C# serialise differently and all must verify). SDKs send
 * `application/json` with assorted charset spellings; a body without a Content-Type is read as
 * JSON; any other media type is refused with 415 rather than guessed at.
 */
export function registerBodyParsing(app: FastifyInstance): void {
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
    done(null, parsed);
  });
}
