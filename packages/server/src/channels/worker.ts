import type { Runtime } from '../runtime.ts';
import type { Worker } from '../workers.ts';

// The payout worker lands with the withdrawals issue.
export function startPayoutWorker(_rt: Runtime): Worker {
  return { stop: async () => {} };
}
