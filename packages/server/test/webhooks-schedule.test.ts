import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { attemptOffsetsMs, isSuccessStatus, MAX_ATTEMPTS, RETRY_DELAYS_S, retryDelayMs } from '../src/webhooks/schedule.ts';

describe('webhook retry schedule (pure)', () => {
  it('is the Ping++ schedule: first try at once, then 5 s, 10 s, 2 min, 5 min, 10 min, 30 min, 1 h, 2 h, 6 h, 15 h', () => {
    expect(RETRY_DELAYS_S).toEqual([5, 10, 2 * 60, 5 * 60, 10 * 60, 30 * 60, 3600, 2 * 3600, 6 * 3600, 15 * 3600]);
    expect(MAX_ATTEMPTS).toBe(11);
  });

  it('gives the delay after every try, and null after the 11th', () => {
    const expected = [5_000, 10_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 54_000_000];
    for (let made = 1; made <= 10; made++) expect(retryDelayMs(made)).toBe(expected[made - 1]);
    expect(retryDelayMs(11)).toBeNull();
    expect(retryDelayMs(12)).toBeNull();
    expect(retryDelayMs(1_000_000)).toBeNull();
  });

  it('rejects invalid inputs rather than guessing', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => retryDelayMs(bad)).toThrow(RangeError);
    for (const bad of [0, -0.5, 1.0001, 2, Number.NaN]) expect(() => retryDelayMs(1, bad)).toThrow(RangeError);
  });

  it('spans 24 h 47 min 15 s over 11 tries ("within 25 hours")', () => {
    const offsets = attemptOffsetsMs();
    expect(offsets).toHaveLength(11);
    expect(offsets).toEqual([0, 5_000, 15_000, 135_000, 435_000, 1_035_000, 2_835_000, 6_435_000, 13_635_000, 35_235_000, 89_235_000]);
    expect(offsets[10]).toBe(((24 * 60 + 47) * 60 + 15) * 1000);
    expect(offsets[10]).toBeLessThan(25 * 3600 * 1000);
  });

  it('scales delays for tests, never below 1 ms, keeping 11 strictly increasing tries', () => {
    expect(retryDelayMs(1, 0.001)).toBe(5);
    expect(retryDelayMs(10, 0.001)).toBe(54_000);
    expect(retryDelayMs(1, 1e-9)).toBe(1);
    expect(retryDelayMs(1, 1)).toBe(5_000);
    fc.assert(
      fc.property(fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }), (scale) => {
        const offsets = attemptOffsetsMs(scale);
        expect(offsets).toHaveLength(MAX_ATTEMPTS);
        for (let i = 1; i < offsets.length; i++) expect(offsets[i]!).toBeGreaterThan(offsets[i - 1]!);
      }),
    );
  });

  it('counts exactly 200–299 as success: 3xx (no redirects followed), 4xx, 5xx and 1xx are failures', () => {
    for (let status = 0; status <= 999; status++) expect(isSuccessStatus(status)).toBe(status >= 200 && status < 300);
    expect(isSuccessStatus(199)).toBe(false);
    expect(isSuccessStatus(200)).toBe(true);
    expect(isSuccessStatus(299)).toBe(true);
    expect(isSuccessStatus(300)).toBe(false);
  });
});
