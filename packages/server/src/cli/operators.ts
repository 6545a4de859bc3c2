import type { Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import { createOperator, OperatorError, setOperatorDisabled, setOperatorPassword, type OperatorChange } from '../admin/operators.ts';
import type { Runtime } from '../runtime.ts';
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
    const password = passwordOf(opts);
    await withRuntime(opts, async (rt) => {
      const op = await refusalsAsUsage(() => createOperator(rt, { email: opts.email, password, account: opts.account, platform: opts.platform }));
      console.log(`operator ${op.email} (${op.id}) ${op.account_id ? `of account ${opts.account}` : 'of the platform (sees every account)'}`);
    });
  });

  // Cutting an operator off: each change and its audit line (actor `cli`) commit together.
  storageOptions(
    operators
      .command('disable')
      .description('disable an operator: they cannot log in, and every session they hold ends now')
      .requiredOption('--email <email>', 'login e-mail'),
  ).action(async (opts: ConfigFlags & { email: string }) => {
    await withRuntime(opts, async (rt) => {
      const change = await refusalsAsUsage(() => setOperatorDisabled(rt, opts.email, true));
      console.log(`operator ${change.operator.email} (${change.operator.id}) ${change.wasDisabled ? 'was already disabled' : 'disabled'}; ${sessionsText(change)}`);
    });
  });
  storageOptions(
    operators
      .command('enable')
      .description('enable a disabled operator again: they can log in')
      .requiredOption('--email <email>', 'login e-mail'),
  ).action(async (opts: ConfigFlags & { email: string }) => {
    await withRuntime(opts, async (rt) => {
      const change = await refusalsAsUsage(() => setOperatorDisabled(rt, opts.email, false));
      console.log(`operator ${change.operator.email} (${change.operator.id}) ${change.wasDisabled ? 'enabled' : 'was already enabled'}`);
    });
  });
  storageOptions(
    operators
      .command('set-password')
      .description("set an operator's password; every session they hold ends now")
      .requiredOption('--email <email>', 'login e-mail')
      .option('--password <password>', 'the new password, 10-256 characters (or set TIXIAN_OPERATOR_PASSWORD, which stays out of the process list)'),
  ).action(async (opts: ConfigFlags & { email: string; password?: string }) => {
    const password = passwordOf(opts);
    await withRuntime(opts, async (rt) => {
      const change = await refusalsAsUsage(() => setOperatorPassword(rt, opts.email, password));
      console.log(`operator ${change.operator.email} (${change.operator.id}): password changed; ${sessionsText(change)}${change.wasDisabled ? ' (still disabled: tixian operators enable lets them log in)' : ''}`);
    });
  });

  storageOptions(operators.command('list').description('list operators, with the sessions each holds').option('--json', 'print JSON')).action(async (opts: ConfigFlags & { json?: boolean }) => {
    await withRuntime(opts, async (rt) => {
      const rows = await listOperators(rt);
      if (opts.json) console.log(JSON.stringify(rows, null, 2));
      else for (const r of rows) console.log(`${r.id}  ${r.email}  ${r.account ?? '(platform)'}${r.disabled ? '  disabled' : ''}  ${r.sessions} session${r.sessions === 1 ? '' : 's'}`);
    });
  });
}

/** Every operator (at most 10,000) with the sessions they hold that have not expired. */
async function listOperators(rt: Runtime) {
  const nowMs = rt.clock.nowMs();
  const rows = await rt.store.db
    .selectFrom('operators')
    .leftJoin('accounts', 'accounts.id', 'operators.account_id')
    .select((eb) => [
      'operators.id', 'operators.email', 'accounts.name as account', 'operators.disabled', 'operators.created',
      eb.selectFrom('operator_sessions').whereRef('operator_sessions.operator_id', '=', 'operators.id').where('operator_sessions.expires_ms', '>', nowMs)
        .select((s) => s.fn.countAll<number>().as('n')).as('sessions'),
    ])
    .orderBy('operators.created').limit(10_000).execute();
  // Numbers on both engines (PostgreSQL answers bigint and count as text).
  return rows.map((r) => ({ ...r, created: Number(r.created), sessions: Number(r.sessions ?? 0) }));
}

/** The password from --password or TIXIAN_OPERATOR_PASSWORD (checked for length by the change itself). */
function passwordOf(opts: { password?: string }): string {
  const password = opts.password ?? process.env.TIXIAN_OPERATOR_PASSWORD;
  if (!password) throw new UsageError('give --password or set TIXIAN_OPERATOR_PASSWORD');
  return password;
}

/** An operator change the input refused (an unknown e-mail, a short password) is a usage error: exit 2. */
async function refusalsAsUsage<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof OperatorError) throw new UsageError(err.message);
    throw err;
  }
}

const sessionsText = (c: OperatorChange) => `${c.sessionsEnded} session${c.sessionsEnded === 1 ? '' : 's'} ended`;
