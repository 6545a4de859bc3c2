import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * fsync latency of the disk the SQLite runs use (the temp directory): 4 KiB appends, each made
 * durable, like a small WAL commit. PERFORMANCE.md's SQLite figures assume ~0.1 ms; other work on
 * the machine (tests, other benchmarks) can make it several times that, and every SQLite write
 * figure with it. Bounded: `count` fsyncs or `maxMs`, whichever ends first.
 */
export function fsyncProbe(count = 200, maxMs = 3_000): { p50Ms: number; p99Ms: number; n: number } {
  const dir = mkdtempSync(path.join(tmpdir(), 'tixian-bench-fsync-'));
  const fd = openSync(path.join(dir, 'probe'), 'w');
  const block = Buffer.alloc(4096, 120);
  const times: number[] = [];
  const deadline = performance.now() + maxMs;
  try {
    for (let i = 0; i < count && performance.now() < deadline; i++) {
      writeSync(fd, block);
      const t = performance.now();
      fsyncSync(fd);
      times.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
  return { p50Ms: at(0.5), p99Ms: at(0.99), n: times.length };
}

export function describeFsync(): string {
  const f = fsyncProbe();
  return `fsync of 4 KiB p50 ${f.p50Ms.toFixed(2)} ms, p99 ${f.p99Ms.toFixed(2)} ms (${f.n} tries)`;
}
