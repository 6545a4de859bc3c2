import { Option, type Command } from 'commander';
import pino from 'pino';
import { loadConfig, type ConfigFlags } from '../config.ts';
import { openRuntime, type Runtime } from '../runtime.ts';
import { ApiError } from '../domain/errors.ts';

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

/**
 * The usage error an error stands for, or null for one that is not the caller's doing (a bug, the
 * database down): a UsageError; a service's refusal (an ApiError below 500, in English); a refused
 * name or setting from account creation or the configuration.
 */
export function asUsageError(err: unknown): UsageError | null {
  if (err instanceof UsageError) return err;
  if (err instanceof ApiError && err.status < 500) return new UsageError(err.en);
  if (err instanceof Error && /^(account name|app name|port|TIXIAN_)/.test(err.message)) return new UsageError(err.message);
  return null;
}

/** Refuses an app id that does not exist, as a usage error. */
export async function requireApp(rt: Runtime, appId: string): Promise<void> {
  const app = await rt.store.db.selectFrom('apps').select('id').where('id', '=', appId).executeTakeFirst();
  if (!app) throw new UsageError(`no such app: ${appId}`);
}
