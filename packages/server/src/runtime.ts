import type { Logger } from 'pino';
import { createLogger } from './logging.ts';
import type { Config } from './config.ts';
import { systemClock, type Clock } from './clock.ts';
import { describeDatabaseErrors, openStore, type Store } from './store/db.ts';
import type { WalSyncFactory } from './store/wal-sync.ts';
import { inlineSignatures } from './security/sign-pool.ts';
import { openMasterKey, SecretBox } from './security/secrets.ts';
import { PlatformKey } from './security/platform-key.ts';
import { EventEmitter } from 'node:events';
import type { DriverRegistry } from './channels/driver.ts';
import { DefaultDrivers } from './channels/sandbox.ts';
import { LiveDrivers } from './channels/live.ts';
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
  /** SQLite with FULL: how the group commit syncs the WAL (tests hold or fail a sync). */
  sqliteWalSync?: WalSyncFactory;
}

export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? createLogger(config.logLevel);
  const store = openStore(config, {
    onIdleError: (err) => log.warn({ err }, 'idle database connection lost'),
    onClientError: (err) => log.warn({ err }, 'database connection lost; a request using it fails, the pool connects anew'),
    onCheckpointError: (err) => log.warn({ err }, 'SQLite background checkpoint failed'),
    onStat4Dropped: (rows) => log.info({ rows }, 'removed the sqlite_stat4 samples of an earlier ANALYZE: with them SQLite plans joined and ranged statements again on every run'),
    sqliteWalSync: options.sqliteWalSync,
  });
  // SQLite group commit gathers while earlier answers are still being signed on the event loop.
  if (store.groupCommit) store.groupCommit.answersPending = () => inlineSignatures.size;
  try {
    const box = await describeDatabaseErrors(config, async () => {
      if (options.migrate !== false) await store.migrate();
      return new SecretBox(await openMasterKey(store.db, { dataDir: config.dataDir, keyFile: config.masterKeyFile, keyHex: config.masterKeyHex }));
    });
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
      drivers: instrumentDrivers(options.drivers ?? new DefaultDrivers(store, clock, config.sandboxDelayMs, new LiveDrivers({ store, box, log, publicUrl: config.publicUrl }))),
      bus,
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
