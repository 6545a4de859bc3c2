import type { HttpClient, RequestOptions } from '../http.ts';
import { seg } from '../http.ts';
import type { Event, List } from '../types.ts';
import type { EventListParams } from '../params.ts';
import type { ListPromise } from '../pagination.ts';
import { listFrom } from './base.ts';

/** /v1/events — not app-scoped (§13): the key's account owns its events. */
export class Events {
  constructor(private readonly http: HttpClient) {}

  retrieve(id: string, options?: RequestOptions): Promise<Event> {
    return this.http.request({ method: 'GET', path: `/events/${seg(id)}`, idempotent: true }, options);
  }

  /** Newest first. */
  list(params?: EventListParams, options?: RequestOptions): ListPromise<Event> {
    return listFrom<Event, List<Event>>(this.http, '/events', params, options);
  }
}
