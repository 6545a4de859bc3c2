import { Option, type Command } from 'commander';
import pino from 'pino';
import { ConfigError, defaults, loadConfig, settings, type Config, type ConfigFlags, type Setting } from '../config.ts';
import { openRuntime, type Runtime } from '../runtime.ts';
import { ApiError } from '../domain/errors.ts';

/** Settings every command shares: where the data is and the master key that opens its secrets. */
export const STORAGE_SETTINGS: readonly (keyof Config)[] = ['dataDir', 'databaseUrl', 'masterKeyFile'];

/**
 * A setting's flag, whose value commander keeps under the setting's key. Commander's own name for
 * it (the flag in camelCase, `no-` dropped) puts `--workers <n>` (clusterWorkers) and `--no-workers`
 * (workers) in one attribute, so the later of the two silently replaced the other.
 */
class SettingOption extends Option {
  constructor(
    flags: string,
    description: string,
    private readonly key: keyof Config,
  ) {
    super(flags, description);
  }

  override attributeName(): string {
    return this.key;
  }
}

/**
 * The flag of one setting. Its TIXIAN_* twin is read by loadConfig, not by commander, so an
 * error names what the user actually set (`--port abc` or `TIXIAN_PORT=abc`), and a --no-…
 * switch left out does not hide the variable (commander would default it to true).
 */
export function settingOption(setting: Setting): Option {
  const flag = setting.flag!;
  const placeholder = setting.kind.type === 'bool' ? '' : ` <${setting.unit.replace(/\s+/g, '-')}>`;
  const fallback = setting.defaultText ?? (setting.kind.type === 'bool' ? null : JSON.stringify(defaults[setting.key]));
  const help =
    setting.kind.type === 'bool'
      ? `${setting.help.replace(/`/g, '')}; ${flag.startsWith('--no-') ? 'on by default, this flag turns it off' : 'off by default, this flag turns it on'} (env ${setting.env}=0|1)`
      : `${setting.help.replace(/`/g, '')} (env ${setting.env}${fallback ? `; default ${fallback.replace(/`/g, '')}` : ''})`;
  return new SettingOption(flag + placeholder, help, setting.key);
}

/** Storage flags every command shares, with their TIXIAN_* environment twins. */
export function storageOptions(cmd: Command): Command {
  for (const key of STORAGE_SETTINGS) cmd.addOption(settingOption(settings.find((s) => s.key === key)!));
  return cmd;
}

/** The settings given on the command line (not commander's defaults for --no-… switches). */
export function cliFlags(cmd: Command): ConfigFlags {
  const flags: ConfigFlags = {};
  const opts = cmd.opts() as Record<string, string | boolean | undefined>;
  for (const setting of settings) {
    // Each flag's value is under its setting's key (SettingOption).
    if (cmd.getOptionValueSource(setting.key) !== 'cli') continue;
    flags[setting.key] = opts[setting.key];
  }
  return flags;
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
  if (err instanceof ConfigError) return new UsageError(err.message);
  if (err instanceof ApiError && err.status < 500) return new UsageError(err.en);
  if (err instanceof Error && /^(account name|app name|port|TIXIAN_)/.test(err.message)) return new UsageError(err.message);
  return null;
}

/** Refuses an app id that does not exist, as a usage error. */
export async function requireApp(rt: Runtime, appId: string): Promise<void> {
  const app = await rt.store.db.selectFrom('apps').select('id').where('id', '=', appId).executeTakeFirst();
  if (!app) throw new UsageError(`no such app: ${appId}`);
}
