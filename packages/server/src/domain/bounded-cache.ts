/**
 * A Map with a size bound: once full, setting a new key drops the oldest one (first in, first out;
 * setting a key again makes it the newest). Every in-process cache uses it, so none grows without end.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a cache holds at least one entry, got ${max}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, value);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  /** The cached value, or `make()` remembered and returned (a throw is not remembered). */
  getOrSet(key: K, make: () => V): V {
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const value = make();
    this.set(key, value);
    return value;
  }
}

/**
 * Renewals of cache entries ahead of their expiry (refresh-ahead), at most one in flight per key
 * and `max` in all. A renewal that fails is dropped: its entry still expires on time, and the
 * request after that reads the database itself.
 *
 * Why caches of a few seconds renew ahead: under steady use no request then waits for the
 * database when an entry expires. The first request in a process that did wait (5 s after start)
 * also met Node's request objects in a state the optimised code had not seen, and V8 dropped the
 * request path's optimised code: measured, ~1 s of 25% slower answers on one core.
 */
export class Renewals<K> {
  readonly #inFlight = new Set<K>();

  constructor(private readonly max: number) {}

  start(key: K, renew: () => Promise<unknown>): void {
    if (this.#inFlight.has(key) || this.#inFlight.size >= this.max) return;
    this.#inFlight.add(key);
    const done = () => void this.#inFlight.delete(key);
    renew().then(done, done);
  }
}
