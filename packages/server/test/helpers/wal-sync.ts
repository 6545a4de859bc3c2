import { closeSync, fdatasync, openSync } from 'node:fs';
import type { WalSyncFactory } from '../../src/store/wal-sync.ts';

/**
 * A group commit's WAL sync that a test can hold: the real fdatasync, run at once, or, while
 * `state.hold` is set, kept in `state.held` until the test runs it (with a failure to fail it).
 */
export function heldWalSync() {
  const state = { hold: false, held: [] as ((failure?: Error) => void)[], count: 0 };
  const factory: WalSyncFactory = (file) => {
    let fd: number | null = null;
    return {
      sync: () =>
        new Promise<void>((resolve, reject) => {
          state.count++;
          fd ??= openSync(file, 'r');
          const run = (failure?: Error) => (failure ? reject(failure) : fdatasync(fd!, (err) => (err ? reject(err) : resolve())));
          if (state.hold) state.held.push(run);
          else run();
        }),
      close: async () => {
        if (fd !== null) closeSync(fd);
      },
    };
  };
  return { state, factory, release: () => state.held.splice(0).forEach((run) => run()) };
}
