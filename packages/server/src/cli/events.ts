import type { Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import { recoverEndpoint, resendEvent } from '../webhooks/events.ts';
import { storageOptions, UsageError, withRuntime } from './shared.ts';

/**
 * `tixian events resend EVT_ID` and `tixian events recover --endpoint WE_ID --since UNIX_SECONDS`.
 * They only re-queue deliveries in the database; a running server's dispatcher sends them (a
 * dispatcher in another process finds them at its next poll, within a fraction of a second).
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
}
