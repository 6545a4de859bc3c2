import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra, orderNo } from './helpers/withdrawals.ts';
import { createApp } from '../src/services/accounts.ts';
import { createOperator } from '../src/admin/operators.ts';
import { adminRouteList, BATCH_MAX } from '../src/admin/routes.ts';
import { hashPassword, verifyPassword } from '../src/admin/passwords.ts';
import { ManualClock } from '../src/clock.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { trigger } from '../src/cli/trigger.ts';
import { MAX_TIMESTAMP } from '../src/http/schemas.ts';

const PASSWORD = 'correct horse battery';

describeEngines('console admin API', (engine) => {
  let h: Harness;
  const clock = new ManualClock(Date.UTC(2026, 10, 26, 3, 0, 0));

  beforeAll(async () => {
    h = await Harness.start(engine, { clock, config: { sandboxDelayMs: 0 } });
    await createOperator(h.rt, { email: 'ops@example.com', password: PASSWORD, account: 'default' });
    await h.createUser('cu1');
    await h.fund('cu1', 1_000_000);
  });
  afterAll(async () => h?.close());

  async function session(email = 'ops@example.com', password = PASSWORD) {
    const res = await h.request('POST', '/admin/session', { key: null, body: { email, password } });
    expect(res.status, res.body).toBe(200);
    const cookie = String(res.headers['set-cookie']).split(';')[0]!;
    return { cookie, csrf: res.json.csrf_token as string, setCookie: String(res.headers['set-cookie']) };
  }
  const call = (s: { cookie: string; csrf: string }, method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown, csrf = true) =>
    h.request(method, url, { key: null, headers: { cookie: s.cookie, ...(csrf ? { 'x-csrf-token': s.csrf } : {}) }, ...(body !== undefined ? { body } : {}) });

  async function withdrawal(amount = 1000) {
    const res = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'cu1', amount, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', 'payee@example.com') } });
    expect(res.status, res.body).toBe(200);
    return res.json.id as string;
  }

  it('hashes passwords with scrypt and checks them', async () => {
    const hash = await hashPassword('a long password');
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword('a long password', hash)).toBe(true);
    expect(await verifyPassword('a long passwore', hash)).toBe(false);
    expect(await verifyPassword('x', 'scrypt$1073741824$8$1$AA$AA')).toBe(false); // absurd cost refused, not run
  });

  it('sets an HttpOnly SameSite=Strict session cookie and never returns the password or its hash', async () => {
    const s = await session();
    expect(s.setCookie).toMatch(/HttpOnly/);
    expect(s.setCookie).toMatch(/SameSite=Strict/);
    expect(s.setCookie).toMatch(/Path=\/admin/);
    const me = await call(s, 'GET', '/admin/session');
    expect(me.json.operator.email).toBe('ops@example.com');
    expect(me.body).not.toMatch(/scrypt|password/);
    const row = await h.rt.store.db.selectFrom('operator_sessions').selectAll().execute();
    // Only a hash of the cookie value is stored.
    expect(row.map((r) => r.token_hash)).not.toContain(s.cookie.split('=')[1]);
  });

  it('rejects every route without a session, and every change without the CSRF token, changing nothing', async () => {
    const routes = adminRouteList(h.rt);
    expect(routes.length).toBeGreaterThanOrEqual(9);
    const id = await withdrawal();
    const s = await session();
    const before = await h.snapshot();
    const auditBefore = await h.rt.store.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    for (const r of routes) {
      const url = r.url.replace(':app', h.appId).replace(':id', id);
      const body = r.method === 'GET' ? undefined : { mode: 'test', ids: [id], action: 'cancel' };
      const anon = await h.request(r.method as 'GET', url, { key: null, ...(body ? { body } : {}) });
      if (r.method === 'POST' && r.url === '/admin/session') continue; // the login itself
      expect(anon.status, `${r.method} ${r.url} without a session`).toBe(401);
      expect(anon.json.error.code).toBe('session_required');
      // A secret key is no session.
      expect((await h.request(r.method as 'GET', url, { ...(body ? { body } : {}) })).status).toBe(401);
      if (r.method !== 'GET') {
        const noCsrf = await call(s, r.method as 'POST', url, body, false);
        expect(noCsrf.status, `${r.method} ${r.url} without CSRF`).toBe(403);
        expect(noCsrf.json.error.code).toBe('csrf_token_invalid');
        const wrongCsrf = await h.request(r.method as 'POST', url, { key: null, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf.slice(0, -2) + 'AA' }, body });
        expect(wrongCsrf.status).toBe(403);
        const otherSite = await h.request(r.method as 'POST', url, { key: null, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'https://evil.example' }, body });
        expect(otherSite.status).toBe(403);
      }
    }
    expect(await h.snapshot()).toEqual(before);
    const auditAfter = await h.rt.store.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(auditAfter.n)).toBe(Number(auditBefore.n));
  });

  it('throttles failed logins per e-mail, also for the right password', async () => {
    await createOperator(h.rt, { email: 'slow@example.com', password: PASSWORD, account: 'default' });
    for (let i = 0; i < 5; i++) {
      const res = await h.request('POST', '/admin/session', { key: null, body: { email: 'slow@example.com', password: 'wrong password' } });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('login_failed');
    }
    const blocked = await h.request('POST', '/admin/session', { key: null, body: { email: 'slow@example.com', password: PASSWORD } });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    clock.advance(15 * 60_000 + 1);
    await session('slow@example.com');
    // Unknown e-mails answer exactly like wrong passwords.
    const unknown = await h.request('POST', '/admin/session', { key: null, body: { email: 'nobody@example.com', password: PASSWORD } });
    expect(unknown.status).toBe(401);
    expect(unknown.json.error.code).toBe('login_failed');
  });

  it('confirms and cancels through the v1 services and records who did it in the audit log', async () => {
    const s = await session();
    const a = await withdrawal(500);
    const b = await withdrawal(700);
    const confirmed = await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/${a}/confirm`, { mode: 'test' });
    expect(confirmed.status, confirmed.body).toBe(200);
    expect(confirmed.json.status).toBe('pending');
    const canceled = await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/${b}/cancel`, { mode: 'test' });
    expect(canceled.json.status).toBe('canceled');
    const again = await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/${b}/cancel`, { mode: 'test' });
    expect(again.status).toBe(400);
    expect(again.json.error.code).toBe('invalid_state');
    const audit = await call(s, 'GET', '/admin/audit');
    const lines = audit.json.data as { action: string; target: string; operator: string }[];
    expect(lines.find((l) => l.target === a)).toMatchObject({ action: 'withdrawal.confirm', operator: 'ops@example.com' });
    expect(lines.find((l) => l.target === b)).toMatchObject({ action: 'withdrawal.cancel', operator: 'ops@example.com' });
    expect(lines.filter((l) => l.target === b)).toHaveLength(1); // the refused second cancel left no line
    const detail = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals/${b}?mode=test`);
    expect(detail.json.balance_transactions.map((l: { type: string }) => l.type)).toEqual(['withdrawal', 'withdrawal_revoked']);
    expect(detail.json.withdrawal.extra.account).not.toBe('payee@example.com'); // masked
    expect(detail.json.audit[0].action).toBe('withdrawal.cancel');
    expect((await h.verify()).ok).toBe(true);
  });

  it('lists with filters and cursor pages, and batch-cancels selected rows up to 200', async () => {
    const s = await session();
    const ids = [await withdrawal(101), await withdrawal(102), await withdrawal(103)];
    const list = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&status=created&limit=2`);
    expect(list.json.data).toHaveLength(2);
    expect(list.json.has_more).toBe(true);
    const next = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&status=created&limit=2&starting_after=${list.json.data[1].id}`);
    expect(next.json.data[0].id).not.toBe(list.json.data[1].id);
    const one = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&order_no=${list.json.data[0].order_no}`);
    expect(one.json.data.map((w: { id: string }) => w.id)).toEqual([list.json.data[0].id]);

    const tooMany = await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/batch`, { mode: 'test', action: 'cancel', ids: Array.from({ length: BATCH_MAX + 1 }, (_, i) => String(i)) });
    expect(tooMany.status).toBe(400);
    const batch = await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/batch`, { mode: 'test', action: 'cancel', ids: [...ids, '999'] });
    expect(batch.status, batch.body).toBe(200);
    expect(batch.json.succeeded).toBe(3);
    expect(batch.json.failed).toBe(1);
    for (const id of ids) {
      const w = await h.request('GET', h.appPath(`/withdrawals/${id}`));
      expect(w.json.status).toBe('canceled');
    }
  });

  it('pages on after the rows of a created page were canceled: the cursor need not match the filter any more', async () => {
    const s = await session();
    const ids = [await withdrawal(111), await withdrawal(112), await withdrawal(113)]; // newest last
    const page = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&status=created&limit=2`);
    expect(page.json.data.map((w: { id: string }) => w.id)).toEqual([ids[2], ids[1]]);
    const batch = await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/batch`, { mode: 'test', action: 'cancel', ids: [ids[2], ids[1]] });
    expect(batch.json.succeeded).toBe(2);
    const next = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&status=created&limit=2&starting_after=${ids[1]}`);
    expect(next.status, next.body).toBe(200);
    expect(next.json.data[0].id).toBe(ids[0]);
    expect(next.json.data.every((w: { status: string }) => w.status === 'created')).toBe(true);
  });

  it('shows an account operator only its own apps; a platform operator sees all', async () => {
    const other = await createApp(h.rt, { name: 'other shop', account: 'other' });
    await createOperator(h.rt, { email: 'other@example.com', password: PASSWORD, account: 'other' });
    await createOperator(h.rt, { email: 'root@example.com', password: PASSWORD, platform: true });
    const mine = await session('other@example.com');
    const apps = await call(mine, 'GET', '/admin/apps');
    expect(apps.json.data.map((a: { id: string }) => a.id)).toEqual([other.id]);
    const foreign = await call(mine, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test`);
    expect(foreign.status).toBe(404);
    const id = await withdrawal(300);
    const foreignConfirm = await call(mine, 'POST', `/admin/apps/${h.appId}/withdrawals/${id}/confirm`, { mode: 'test' });
    expect(foreignConfirm.status).toBe(404);
    expect((await h.request('GET', h.appPath(`/withdrawals/${id}`))).json.status).toBe('created');
    const audit = await call(mine, 'GET', '/admin/audit');
    // Their own lines, and the CLI's about their account (their operator's creation): none of another account's.
    expect(audit.json.data.every((l: { operator: string }) => l.operator === 'other@example.com' || l.operator === 'cli')).toBe(true);
    expect(audit.json.data.some((l: { operator: string }) => l.operator === 'other@example.com')).toBe(true);
    const root = await session('root@example.com');
    const all = await call(root, 'GET', '/admin/apps');
    expect(all.json.data.map((a: { id: string }) => a.id).sort()).toEqual([h.appId, other.id].sort());
  });

  it('shows which payout channels can pay in each mode: the sandbox in test, none live without a driver', async () => {
    const s = await session();
    const res = await call(s, 'GET', `/admin/apps/${h.appId}/channels`);
    expect(res.json.data.find((c: { channel: string }) => c.channel === 'alipay')).toEqual({ channel: 'alipay', test: true, live: false });
  });

  it('ends a session 12 hours after login', async () => {
    const s = await session();
    clock.advance(12 * 3600_000 - 1_000);
    expect((await call(s, 'GET', '/admin/session')).status).toBe(200);
    clock.advance(1_000);
    expect((await call(s, 'GET', '/admin/session')).status).toBe(401);
  });

  it('logs out: the cookie stops working', async () => {
    const s = await session();
    expect((await call(s, 'DELETE', '/admin/session')).status).toBe(200);
    expect((await call(s, 'GET', '/admin/session')).status).toBe(401);
  });

  it('disables and enables a user through the v1 service, audited, and shows balances and lines', async () => {
    const s = await session();
    const off = await call(s, 'POST', `/admin/apps/${h.appId}/users/cu1/disabled`, { mode: 'test', disabled: true });
    expect(off.status, off.body).toBe(200);
    expect(off.json.disabled).toBe(true);
    const refused = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'cu1', amount: 100, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay') } });
    expect(refused.status).toBe(400);
    await call(s, 'POST', `/admin/apps/${h.appId}/users/cu1/disabled`, { mode: 'test', disabled: false });
    const detail = await call(s, 'GET', `/admin/apps/${h.appId}/users/cu1?mode=test`);
    expect(detail.json.user.withdrawable_balance).toBeGreaterThan(0);
    expect(detail.json.balance_transactions.length).toBeGreaterThan(0);
    const audit = await call(s, 'GET', '/admin/audit?target=cu1');
    expect(audit.json.data.map((l: { action: string }) => l.action)).toEqual(['user.enable', 'user.disable']);
    const list = await call(s, 'GET', `/admin/apps/${h.appId}/users?mode=test&limit=1`);
    expect(list.json.data).toHaveLength(1);
  });

  it('lists an endpoint\'s deliveries, resends an event and recovers failed deliveries, audited; another app\'s event is 404', async () => {
    const s = await session();
    const { endpoint } = await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url: 'http://127.0.0.1:9/hook' });
    const { event } = await trigger(h.rt, h.appId, 'balance.withdrawal.succeeded', 100);
    const eventId = event!.id;
    await h.rt.store.db.updateTable('webhook_deliveries').set({ status: 'failed', next_attempt_ms: null }).where('event_id', '=', eventId).execute();
    const failed = await call(s, 'GET', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}/deliveries?mode=test&status=failed`);
    expect(failed.json.data.map((d: { event_id: string }) => d.event_id)).toContain(eventId);
    const recovered = await call(s, 'POST', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}/recover`, { mode: 'test', since: 0 });
    expect(recovered.json).toMatchObject({ requeued: 1, complete: true });
    // `since` is bounded as the list filters' `created` is: past it a client error, never a 500 (PostgreSQL's bigint).
    const latest = await call(s, 'POST', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}/recover`, { mode: 'test', since: MAX_TIMESTAMP });
    expect(latest.json, latest.body).toMatchObject({ requeued: 0, complete: true });
    for (const since of [MAX_TIMESTAMP + 1, 1e20, 2 ** 63]) {
      const huge = await call(s, 'POST', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}/recover`, { mode: 'test', since });
      expect(huge.status, `since=${since}: ${huge.body}`).toBe(400);
    }
    const resent = await call(s, 'POST', `/admin/apps/${h.appId}/events/${eventId}/resend`, { mode: 'test' });
    expect(resent.json.requeued).toBe(1);
    const pending = await call(s, 'GET', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}/deliveries?mode=test&status=pending`);
    expect(pending.json.data.filter((d: { event_id: string }) => d.event_id === eventId)).toHaveLength(1);
    const audit = await call(s, 'GET', `/admin/audit?target=${eventId}`);
    expect(audit.json.data.map((l: { action: string }) => l.action)).toEqual(['event.resend']);
    const other = await createApp(h.rt, { name: 'third', account: 'default' });
    expect((await call(s, 'POST', `/admin/apps/${other.id}/events/${eventId}/resend`, { mode: 'test' })).status).toBe(404);
    expect((await call(s, 'GET', `/admin/apps/${other.id}/webhook_endpoints/${endpoint.id}/deliveries?mode=test`)).status).toBe(404);
  });

  it('rolls a secret key: shown once in the roll answer, never in the key list or the audit log', async () => {
    const other = await createApp(h.rt, { name: 'roll shop', account: 'roller' });
    await createOperator(h.rt, { email: 'roller@example.com', password: PASSWORD, account: 'roller' });
    const s = await session('roller@example.com');
    const rolled = await call(s, 'POST', `/admin/apps/${other.id}/keys/roll`, { mode: 'test', expire_old_in_s: 0 });
    expect(rolled.status, rolled.body).toBe(200);
    const key = rolled.json.secret_key as string;
    expect(key).toMatch(/^sk_test_/);
    expect((await h.request('GET', `/v1/apps/${other.id}/users`, { key })).status).toBe(200);
    expect((await h.request('GET', `/v1/apps/${other.id}/users`, { key: other.secret_key_test! })).status).toBe(401);
    const keys = await call(s, 'GET', `/admin/apps/${other.id}/keys`);
    expect(keys.json.data.length).toBeGreaterThan(0);
    expect(keys.body).not.toContain(key);
    const audit = await call(s, 'GET', '/admin/audit');
    expect(audit.json.data[0].action).toBe('secret_key.roll');
    expect(audit.body).not.toContain(key);
    const tooLong = await call(s, 'POST', `/admin/apps/${other.id}/keys/roll`, { mode: 'test', expire_old_in_s: 8 * 86_400 });
    expect(tooLong.status).toBe(400);
  });
});
