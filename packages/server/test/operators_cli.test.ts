import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';
import { runCli } from './helpers/cli.ts';
import { createOperator } from '../src/admin/operators.ts';
import type * as passwords from '../src/admin/passwords.ts';

const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'a brand new passphrase';

/** Holds one login's password check open, so a test can change the operator while it runs. */
const gate = vi.hoisted(() => ({ hold: null as null | { reached: () => void; released: Promise<void> } }));
vi.mock('../src/admin/passwords.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof passwords>();
  return {
    ...actual,
    verifyPassword: async (password: string, stored: string) => {
      const ok = await actual.verifyPassword(password, stored);
      const hold = gate.hold;
      gate.hold = null;
      if (hold) {
        hold.reached();
        await hold.released;
      }
      return ok;
    },
  };
});

/**
 * `tixian operators disable|enable|set-password`: cutting an operator off from the console without
 * SQL. A change takes effect on the sessions already open (they are deleted, not only refused),
 * is audited as done by `cli` (never with the password), and an unknown e-mail changes nothing.
 */
describeEngines('operators CLI', (engine) => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start(engine);
    await createOperator(h.rt, { email: 'ops@example.com', password: PASSWORD, account: 'default' });
    await createOperator(h.rt, { email: 'reset@example.com', password: PASSWORD, account: 'default' });
    await createOperator(h.rt, { email: 'bystander@example.com', password: PASSWORD, platform: true });
    await createOperator(h.rt, { email: 'race@example.com', password: PASSWORD, account: 'default' });
  });
  afterAll(async () => h?.close());
  afterEach(() => vi.unstubAllEnvs());

  const login = (email: string, password: string) => h.request('POST', '/admin/session', { key: null, body: { email, password } });
  async function session(email: string, password = PASSWORD) {
    const res = await login(email, password);
    expect(res.status, res.body).toBe(200);
    return { cookie: String(res.headers['set-cookie']).split(';')[0]!, csrf: res.json.csrf_token as string };
  }
  const call = (s: { cookie: string; csrf: string }, method: 'GET' | 'POST' | 'DELETE', url: string) =>
    h.request(method, url, { key: null, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
  const operatorRow = (email: string) => h.rt.store.db.selectFrom('operators').selectAll().where('email', '=', email).executeTakeFirstOrThrow();
  const sessionCount = async (email: string) => {
    const op = await operatorRow(email);
    return (await h.rt.store.db.selectFrom('operator_sessions').select('token_hash').where('operator_id', '=', op.id).execute()).length;
  };
  const auditOf = (action: string) => h.rt.store.db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('id').execute();

  it('disable logs the operator out of every open session at once and refuses new logins; enable lets them in again', async () => {
    const browser = await session('ops@example.com');
    const laptop = await session('ops@example.com');
    const bystander = await session('bystander@example.com');
    expect((await call(browser, 'GET', '/admin/session')).status).toBe(200);
    expect(await sessionCount('ops@example.com')).toBe(2);

    // The e-mail is matched as at login: case and surrounding spaces do not matter.
    const disabled = await runCli(h, 'operators', 'disable', '--email', ' OPS@Example.com ');
    expect(disabled.err).toEqual([]);
    expect(disabled.code).toBe(0);
    expect(disabled.out.join('\n')).toMatch(/^operator ops@example\.com \(op_\w+\) disabled; 2 sessions ended$/);

    // Both sessions stop working on their very next request, reads and changes alike…
    for (const s of [browser, laptop]) {
      const me = await call(s, 'GET', '/admin/session');
      expect(me.status).toBe(401);
      expect(me.json.error.code).toBe('session_required');
      expect((await call(s, 'DELETE', '/admin/session')).status).toBe(401);
    }
    // …because they are gone, not only refused; another operator's session is untouched.
    expect(await sessionCount('ops@example.com')).toBe(0);
    expect((await call(bystander, 'GET', '/admin/session')).status).toBe(200);
    expect((await operatorRow('ops@example.com')).disabled).toBe(1);
    // The right password no longer opens a session.
    const refused = await login('ops@example.com', PASSWORD);
    expect(refused.status).toBe(401);
    expect(refused.json.error.code).toBe('login_failed');
    expect(await sessionCount('ops@example.com')).toBe(0);

    const listed = await runCli(h, 'operators', 'list');
    expect(listed.out.find((l) => l.includes('ops@example.com'))).toMatch(/ops@example\.com {2}default {2}disabled {2}0 sessions$/);
    expect(listed.out.find((l) => l.includes('bystander@example.com'))).toMatch(/\(platform\) {2}1 session$/);
    const json = JSON.parse((await runCli(h, 'operators', 'list', '--json')).out.join('\n')) as { email: string; sessions: number; disabled: number }[];
    expect(json.find((o) => o.email === 'ops@example.com')).toMatchObject({ sessions: 0, disabled: 1 });

    // Disabling again is harmless and says so.
    const again = await runCli(h, 'operators', 'disable', '--email', 'ops@example.com');
    expect(again.code).toBe(0);
    expect(again.out.join('\n')).toMatch(/was already disabled; 0 sessions ended$/);

    const enabled = await runCli(h, 'operators', 'enable', '--email', 'ops@example.com');
    expect(enabled.err).toEqual([]);
    expect(enabled.code).toBe(0);
    expect(enabled.out.join('\n')).toMatch(/^operator ops@example\.com \(op_\w+\) enabled$/);
    expect((await operatorRow('ops@example.com')).disabled).toBe(0);
    // The old sessions stay dead; a new login works.
    expect((await call(browser, 'GET', '/admin/session')).status).toBe(401);
    const fresh = await session('ops@example.com');
    expect((await call(fresh, 'GET', '/admin/session')).json.operator.email).toBe('ops@example.com');

    // Audited as done with the CLI: no operator id, `cli` as the actor, the target operator and their account.
    const op = await operatorRow('ops@example.com');
    const disables = await auditOf('operator.disable');
    expect(disables).toHaveLength(2);
    expect(disables[0]).toMatchObject({ operator_id: null, operator_email: 'cli', target: op.id, account_id: op.account_id, ip: null });
    expect(JSON.parse(disables[0]!.detail)).toEqual({ email: 'ops@example.com', was_disabled: false, sessions_ended: 2 });
    expect(JSON.parse(disables[1]!.detail)).toEqual({ email: 'ops@example.com', was_disabled: true, sessions_ended: 0 });
    const enables = await auditOf('operator.enable');
    expect(enables).toHaveLength(1);
    expect(enables[0]).toMatchObject({ operator_id: null, operator_email: 'cli', target: op.id, account_id: op.account_id });
    expect(JSON.parse(enables[0]!.detail)).toEqual({ email: 'ops@example.com', was_disabled: true });
    // The account's own operators see the lines on the console's audit page, actor `cli`.
    const page = await call(fresh, 'GET', '/admin/audit?limit=100');
    expect(page.json.data.filter((l: { action: string }) => l.action.startsWith('operator.') && l.action !== 'operator.create').map((l: { operator: string; action: string }) => `${l.operator} ${l.action}`))
      .toEqual(['cli operator.enable', 'cli operator.disable', 'cli operator.disable']);
    // Its creation is audited the same way (never with the password).
    const created = (await auditOf('operator.create')).find((l) => l.target === op.id);
    expect(created).toMatchObject({ operator_id: null, operator_email: 'cli', account_id: op.account_id, ip: null });
    expect(JSON.parse(created!.detail)).toEqual({ email: 'ops@example.com', platform: false });
  });

  it('set-password logs out every session, the old password stops working and the new one works; the password is never written out', async () => {
    const attacker = await session('reset@example.com');
    const owner = await session('reset@example.com');
    const before = await operatorRow('reset@example.com');
    vi.stubEnv('TIXIAN_OPERATOR_PASSWORD', NEW_PASSWORD);

    const reset = await runCli(h, 'operators', 'set-password', '--email', 'reset@example.com');
    expect(reset.err).toEqual([]);
    expect(reset.code).toBe(0);
    expect(reset.out.join('\n')).toMatch(/^operator reset@example\.com \(op_\w+\): password changed; 2 sessions ended$/);

    for (const s of [attacker, owner]) expect((await call(s, 'GET', '/admin/session')).status).toBe(401);
    expect(await sessionCount('reset@example.com')).toBe(0);
    const old = await login('reset@example.com', PASSWORD);
    expect(old.status).toBe(401);
    expect(old.json.error.code).toBe('login_failed');
    const renewed = await session('reset@example.com', NEW_PASSWORD);
    expect((await call(renewed, 'GET', '/admin/session')).status).toBe(200);

    // Hashed as at creation (scrypt, fresh salt); the operator stays enabled.
    const after = await operatorRow('reset@example.com');
    expect(after.password_hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(after.password_hash).not.toBe(before.password_hash);
    expect(after.disabled).toBe(0);

    // --password works too (what the flag's help and the README say), and on a disabled operator it says they stay disabled.
    expect((await runCli(h, 'operators', 'disable', '--email', 'reset@example.com')).code).toBe(0);
    const flagged = await runCli(h, 'operators', 'set-password', '--email', 'reset@example.com', '--password', PASSWORD + '!');
    expect(flagged.code).toBe(0);
    expect(flagged.out.join('\n')).toMatch(/password changed; 0 sessions ended \(still disabled/);
    expect((await login('reset@example.com', PASSWORD + '!')).status).toBe(401);
    expect((await runCli(h, 'operators', 'enable', '--email', 'reset@example.com')).code).toBe(0);
    await session('reset@example.com', PASSWORD + '!');

    const lines = await auditOf('operator.set_password');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ operator_id: null, operator_email: 'cli', target: after.id, account_id: after.account_id });
    expect(JSON.parse(lines[0]!.detail)).toEqual({ email: 'reset@example.com', sessions_ended: 2 });
    // No password, old or new, and no hash in any audit line or in what the commands printed.
    const everything = JSON.stringify([await h.rt.store.db.selectFrom('audit_log').selectAll().execute(), reset, flagged]);
    for (const secret of [PASSWORD, NEW_PASSWORD, after.password_hash, before.password_hash, 'scrypt$']) expect(everything).not.toContain(secret);
  });

  it('gives no session to a login whose password check was under way when the password was reset or the operator disabled', async () => {
    /** Starts a login, runs `change` while its (right) password is being checked, then lets it finish. */
    async function loginAround(change: string[]) {
      let reached!: () => void;
      let release!: () => void;
      const inCheck = new Promise<void>((r) => (reached = r));
      gate.hold = { reached, released: new Promise<void>((r) => (release = r)) };
      const pending = login('race@example.com', PASSWORD);
      await inCheck;
      const changed = await runCli(h, 'operators', ...change, '--email', 'race@example.com');
      expect(changed.code, changed.err.join('\n')).toBe(0);
      release();
      return pending;
    }

    const afterReset = await loginAround(['set-password', '--password', NEW_PASSWORD]);
    expect(afterReset.status).toBe(401);
    expect(afterReset.json.error.code).toBe('login_failed');
    expect(await sessionCount('race@example.com')).toBe(0);

    const afterDisable = await loginAround(['disable']);
    expect(afterDisable.status).toBe(401);
    // Enabling again must not revive a session made while the operator was disabled.
    expect((await runCli(h, 'operators', 'enable', '--email', 'race@example.com')).code).toBe(0);
    expect(await sessionCount('race@example.com')).toBe(0);
    await session('race@example.com', NEW_PASSWORD);
    expect(await sessionCount('race@example.com')).toBe(1);
  });

  it('refuses an unknown e-mail, a bad password or none with exit code 2 and one line, and changes nothing', async () => {
    const kept = await session('bystander@example.com');
    const state = async () => ({
      operators: await h.rt.store.db.selectFrom('operators').selectAll().orderBy('id').execute(),
      sessions: await h.rt.store.db.selectFrom('operator_sessions').selectAll().orderBy('token_hash').execute(),
      audit: await h.rt.store.db.selectFrom('audit_log').selectAll().orderBy('id').execute(),
    });
    const before = await state();
    vi.stubEnv('TIXIAN_OPERATOR_PASSWORD', '');

    const refusals: [string[], RegExp][] = [
      [['disable', '--email', 'nobody@example.com'], /^tixian: no operator with email nobody@example\.com \(tixian operators list shows them\)$/],
      [['enable', '--email', 'nobody@example.com'], /^tixian: no operator with email nobody@example\.com/],
      [['set-password', '--email', 'nobody@example.com', '--password', NEW_PASSWORD], /^tixian: no operator with email nobody@example\.com/],
      [['disable', '--email', 'not an e-mail'], /^tixian: email must look like name@example\.com/],
      [['disable', '--email', `${'x'.repeat(5000)}@example.com`], /^tixian: email must look like name@example\.com \(at most 255 characters\)$/],
      // A known operator, but a password outside the rules, or none at all.
      [['set-password', '--email', 'bystander@example.com', '--password', 'short'], /^tixian: password must be 10-256 characters$/],
      [['set-password', '--email', 'bystander@example.com', '--password', 'x'.repeat(257)], /^tixian: password must be 10-256 characters$/],
      [['set-password', '--email', 'bystander@example.com'], /^tixian: give --password or set TIXIAN_OPERATOR_PASSWORD$/],
    ];
    for (const [args, message] of refusals) {
      const res = await runCli(h, 'operators', ...args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.out, args.join(' ')).toEqual([]);
      expect(res.err, args.join(' ')).toHaveLength(1);
      expect(res.err[0], args.join(' ')).toMatch(message);
      expect(res.err[0]).not.toContain(NEW_PASSWORD);
    }

    expect(await state()).toEqual(before);
    expect((await call(kept, 'GET', '/admin/session')).status).toBe(200);
  });
});
