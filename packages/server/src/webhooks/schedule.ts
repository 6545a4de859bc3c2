/**
 * The Ping++ webhook retry schedule (seed guide, 注意事项 2): after a first try at once, retries
 * 5 s, 10 s, 2 min, 5 min, 10 min, 30 min, 1 h, 2 h, 6 h and 15 h after the previous try,
 * stopping at the first 2xx. The guide says "at most 10 sends" but lists ten gaps; we read it as
 * one send plus ten retries (11 tries), whose span (24 h 47 min 15 s) matches its "within 25 hours".
 *
 * Pure: no clock, no I/O. The dispatcher asks "this try failed; when is the next one?".
 */
export const RETRY_DELAYS_S: readonly number[] = [5, 10, 120, 300, 600, 1800, 3600, 7200, 21_600, 54_000];

/** Total tries of one delivery: the first plus one per listed gap. */
export const MAX_ATTEMPTS = RETRY_DELAYS_S.length + 1;

/**
 * Delay before the next try, after `attemptsMade` tries (1-based count, including the one that
 * just failed), or null when the schedule is exhausted and the delivery has finally failed.
 * `scale` shrinks every delay (test-only: lets a spawned server run the schedule in seconds);
 * it is a fraction in (0, 1], and a scaled delay is never below 1 ms so tries stay ordered.
 */
export function retryDelayMs(attemptsMade: number, scale = 1): number | null {
  if (!Number.isInteger(attemptsMade) || attemptsMade < 1) throw new RangeError(`attemptsMade must be a positive integer, got ${attemptsMade}`);
  if (!(scale > 0 && scale <= 1)) throw new RangeError(`scale must be in (0, 1], got ${scale}`);
  if (attemptsMade >= MAX_ATTEMPTS) return null;
  const delayS = RETRY_DELAYS_S[attemptsMade - 1]!;
  return Math.max(1, Math.round(delayS * 1000 * scale));
}

/**
 * Offsets (ms after the first try) of every try a receiver that never answers 2xx gets:
 * [0, 5 000, 15 000, 135 000, …, 89 235 000].
 */
export function attemptOffsetsMs(scale = 1): number[] {
  const offsets = [0];
  for (let made = 1; ; made++) {
    const delay = retryDelayMs(made, scale);
    if (delay === null) return offsets;
    offsets.push(offsets[offsets.length - 1]! + delay);
  }
}

/** Success is any 2xx; the body is ignored (Ping++ §14). 3xx is not followed and counts as failure. */
export function isSuccessStatus(statusCode: number): boolean {
  return statusCode >= 200 && statusCode <= 299;
}
