import { Option, type Command } from 'commander';
import pino from 'pino';
import { loadConfig, type ConfigFlags } from '../config.ts';
import { openRuntime, type Runtime } from '../runtime.ts';

/** Storage flags every command shares, with their TIXIAN_* environment twins. */
export function storageOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data-dir <dir>', 'data directory (SQLite file, master key)').env('TIXIAN_DATA_DIR'))
    .addOption(new Option('--database-url <url>', 'postgres://… to use PostgreSQL instead of SQLite').env('TIXIAN_DATABASE_URL'));
}

/** Opens the runtime for one CLI command (quiet logs) and always closes it. */
export async function withRuntime<T>(flags: ConfigFlags, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await openRuntime(loadConfig(flags), { log: pino({ level: 'warn' }) });
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

/** A usage error: printed without a stack, exit code 2. */
export class UsageError extends Error {}
