import pino, { type Logger } from 'pino';
import type { Config } from './config.ts';
import { systemClock, type Clock } from './clock.ts';
import { Store } from './store/db.ts';
import { loadMasterKey, SecretBox } from './security/secrets.ts';
import { PlatformKey } from './security/platform-key.ts';

/**
 * Everything a service needs, opened once: storage (migrated), the master-key box, the platform
 * key, the clock and the logger. The server, the CLI and the tests all build one of these.
 */
export interface Runtime {
  config: Config;
  store: Store;
  box: SecretBox;
  platformKey: PlatformKey;
  clock: Clock;
  log: Logger;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  clock?: Clock;
  log?: Logger;
  migrate?: boolean;
}

export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? pino({ level: config.logLevel });
  const store = Store.open({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.poolSize });
  try {
    if (options.migrate !== false) await store.migrate();
    const box = new SecretBox(loadMasterKey(config.dataDir, config.masterKeyHex));
    const platformKey = await PlatformKey.load(store.db, box);
    return {
      config,
      store,
      box,
      platformKey,
      clock: options.clock ?? systemClock,
      log,
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
