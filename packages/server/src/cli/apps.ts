import type { Command, Option } from 'commander';
import type { ConfigFlags } from '../config.ts';
import type { Runtime } from '../runtime.ts';
import { createApp } from '../services/accounts.ts';
import { requireApp, storageOptions, UsageError, withRuntime } from './shared.ts';
import { signatureUpdate } from './apps-signature.ts';
import { webhookUpdate, registerWebhookCommands } from './apps-webhooks.ts';
import { registerAppsKeysCommands } from './apps-keys.ts';

/**
 * One group of `tixian apps update` options (request signatures, webhook endpoints …): its flags,
 * how to check them, and how to apply them to an app. Every group checks its flags before any
 * group applies its own, so a refused flag leaves the app as it was (each group's service commits
 * on its own: without the checks, an earlier group's change stayed while the command failed).
 * `apply` returns lines to print, or nothing when none of its flags was given.
 */
export interface AppsUpdateGroup {
  options: Option[];
  check(rt: Runtime, opts: Record<string, unknown>): void;
  apply(rt: Runtime, appId: string, opts: Record<string, unknown>): Promise<string[]>;
}

const updateGroups: AppsUpdateGroup[] = [signatureUpdate, webhookUpdate];

export function registerAppsCommands(program: Command): void {
  const apps = program.command('apps').description('manage apps and their merchant accounts');

  storageOptions(
    apps
      .command('create')
      .description('create an app in a merchant account (the account is created on first use)')
      .requiredOption('--name <name>', 'app name')
      .option('--account <account>', 'merchant account name', 'default')
      .option('--json', 'print JSON'),
  ).action(async (opts: ConfigFlags & { name: string; account: string; json?: boolean }) => {
    await withRuntime(opts, async (rt) => {
      const app = await createApp(rt, { name: opts.name, account: opts.account });
      // Keys are shown once, when the account is made; an app joining an account prints none.
      const { secret_key_test, secret_key_live, ...rest } = app;
      const shown = secret_key_test !== null && secret_key_live !== null;
      if (opts.json) console.log(JSON.stringify(shown ? app : rest, null, 2));
      else {
        console.log(`app ${app.id} (${app.name}) in account ${app.account_name} (${app.account})`);
        if (shown) {
          console.log(`  test secret key: ${secret_key_test}`);
          console.log(`  live secret key: ${secret_key_live}`);
          console.log('  (shown once: tixian keeps only their hashes)');
        } else {
          console.log(`  uses the account's secret keys (shown when the account was created; \`tixian apps keys roll ${app.id} --mode test|live\` makes new ones)`);
        }
      }
    });
  });

  storageOptions(apps.command('list').description('list apps').option('--json', 'print JSON')).action(
    async (opts: ConfigFlags & { json?: boolean }) => {
      await withRuntime(opts, async (rt) => {
        const rows = await rt.store.db
          .selectFrom('apps')
          .innerJoin('accounts', 'accounts.id', 'apps.account_id')
          .select(['apps.id', 'apps.name', 'apps.created', 'accounts.id as account', 'accounts.name as account_name'])
          .orderBy('apps.created')
          .limit(10_000)
          .execute();
        if (opts.json) console.log(JSON.stringify(rows, null, 2));
        else for (const r of rows) console.log(`${r.id}  ${r.name}  (account ${r.account_name})`);
      });
    },
  );

  const update = storageOptions(apps.command('update').description("change an app's settings").argument('<app_id>', 'app id'));
  for (const group of updateGroups) for (const option of group.options) update.addOption(option);
  update.action(async (appId: string, opts: ConfigFlags & Record<string, unknown>) => {
    await withRuntime(opts, async (rt) => {
      await requireApp(rt, appId);
      for (const group of updateGroups) group.check(rt, opts);
      const lines: string[] = [];
      for (const group of updateGroups) lines.push(...(await group.apply(rt, appId, opts)));
      if (lines.length === 0) throw new UsageError('nothing to update: give at least one option (see --help)');
      for (const line of lines) console.log(line);
    });
  });

  registerWebhookCommands(apps);
  registerAppsKeysCommands(apps);
}
