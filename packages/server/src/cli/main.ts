import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { loadConfig, settings, type ConfigFlags } from '../config.ts';
import { describeDatabaseErrors, openStore } from '../store/db.ts';
import { verifyLedger } from '../ledger/verify.ts';
import { verifyLedgerIncremental } from '../ledger/verify_incremental.ts';
import { serve } from './serve.ts';
import { registerAppsCommands } from './apps.ts';
import { registerEventCommands } from './events.ts';
import { registerWithdrawalCommands } from './withdrawals.ts';
import { registerTriggerCommand } from './trigger.ts';
import { asUsageError, cliFlags, settingOption, storageOptions, withRuntime } from './shared.ts';
import { signingPublicKey } from './apps-keys.ts';
import { registerOperatorCommands } from './operators.ts';
import { registerPruneCommand } from './prune.ts';
import { registerChannelCommands } from './channels.ts';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('tixian')
    .description('Self-hosted, Ping++-compatible user balance and withdrawal service')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();

  const serveCommand = program
    .command('serve')
    .description('run the API server (and, unless --no-workers, the payout worker and webhook dispatcher)');
  // Every setting is a flag of serve, with its TIXIAN_* twin (README: Configuration).
  for (const setting of settings) if (setting.flag) serveCommand.addOption(settingOption(setting));
  serveCommand.action(async (_opts: ConfigFlags, cmd: Command) => {
    await serve(loadConfig(cliFlags(cmd)));
  });

  storageOptions(program.command('migrate').description('apply database migrations')).action(async (opts: ConfigFlags) => {
    // The store alone: the full runtime reads tables (the platform key) that migrating creates.
    const config = loadConfig(opts);
    const store = openStore(config);
    try {
      const applied = await describeDatabaseErrors(config, () => store.migrate());
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    } finally {
      await store.close();
    }
  });

  registerAppsCommands(program);
  registerEventCommands(program);
  registerWithdrawalCommands(program);
  registerTriggerCommand(program);
  registerOperatorCommands(program);
  registerChannelCommands(program);

  const ledger = program.command('ledger').description('the double-entry journal');
  storageOptions(
    ledger
      .command('verify')
      .description('recompute every balance from the journal; exit 1 on any drift')
      .option('--json', 'print JSON')
      .option('--incremental', 'check only entries since the last verified checkpoint (a full run, which sets the checkpoint, when there is none)'),
  ).action(async (opts: ConfigFlags & { json?: boolean; incremental?: boolean }) => {
    const report = await withRuntime(opts, (rt) => (opts.incremental ? verifyLedgerIncremental(rt.store, rt.clock.nowMs()) : verifyLedger(rt.store)));
    if (opts.json) console.log(JSON.stringify(report, null, 2));
    else {
      const since = 'mode' in report && report.mode === 'incremental' ? ' since the last checkpoint' : '';
      console.log(`${report.entries} entries, ${report.postings} postings, ${report.users} users${since}: ${report.ok ? 'no drift' : `${report.drift.length} problem(s)`}`);
      for (const d of report.drift) console.log(`  ${d.kind} ${d.subject}: ${d.detail}`);
    }
    process.exitCode = report.ok ? 0 : 1;
  });

  registerPruneCommand(program);

  const keys = program.command('keys').description('platform keys');
  storageOptions(
    keys
      .command('platform-public-key')
      .description('print the platform RSA public key (verifies webhooks and response signatures)')
      .option('--app <app_id>', "print the key that signs for this app: its account's own key, if it has one (tixian apps signing-key create)"),
  ).action(async (opts: ConfigFlags & { app?: string }) => {
    process.stdout.write(await withRuntime(opts, (rt) => signingPublicKey(rt, opts.app)));
  });

  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const usage = asUsageError(err);
    if (!usage) throw err;
    console.error(`tixian: ${usage.message}`);
    process.exitCode = 2;
  }
}

/** The version in packages/server/package.json (the CLI runs from source, so it is read, not bundled). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}
