import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../../runtime.ts';

// Request signatures (Pingplusplus-Signature) and response signatures (X-Pingplusplus-Signature)
// land with their issue; the hooks are registered already so app.ts does not change when they do.
export function registerRequestSignature(_app: FastifyInstance, _rt: Runtime): void {}
export function registerResponseSignature(_app: FastifyInstance, _rt: Runtime): void {}
