import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../../runtime.ts';

// Routes of this resource land with its issue; the module is registered already so that
// app.ts does not change when they do.
export async function withdrawalsRoutes(_app: FastifyInstance, _rt: Runtime): Promise<void> {}
