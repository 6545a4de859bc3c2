import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { accountScopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { ListQuery } from '../schemas.ts';
import { listEventDeliveries, listEvents, resendEvent, retrieveEvent } from '../../webhooks/events.ts';

/**
 * /v1/events — events (§13). Not app-scoped: the key's account and mode must own the event, and
 * anything else answers 404 as if it did not exist. Listing and resend are tixian extensions
 * (the webhooks guide mentions a newest-first event list; no SDK calls it).
 */

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
const EventsQuery = Type.Object({
  ...ListQuery,
  type: Type.Optional(Type.String({ maxLength: 64 })),
  delivery_success: Type.Optional(Type.Boolean()),
});

export async function eventsRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.get<{ Params: Static<typeof IdParams> }>('/events/:id', { schema: { params: IdParams } }, (req) =>
    retrieveEvent(rt, accountScopeOf(req), req.params.id),
  );

  app.get<{ Querystring: Static<typeof EventsQuery> }>('/events', { schema: { querystring: EventsQuery } }, async (req) => {
    const { data, hasMore } = await listEvents(rt, accountScopeOf(req), req.query);
    return listObject('/v1/events', data, hasMore);
  });

  // Extension: every webhook delivery of the event, each with its tries (status code, answer excerpt, time).
  app.get<{ Params: Static<typeof IdParams> }>('/events/:id/deliveries', { schema: { params: IdParams } }, async (req) => {
    const data = await listEventDeliveries(rt, accountScopeOf(req), req.params.id);
    return listObject(`/v1/events/${req.params.id}/deliveries`, data, false);
  });

  app.post<{ Params: Static<typeof IdParams> }>('/events/:id/resend', { schema: { params: IdParams } }, async (req) => {
    const { event } = await resendEvent(rt, accountScopeOf(req), req.params.id);
    return event;
  });
}
