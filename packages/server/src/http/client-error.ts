import http from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyBaseLogger } from 'fastify';
import { ApiError } from '../domain/errors.ts';

/**
 * Requests Node's HTTP parser refuses before Fastify sees them: a request line and headers over
 * Node's size limit, bytes that are not HTTP/1.1, a request not received in time. Fastify's default
 * answer is JSON whose `error` is a string, which the Ping++ SDKs cannot read (pingpp-go asserts
 * `error` is an object, pingpp-nodejs reports "Unknown Error"), so these get Ping++'s error shape too.
 */
export function clientErrorOf(err: Pick<ConnectionError, 'code'>): ApiError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      // Node counts the request line with the headers, so a long query string ends here too.
      return new ApiError({
        status: 431, code: 'request_header_too_large',
        zh: `请求行与请求头超过 ${http.maxHeaderSize} 字节。`,
        en: `The request line and headers exceed ${http.maxHeaderSize} bytes.`,
      });
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      // Node's own answer to this one is 413: the chunked body's framing is too large.
      return new ApiError({
        status: 413, code: 'request_too_large',
        zh: '请求体的分块扩展过大。', en: 'The chunk extensions of the request body are too large.',
      });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError({
        status: 408, code: 'request_timeout',
        zh: '未能及时收到完整的请求。', en: 'The request was not received in full in time.',
      });
    default: {
      // Only the parser's error name is shown: it is a fixed word, never bytes of the request.
      const name = /^HPE_[A-Z_]+$/.test(err.code) ? ` (${err.code})` : '';
      return new ApiError({
        status: 400, code: 'bad_request',
        zh: `请求不是有效的 HTTP/1.1 请求${name}。`, en: `Bad request: not a valid HTTP/1.1 request${name}.`,
      });
    }
  }
}

/** The bytes of an answer written straight to the socket: there is no request or reply object. */
export function clientErrorResponse(e: ApiError): string {
  // Without a parsed head there is no Accept-Language: the text is Chinese, Ping++'s default.
  const body = JSON.stringify(e.toJSON('zh'));
  return (
    `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status] ?? 'Error'}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: application/json; charset=utf-8\r\n' +
    // Bytes, not characters: the Chinese message takes three bytes a character.
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    '\r\n' +
    body
  );
}

/** Node's socket keeps the response it is writing here; its private name, as Node's own handler reads it. */
type HttpSocket = Socket & { _httpMessage?: { _headerSent?: boolean } | null };

/** Fastify's `clientErrorHandler` option: Fastify's default handler, with Ping++'s error body. */
export function clientErrorHandler(log: FastifyBaseLogger) {
  return (err: ConnectionError, socket: Socket): void => {
    // As Fastify: a reset or closed connection has nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const e = clientErrorOf(err);
    // The error's rawPacket is the refused head, credentials included: only its name is logged
    // (logging.ts also redacts rawPacket wherever it appears). Trace, as Fastify: scanners send
    // such requests all day and there is nothing an operator can do about them.
    log.trace({ err: { type: err.name, code: err.code, message: err.message } }, 'client error');
    // As Node's own handler: answer only when nothing of an earlier response on this connection has
    // been written, or the client would read our bytes as part of that response.
    const inFlight = (socket as HttpSocket)._httpMessage;
    if (socket.writable && !inFlight?._headerSent) socket.write(clientErrorResponse(e));
    // The parser cannot continue after an error: the connection ends here, as `Connection: close` says.
    socket.destroy(err);
  };
}
