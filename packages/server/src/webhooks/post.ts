import type { Dispatcher } from 'undici';

/** What one POST of a webhook got. */
export interface PostAnswer {
  /** The answer's status; null when none came (no connection, a timeout before the headers…). */
  statusCode: number | null;
  /** The answer's first bytes (UTF-8, NUL replaced); null without an answer, or when reading it failed. */
  body: string | null;
  /** What went wrong (with or without a status: the body may break after the headers), or null. */
  error: unknown;
}

/** A POST on its way: its answer (never rejects), and a way to end it early (a stop). */
export interface Post {
  readonly answer: Promise<PostAnswer>;
  /** Ends the try now with this reason as its error (a request undici has not started is not written). */
  abort(reason: unknown): void;
}

export interface PostBounds {
  /** The whole try, the answer's body included; past it the try ends with a TimeoutError. */
  timeoutMs: number;
  /** The first bytes of the answer kept. */
  keepBytes: number;
  /** Read (and dropped) at most this much more so the socket can be reused; beyond, the connection is closed. */
  drainBytes: number;
}

/**
 * One POST through undici's dispatcher API with a handler of its own, rather than `request()`,
 * whose answer is a Readable stream read with an async iterator, bounded by an AbortSignal that
 * undici and the caller watch with listeners: on one core that cost ~70 µs of CPU per try against
 * ~30 µs here (issue #12, a local receiver, 64 tries in flight). One timer bounds the try.
 *
 * The status decides: an answer whose body then stalls or breaks still counts as given (with the
 * error). Redirects are not followed: a 3xx is an answer.
 */
export function postOnce(dispatcher: Dispatcher, url: URL, headers: Record<string, string>, body: string, bounds: PostBounds): Post {
  let statusCode: number | null = null;
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let readBytes = 0;
  let controller: Dispatcher.DispatchController | null = null;
  let abortedWith: { reason: unknown } | null = null;
  let settled = false;
  let resolve!: (answer: PostAnswer) => void;
  const answer = new Promise<PostAnswer>((r) => (resolve = r));
  const settle = (a: PostAnswer) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    resolve(a);
  };
  // PostgreSQL text cannot hold NUL; a multi-byte character cut at the bound decodes as U+FFFD.
  const keptText = () => Buffer.concat(kept).toString('utf8').replaceAll('\u0000', '\uFFFD');
  const fail = (error: unknown) => settle({ statusCode, body: null, error });
  const abort = (reason: unknown) => {
    if (settled) return;
    abortedWith = { reason };
    fail(reason);
    controller?.abort(reason as Error);
  };
  const timer = setTimeout(() => abort(new DOMException('no answer in time', 'TimeoutError')), bounds.timeoutMs);
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(c) {
      controller = c;
      // Ended before undici started it: it is not written.
      if (abortedWith) c.abort(abortedWith.reason as Error);
    },
    onResponseStart(_c, status) {
      // 1xx answers are informational: the real one follows.
      if (status >= 200) statusCode = status;
    },
    onResponseData(c, chunk) {
      readBytes += chunk.length;
      if (keptBytes < bounds.keepBytes) {
        const part = chunk.subarray(0, bounds.keepBytes - keptBytes);
        kept.push(part);
        keptBytes += part.length;
      }
      if (readBytes > bounds.keepBytes + bounds.drainBytes && !settled) {
        // Too long to drain: the answer stands as kept, and its connection is closed.
        settle({ statusCode, body: keptText(), error: null });
        c.abort(new Error('webhook answer too long to drain; connection closed'));
      }
    },
    onResponseEnd() {
      settle({ statusCode, body: keptText(), error: null });
    },
    onResponseError(_c, err) {
      fail(err);
    },
  };
  try {
    dispatcher.dispatch({ origin: url.origin, path: url.pathname + url.search, method: 'POST', headers, body }, handler);
  } catch (err) {
    fail(err); // a dispatcher closed or destroyed (stop)
  }
  return { answer, abort };
}
