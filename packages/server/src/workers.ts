import type { Runtime } from './runtime.ts';
import { startPayoutWorker } from './channels/worker.ts';
import { startWebhookDispatcher } from './webhooks/dispatcher.ts';

/** Background work run next to the API: the payout worker and the webhook dispatcher. */
export interface Worker {
  stop(): Promise<void>;
}

export type WorkerFactory = (rt: Runtime) => Worker;

export const workerFactories: WorkerFactory[] = [startPayoutWorker, startWebhookDispatcher];

export function startWorkers(rt: Runtime): Worker {
  const running = workerFactories.map((start) => start(rt));
  return {
    async stop() {
      await Promise.all(running.map((w) => w.stop()));
    },
  };
}
