import { vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import type { Harness } from './harness.ts';

/** The flags that point `tixian` at the harness's storage: its data directory and, on PostgreSQL, its database. */
export function harnessStorageArgs(h: Harness): string[] {
  return ['--data-dir', h.rt.config.dataDir, ...(h.rt.config.databaseUrl ? ['--database-url', h.rt.config.databaseUrl] : [])];
}

/**
 * Runs `tixian <args>` in this process on the harness's storage: what it logs (out), what it
 * prints as errors or writes to stderr (err), and its exit code.
 */
export async function runCli(h: Harness, ...args: string[]): Promise<{ out: string[]; err: string[]; code: number }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
  try {
    process.exitCode = 0;
    await main(['node', 'tixian', ...args, ...harnessStorageArgs(h)]);
    return { out, err, code: Number(process.exitCode ?? 0) };
  } finally {
    process.exitCode = 0;
    log.mockRestore();
    error.mockRestore();
    stderr.mockRestore();
  }
}
