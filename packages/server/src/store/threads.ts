import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';

/** How long a store's thread gets to close its file or connection before it is terminated. */
const CLOSE_TIMEOUT_MS = 5_000;

/** Asks a store's thread to close what it holds and exit, and waits for it (terminated if it does not). */
export async function closeThread(worker: Worker, message: unknown): Promise<void> {
  const exited = once(worker, 'exit');
  worker.postMessage(message);
  const timer = setTimeout(() => void worker.terminate(), CLOSE_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
