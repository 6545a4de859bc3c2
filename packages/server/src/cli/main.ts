import { Command, Option } from 'commander';
import { loadConfig, type ConfigFlags } from '../config.ts';
import { openRuntime } from '../runtime.ts';
import { createApp } from '../services/accounts.ts';
import { verifyLedger } from '../ledger/verify.ts';
import { serve } from './serve.ts';
import pino from 'pino';

/** Storage flags every command shares, with their TIXIAN_* environment twins. */
function storageOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data-dir <dir>', 'data directory (SQLite file, master key)').env('TIXIAN_DATA_DIR'))
    .addOption(new Option('--database-url <url>', 'postgres://… to use PostgreSQL instead of SQLite').env('TIXIAN_DATABASE_URL'));
}

const quietLog = () => pino({ level: 'warn' });

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
    const rt = await openRuntime(loadConfig(opts), { log: quietLog(), migrate: false });
    try {
      const applied = await rt.store.migrate();
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    } finally {
      await rt.close();
    }
  });

  const apps = program.command('apps').description('manage apps and their merchant accounts');
  storageOptions(
    apps
      .command('create')
      .description('create an app in a merchant account (the account is created on first use)')
      .requiredOption('--name <name>', 'app name')
      .option('--account <account>', 'merchant account name', 'default')
      .option('--json', 'print JSON'),
  ).action(async (opts: ConfigFlags & { name: string; account: string; json?: boolean }) => {
    const rt = await openRuntime(loadConfig(opts), { log: quietLog() });
    try {
      const app = await createApp(rt, { name: opts.name, account: opts.account });
      if (opts.json) console.log(JSON.stringify(app, null, 2));
      else {
        console.log(`app ${app.id} (${app.name}) in account ${app.account_name} (${app.account})`);
        console.log(`  test secret key: ${app.secret_key_test}`);
        console.log(`  live secret key: ${app.secret_key_live}`);
      }
    } finally {
      await rt.close();
    }
  });

  const ledger = program.command('ledger').description('the double-entry journal');
  storageOptions(
    ledger.command('verify').description('recompute every balance from the journal; exit 1 on any drift').option('--json', 'print JSON'),
  ).action(async (opts: ConfigFlags & { json?: boolean }) => {
    const rt = await openRuntime(loadConfig(opts), { log: quietLog() });
    try {
      const report = await verifyLedger(rt.store.db);
      if (opts.json) console.log(JSON.stringify(report, null, 2));
      else {
        console.log(`${report.entries} entries, ${report.postings} postings, ${report.users} users: ${report.ok ? 'no drift' : `${report.drift.length} problem(s)`}`);
        for (const d of report.drift) console.log(`  ${d.kind} ${d.subject}: ${d.detail}`);
      }
      process.exitCode = report.ok ? 0 : 1;
    } finally {
      await rt.close();
    }
  });

  const keys = program.command('keys').description('platform keys');
  storageOptions(
    keys.command('platform-public-key').description('print the platform RSA public key (verifies webhooks and response signatures)'),
  ).action(async (opts: ConfigFlags) => {
    const rt = await openRuntime(loadConfig(opts), { log: quietLog() });
    try {
      process.stdout.write(rt.platformKey.publicKeyPem);
    } finally {
      await rt.close();
    }
  });

  await program.parseAsync(argv);
}
