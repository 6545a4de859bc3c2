import type { Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import { listEventDeliveries, recoverEndpoint, resendEvent, type WebhookDeliveryView } from '../webhooks/events.ts';
import { EventTail, formatTailLine } from '../webhooks/tail.ts';
import { requireApp, storageOptions, UsageError, withRuntime } from './shared.ts';

/** `events tail` polls at this interval by default; the flag is bounded so a typo cannot hammer the database. */
const TAIL_INTERVAL_MS = { default: 500, min: 100, max: 10_000 };

/**
 * `tixian events resend EVT_ID` and `tixian events recover --endpoint WE_ID --since UNIX_SECONDS`.
 * They only re-queue deliveries in the database; a running server's dispatcher sends them (a
 * dispatcher in another process finds them at its next poll, within a fraction of a second).
 * `tixian events deliveries EVT_ID` shows every try; `tixian events tail` watches as they happen.
 */
export function registerEventCommands(program: Command): void {
  const events = program.command('events').description('events and their webhook deliveries');

  storageOptions(
    events
      .command('resend')
      .description('send an event again to every endpoint it was meant for (or, if it had none, to the endpoints subscribed now)')
      .argument('<event_id>', 'event id (evt_…)'),
  ).action(async (eventId: string, opts: ConfigFlags) => {
    await withRuntime(opts, async (rt) => {
      const { requeued } = await resendEvent(rt, null, eventId);
      console.log(`event ${eventId}: ${requeued} deliveries queued`);
    });
  });

  storageOptions(
    events
      .command('recover')
      .description('send again every delivery to an endpoint that failed for good, for events since a time')
      .requiredOption('--endpoint <endpoint_id>', 'webhook endpoint id (we_…)')
      .requiredOption('--since <unix_seconds>', 'only events created at or after this time'),
  ).action(async (opts: ConfigFlags & { endpoint: string; since: string }) => {
    const since = Number(opts.since);
    if (!Number.isInteger(since) || since < 0 || since > 2 ** 31 - 1) throw new UsageError(`--since must be Unix seconds, got ${opts.since}`);
    await withRuntime(opts, async (rt) => {
      const { requeued, complete } = await recoverEndpoint(rt, opts.endpoint, since);
      console.log(`endpoint ${opts.endpoint}: ${requeued} failed deliveries queued again${complete ? '' : ' (stopped at the batch bound: run it again for the rest)'}`);
    });
  });

  storageOptions(
    events
      .command('deliveries')
      .description("every webhook delivery of an event and each try: status code, the answer's first KiB, time")
      .argument('<event_id>', 'event id (evt_…)')
      .option('--json', 'print JSON'),
  ).action(async (eventId: string, opts: ConfigFlags & { json?: boolean }) => {
    await withRuntime(opts, async (rt) => {
      const deliveries = await listEventDeliveries(rt, null, eventId);
      if (opts.json) console.log(JSON.stringify(deliveries, null, 2));
      else if (deliveries.length === 0) console.log(`event ${eventId}: no webhook deliveries (no endpoint was subscribed)`);
      else for (const d of deliveries) for (const line of describeDelivery(d)) console.log(line);
    });
  });

  storageOptions(
    events
      .command('tail')
      .description('print events and webhook delivery results as they happen (Ctrl-C to stop)')
      .option('--app <app_id>', 'only this app')
      .option('--interval-ms <ms>', `poll interval (${TAIL_INTERVAL_MS.min}..${TAIL_INTERVAL_MS.max})`, String(TAIL_INTERVAL_MS.default))
      .option('--json', 'print one JSON object per line'),
  ).action(async (opts: ConfigFlags & { app?: string; intervalMs: string; json?: boolean }) => {
    const intervalMs = Number(opts.intervalMs);
    if (!Number.isInteger(intervalMs) || intervalMs < TAIL_INTERVAL_MS.min || intervalMs > TAIL_INTERVAL_MS.max) {
      throw new UsageError(`--interval-ms must be an integer in ${TAIL_INTERVAL_MS.min}..${TAIL_INTERVAL_MS.max}, got ${opts.intervalMs}`);
    }
    await withRuntime(opts, async (rt) => {
      if (opts.app !== undefined) await requireApp(rt, opts.app);
      await tail(new EventTail(rt, opts.app), intervalMs, opts.json === true);
    });
  });
}

function describeDelivery(d: WebhookDeliveryView): string[] {
  const next = d.next_attempt === null ? '' : `, next try ${new Date(d.next_attempt * 1000).toISOString()}`;
  const lines = [`${d.id}  endpoint ${d.endpoint}  ${d.url ?? '(endpoint gone)'}  ${d.status} after ${d.attempt_count} tries${next}`];
  for (const a of d.attempts) {
    const result = a.status_code !== null ? `${a.status_code}` : `no answer: ${a.error ?? 'unknown error'}`;
    const body = a.response_body ? `  ${JSON.stringify(a.response_body.slice(0, 200))}` : '';
    lines.push(`  ${new Date(a.attempted_ms).toISOString()}  ${result}  ${a.duration_ms} ms${body}`);
  }
  return lines;
}

/** Polls until SIGINT or SIGTERM; a poll that fails (database restarting) is reported and retried. */
async function tail(source: EventTail, intervalMs: number, json: boolean): Promise<void> {
  let stopped = false;
  let wake: (() => void) | null = null;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await source.poll();
    console.error('tixian: watching events and webhook deliveries (Ctrl-C to stop)');
    while (!stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stopped) break;
      try {
        for (const line of await source.poll()) console.log(json ? JSON.stringify(line) : formatTailLine(line));
      } catch (err) {
        console.error(`tixian: poll failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
