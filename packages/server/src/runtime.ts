import pino, { type Logger } from 'pino';
import type { Config } from './config.ts';
import { systemClock, type Clock } from './clock.ts';
import { Store } from './store/db.ts';
import { loadMasterKey, SecretBox } from './security/secrets.ts';
import { PlatformKey } from './security/platform-key.ts';
import { EventEmitter } from 'node:events';
import type { DriverRegistry } from './channels/driver.ts';
import { DefaultDrivers } from './channels/sandbox.ts';
import { instrumentDrivers } from './observability/metrics.ts';

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
  /** Payout channel drivers: the sandbox in test mode; live drivers when configured. */
  drivers: DriverRegistry;
  /**
   * In-process wake-ups: 'payout' when a withdrawal was confirmed, 'webhook' when deliveries were
   * queued, so workers act at once instead of at their next poll. Other processes still poll.
   */
  bus: EventEmitter;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  clock?: Clock;
  log?: Logger;
  migrate?: boolean;
  drivers?: DriverRegistry;
}

export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? pino({ level: config.logLevel });
  const store = Store.open({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.poolSize,
    sqliteSynchronous: config.sqliteSynchronous,
    onIdleError: (err) => log.warn({ err }, 'idle database connection lost'),
  });
  try {
    if (options.migrate !== false) await store.migrate();
    const box = new SecretBox(loadMasterKey(config.dataDir, config.masterKeyHex));
    const platformKey = await PlatformKey.load(store.db, box);
    const clock = options.clock ?? systemClock;
    const bus = new EventEmitter();
    bus.setMaxListeners(100);
    return {
      config,
      store,
      box,
      platformKey,
      clock,
      log,
      drivers: instrumentDrivers(options.drivers ?? new DefaultDrivers(store.db, clock, config.sandboxDelayMs)),
      bus,
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
