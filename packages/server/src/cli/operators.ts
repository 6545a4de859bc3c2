import type { Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import { createOperator, OperatorError } from '../admin/operators.ts';
import { storageOptions, UsageError, withRuntime } from './shared.ts';

/** `tixian operators …`: the people who log in to the console (/dashboard). */
export function registerOperatorCommands(program: Command): void {
  const operators = program.command('operators').description('console operators (who log in to /dashboard)');
  storageOptions(
    operators
      .command('create')
      .description('create an operator of one merchant account (--account) or of the platform (--platform, sees all accounts)')
      .requiredOption('--email <email>', 'login e-mail')
      .option('--password <password>', 'password, 10-256 characters (or set TIXIAN_OPERATOR_PASSWORD, which stays out of the process list)')
      .option('--account <account>', 'merchant account name the operator belongs to')
      .option('--platform', 'a platform operator, who sees every account'),
  ).action(async (opts: ConfigFlags & { email: string; password?: string; account?: string; platform?: boolean }) => {
    const password = opts.password ?? process.env.TIXIAN_OPERATOR_PASSWORD;
    if (!password) throw new UsageError('give --password or set TIXIAN_OPERATOR_PASSWORD');
    await withRuntime(opts, async (rt) => {
      try {
        const op = await createOperator(rt, { email: opts.email, password, account: opts.account, platform: opts.platform });
        console.log(`operator ${op.email} (${op.id}) ${op.account_id ? `of account ${opts.account}` : 'of the platform (sees every account)'}`);
      } catch (err) {
        if (err instanceof OperatorError) throw new UsageError(err.message);
        throw err;
      }
    });
  });
  storageOptions(operators.command('list').description('list operators').option('--json', 'print JSON')).action(async (opts: ConfigFlags & { json?: boolean }) => {
    await withRuntime(opts, async (rt) => {
      const rows = await rt.store.db.selectFrom('operators').leftJoin('accounts', 'accounts.id', 'operators.account_id')
        .select(['operators.id', 'operators.email', 'accounts.name as account', 'operators.disabled', 'operators.created'])
        .orderBy('operators.created').limit(10_000).execute();
      if (opts.json) console.log(JSON.stringify(rows, null, 2));
      else for (const r of rows) console.log(`${r.id}  ${r.email}  ${r.account ?? '(platform)'}${r.disabled ? '  disabled' : ''}`);
    });
  });
}
