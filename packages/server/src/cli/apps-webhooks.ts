import { Option, type Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import type { Runtime } from '../runtime.ts';
import { DEFAULT_ENDPOINT_EVENTS } from '../webhooks/outbox.ts';
import { checkEndpointInput, enableEndpoint, listEndpoints, removeEndpoint, upsertEndpoint, type WebhookEndpoint } from '../webhooks/endpoints.ts';
import type { AppsUpdateGroup } from './apps.ts';
import { requireApp, storageOptions, UsageError, withRuntime } from './shared.ts';

/**
 * `tixian apps update APP_ID --webhook-url URL [--events a,b] [--mode test|live] [--standard-webhooks]`
 * and `tixian apps webhooks list|remove`. The rules live in webhooks/endpoints.ts (the console uses
 * them too); this file only maps flags to calls and results to lines.
 */

interface WebhookFlags {
  webhookUrl?: string;
  events?: string;
  mode?: string;
  standardWebhooks?: boolean;
}

function describe(ep: WebhookEndpoint): string {
  const mode = ep.livemode ? 'live' : 'test';
  return `${ep.id}  ${mode}  ${ep.url}  events: ${ep.events.join(',')}${ep.standard_webhooks ? '  standard-webhooks' : ''}${health(ep)}`;
}

/** Nothing for a healthy endpoint; the breaker or the automatic disable otherwise. */
function health(ep: WebhookEndpoint): string {
  if (ep.status === 'disabled') return `  DISABLED since ${isoTime(ep.disabled_at!)}: ${ep.disabled_reason ?? ''} (tixian apps webhooks enable ${ep.app} ${ep.id})`;
  if (ep.consecutive_failures > 0) return `  failing: ${ep.consecutive_failures} tries in a row since ${isoTime(ep.failing_since!)}`;
  return '';
}

const isoTime = (s: number) => new Date(s * 1000).toISOString();

const endpointInput = (opts: WebhookFlags, url: string) => ({
  livemode: (opts.mode ?? 'test') === 'live',
  url,
  events: opts.events === undefined ? undefined : opts.events.split(','),
});

export const webhookUpdate: AppsUpdateGroup = {
  options: [
    new Option('--webhook-url <url>', 'add a webhook endpoint to the app (or change the one with this URL)'),
    new Option('--events <types>', `event types for --webhook-url, comma-separated (default: ${DEFAULT_ENDPOINT_EVENTS.join(',')})`),
    // No commander default: an absent --mode must stay absent so other groups can tell.
    new Option('--mode <mode>', 'mode of the webhook endpoint (default: test)').choices(['test', 'live']),
    new Option('--standard-webhooks', 'also send Standard Webhooks headers (prints the whsec_ secret)'),
    new Option('--no-standard-webhooks', 'stop sending Standard Webhooks headers'),
  ],
  check(rt: Runtime, raw: Record<string, unknown>): void {
    const opts = raw as WebhookFlags;
    if (opts.webhookUrl === undefined) {
      if (opts.events !== undefined || opts.standardWebhooks !== undefined) {
        throw new UsageError('--events and --[no-]standard-webhooks need --webhook-url');
      }
      return;
    }
    checkEndpointInput(rt, endpointInput(opts, opts.webhookUrl));
  },
  async apply(rt: Runtime, appId: string, raw: Record<string, unknown>): Promise<string[]> {
    const opts = raw as WebhookFlags;
    if (opts.webhookUrl === undefined) return [];
    const { endpoint, created } = await upsertEndpoint(rt, {
      app: appId,
      ...endpointInput(opts, opts.webhookUrl),
      standardWebhooks: opts.standardWebhooks,
    });
    const lines = [`webhook endpoint ${created ? 'added' : 'updated'}: ${describe(endpoint)}`];
    if (endpoint.secret) lines.push(`  standard webhooks secret: ${endpoint.secret}`);
    return lines;
  },
};

export function registerWebhookCommands(apps: Command): void {
  const webhooks = apps.command('webhooks').description("an app's webhook endpoints (add them with apps update --webhook-url)");

  storageOptions(
    webhooks
      .command('list')
      .description('list the webhook endpoints of an app, both modes')
      .argument('<app_id>', 'app id')
      .option('--json', 'print JSON (includes Standard Webhooks secrets)'),
  ).action(async (appId: string, opts: ConfigFlags & { json?: boolean }) => {
    await withRuntime(opts, async (rt) => {
      await requireApp(rt, appId);
      const endpoints = await listEndpoints(rt, appId, { revealSecrets: opts.json === true });
      if (opts.json) console.log(JSON.stringify(endpoints, null, 2));
      else if (endpoints.length === 0) console.log(`no webhook endpoints for ${appId}`);
      else for (const ep of endpoints) console.log(describe(ep));
    });
  });

  storageOptions(
    webhooks
      .command('remove')
      .description('remove a webhook endpoint; deliveries still waiting for it are canceled')
      .argument('<app_id>', 'app id')
      .argument('<endpoint_id>', 'endpoint id (we_…)'),
  ).action(async (appId: string, endpointId: string, opts: ConfigFlags) => {
    await withRuntime(opts, async (rt) => {
      // removeEndpoint refuses an unknown app itself.
      const { canceledDeliveries } = await removeEndpoint(rt, appId, endpointId);
      console.log(`removed webhook endpoint ${endpointId}; ${canceledDeliveries} waiting deliveries canceled`);
    });
  });

  storageOptions(
    webhooks
      .command('enable')
      .description('turn an endpoint that was disabled after a long run of failures back on')
      .argument('<app_id>', 'app id')
      .argument('<endpoint_id>', 'endpoint id (we_…)'),
  ).action(async (appId: string, endpointId: string, opts: ConfigFlags) => {
    await withRuntime(opts, async (rt) => {
      const { endpoint, wasDisabled } = await enableEndpoint(rt, appId, endpointId);
      if (!wasDisabled) console.log(`webhook endpoint ${endpointId} was not disabled; its failure count is reset`);
      else {
        console.log(`webhook endpoint enabled: ${describe(endpoint)}`);
        console.log(`  deliveries that failed meanwhile: tixian events recover --endpoint ${endpointId} --since UNIX_SECONDS`);
      }
    });
  });
}
