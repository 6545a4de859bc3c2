import { closeSync, fdatasync, openSync } from 'node:fs';
import type { WalSyncFactory } from '../../src/store/wal-sync.ts';

export type SyncCallback = (err: NodeJS.ErrnoException | null) => void;

/**
 * A group commit's WAL sync that a test controls: the real fdatasync, run at once; or, while
 * `state.hold` is set, kept in `state.held` until the test runs it (with a failure to fail it); or,
 * while `state.hook` is set, handed to the hook, which ends it by calling `done` (after a real
 * `fdatasync(fd, done)`, or with an error, or not at all). Counts the syncs and names the files.
 */
export function heldWalSync() {
  const state = {
    hold: false,
    held: [] as ((failure?: Error) => void)[],
    hook: null as ((fd: number, done: SyncCallback) => void) | null,
    count: 0,
    files: [] as string[],
  };
  const factory: WalSyncFactory = (file) => {
    state.files.push(file);
    let fd: number | null = null;
    return {
      sync: () =>
        new Promise<void>((resolve, reject) => {
          state.count++;
          const own = (fd ??= openSync(file, 'r'));
          const done: SyncCallback = (err) => (err ? reject(err) : resolve());
          if (state.hook) state.hook(own, done);
          else if (state.hold) state.held.push((failure) => (failure ? done(failure) : fdatasync(own, done)));
          else fdatasync(own, done);
        }),
      close: async () => {
        if (fd !== null) closeSync(fd);
      },
    };
  };
  return { state, factory, release: () => state.held.splice(0).forEach((run) => run()) };
}
