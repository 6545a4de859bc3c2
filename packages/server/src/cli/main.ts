import { Command, CommanderError, Option } from 'commander';
import { loadConfig, type ConfigFlags } from '../config.ts';
import { Store } from '../store/db.ts';
import { verifyLedger } from '../ledger/verify.ts';
import { verifyLedgerIncremental } from '../ledger/verify_incremental.ts';
import { serve } from './serve.ts';
import { registerAppsCommands } from './apps.ts';
import { registerEventCommands } from './events.ts';
import { asUsageError, storageOptions, withRuntime } from './shared.ts';
import { registerPruneCommand } from './prune.ts';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('tixian')
    .description('Self-hosted, Ping++-compatible user balance and withdrawal service')
    .showHelpAfterError();

  storageOptions(
    program
      .command('serve')
      .description('run the API server (and, unless --no-workers, the payout worker and webhook dispatcher)')
      .addOption(new Option('--port <port>', 'port to listen on').env('TIXIAN_PORT'))
      .addOption(new Option('--host <host>', 'address to listen on').env('TIXIAN_HOST'))
      .addOption(new Option('--sandbox-delay-ms <ms>', 'delay before a test-mode payout gets its outcome').env('TIXIAN_SANDBOX_DELAY_MS'))
      .addOption(new Option('--log-level <level>', 'trace|debug|info|warn|error').env('TIXIAN_LOG_LEVEL'))
      .option('--no-workers', 'serve the API only; run workers in other processes'),
  ).action(async (opts: ConfigFlags) => {
    await serve(loadConfig(opts));
  });

  storageOptions(program.command('migrate').description('apply database migrations')).action(async (opts: ConfigFlags) => {
    // The store alone: the full runtime reads tables (the platform key) that migrating creates.
    const config = loadConfig(opts);
    const store = Store.open({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    try {
      const applied = await store.migrate();
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    } finally {
      await store.close();
    }
  });

  registerAppsCommands(program);
  registerEventCommands(program);

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
    keys.command('platform-public-key').description('print the platform RSA public key (verifies webhooks and response signatures)'),
  ).action(async (opts: ConfigFlags) => {
    process.stdout.write(await withRuntime(opts, async (rt) => rt.platformKey.publicKeyPem));
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
