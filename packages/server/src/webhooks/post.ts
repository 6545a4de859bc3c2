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

/**
 * One POST through undici's dispatcher API with a handler of its own, rather than `request()`,
 * whose answer is a Readable stream read with an async iterator, and whose abort signal is watched
 * by listeners of its own: on one core that cost ~70 µs of CPU per try against ~30 µs here
 * (issue #12, a local receiver, 64 tries in flight).
 *
 * The status decides: an answer whose body then stalls or breaks still counts as given (with the
 * error). The first `keepBytes` of the body are kept; at most `drainBytes` more are read so the
 * socket can be reused, and beyond that the request is aborted (its connection closed). Aborting
 * `signal` (a timeout, a stop) ends the try with its reason. Redirects are not followed: a 3xx is
 * an answer. Never rejects.
 */
export function postOnce(
  dispatcher: Dispatcher,
  url: URL,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
  keepBytes: number,
  drainBytes: number,
): Promise<PostAnswer> {
  return new Promise<PostAnswer>((resolve) => {
    let statusCode: number | null = null;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let readBytes = 0;
    let controller: Dispatcher.DispatchController | null = null;
    let settled = false;
    const settle = (answer: PostAnswer) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      resolve(answer);
    };
    const keptText = () => Buffer.concat(kept).toString('utf8').replaceAll('\u0000', '\uFFFD');
    const fail = (error: unknown) => settle({ statusCode, body: null, error });
    // Before the request has started there is no controller to abort: onRequestStart looks at the signal.
    function onAbort(): void {
      fail(signal.reason);
      controller?.abort(signal.reason as Error);
    }
    if (signal.aborted) return fail(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal.aborted) c.abort(signal.reason as Error);
      },
      onResponseStart(_c, status) {
        // 1xx answers are informational: the real one follows.
        if (status >= 200) statusCode = status;
      },
      onResponseData(c, chunk) {
        readBytes += chunk.length;
        if (keptBytes < keepBytes) {
          const part = chunk.subarray(0, keepBytes - keptBytes);
          kept.push(part);
          keptBytes += part.length;
        }
        if (readBytes > keepBytes + drainBytes) {
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
  });
}
