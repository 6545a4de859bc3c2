import type { Runtime } from '../runtime.ts';
import type { Worker } from '../workers.ts';

// The webhook dispatcher lands with its issue; deliveries wait in webhook_deliveries until then.
export function startWebhookDispatcher(_rt: Runtime): Worker {
  return { stop: async () => {} };
}
