import type { Runtime } from '../runtime.ts';
import { redactedUrl } from './destination.ts';

/**
 * `tixian events tail`: what happened since the last poll — new events and finished webhook tries —
 * read from the database, so it sees every server process sharing it.
 *
 * A try is recorded when it ends (up to the request timeout after it started, and written in
 * batches), so "newer than the last one seen" by time would miss slow ones. Instead each poll looks
 * back over a window longer than any try (LOOKBACK_MS) and prints what it has not printed yet; the
 * ids printed are remembered only for that window. The first poll only learns what already exists.
 */

export type TailLine =
  | { kind: 'event'; id: string; type: string; app: string; livemode: boolean; created: number }
  | {
      kind: 'attempt';
      id: string;
      event: string;
      endpoint: string;
      url: string | null;
      attempted_ms: number;
      status_code: number | null;
      error: string | null;
      duration_ms: number;
      delivery_status: string;
    };

/** Longer than the longest try (request timeout ≤ 120 s) plus the time to record it. */
const LOOKBACK_MS = 5 * 60_000;
/** The newest rows read per kind per poll (a tail is for watching, not an export): more in one interval are skipped. */
const MAX_ROWS_PER_POLL = 500;

export class EventTail {
  private readonly seen = new Map<string, number>();
  private primed = false;

  constructor(
    private readonly rt: Runtime,
    private readonly app: string | undefined,
  ) {}

  /** New lines since the last poll, oldest first (nothing on the first poll). */
  async poll(): Promise<TailLine[]> {
    const nowMs = this.rt.clock.nowMs();
    const sinceMs = nowMs - LOOKBACK_MS;
    const db = this.rt.store.db;
    let events = db
      .selectFrom('events')
      .select(['id', 'type', 'app', 'livemode', 'created'])
      .where('created', '>=', Math.floor(sinceMs / 1000))
      .orderBy('created', 'desc')
      .orderBy('id', 'desc')
      .limit(MAX_ROWS_PER_POLL);
    if (this.app !== undefined) events = events.where('app', '=', this.app);
    let attempts = db
      .selectFrom('webhook_attempts as a')
      .innerJoin('webhook_deliveries as d', 'd.id', 'a.delivery_id')
      .leftJoin('webhook_endpoints as ep', 'ep.id', 'd.endpoint_id')
      .select(['a.id', 'a.attempted_ms', 'a.status_code', 'a.error', 'a.duration_ms', 'd.event_id', 'd.endpoint_id', 'd.status', 'ep.url'])
      .where('a.attempted_ms', '>=', sinceMs)
      .orderBy('a.attempted_ms', 'desc')
      .orderBy('a.id', 'desc')
      .limit(MAX_ROWS_PER_POLL);
    if (this.app !== undefined) attempts = attempts.where('d.app', '=', this.app);

    const lines: (TailLine & { atMs: number })[] = [];
    for (const e of await events.execute()) {
      const atMs = Number(e.created) * 1000;
      if (this.remember(e.id, atMs)) {
        lines.push({ kind: 'event', id: e.id, type: e.type, app: e.app, livemode: e.livemode === 1, created: Number(e.created), atMs });
      }
    }
    for (const a of await attempts.execute()) {
      const atMs = Number(a.attempted_ms);
      if (this.remember(a.id, atMs)) {
        lines.push({
          kind: 'attempt', id: a.id, event: a.event_id, endpoint: a.endpoint_id, url: a.url === null ? null : redactedUrl(a.url),
          attempted_ms: atMs, status_code: a.status_code, error: a.error, duration_ms: a.duration_ms, delivery_status: a.status, atMs,
        });
      }
    }
    for (const [id, atMs] of this.seen) if (atMs < sinceMs - 1000) this.seen.delete(id);
    const first = !this.primed;
    this.primed = true;
    if (first) return [];
    return lines.sort((x, y) => x.atMs - y.atMs).map(({ atMs: _at, ...line }) => line as TailLine);
  }

  /** True the first time an id is seen. */
  private remember(id: string, atMs: number): boolean {
    if (this.seen.has(id)) return false;
    this.seen.set(id, atMs);
    return true;
  }
}

/** One line of `tixian events tail` output. */
export function formatTailLine(line: TailLine): string {
  if (line.kind === 'event') {
    return `${new Date(line.created * 1000).toISOString()}  event    ${line.id}  ${line.type}  app ${line.app}  ${line.livemode ? 'live' : 'test'}`;
  }
  const result = line.status_code !== null ? `${line.status_code}` : `no answer: ${line.error ?? 'unknown error'}`;
  return (
    `${new Date(line.attempted_ms).toISOString()}  delivery ${line.event}  -> ${line.url ?? line.endpoint}  ${result}  ` +
    `(${line.duration_ms} ms; delivery ${line.delivery_status})`
  );
}
