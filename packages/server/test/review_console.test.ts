import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';
import { runCli } from './helpers/cli.ts';
import { seedExtra, orderNo } from './helpers/withdrawals.ts';
import { createApp } from '../src/services/accounts.ts';
import { createUser } from '../src/services/users.ts';
import { createOperator, LOGIN_FAILURES_MAX } from '../src/admin/operators.ts';
import { ManualClock } from '../src/clock.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';

const PASSWORD = 'correct horse battery';

/** Review of the console's admin API and the CLI: tenancy, throttles, limits, secrets, partial writes. */
describeEngines('console review', (engine) => {
  let h: Harness;
  let keyDir: string;
  const clock = new ManualClock(Date.UTC(2026, 10, 26, 3, 0, 0));

  beforeAll(async () => {
    h = await Harness.start(engine, { clock, config: { sandboxDelayMs: 0 } });
    keyDir = mkdtempSync(path.join(tmpdir(), 'tixian-review-'));
    await createOperator(h.rt, { email: 'ops@example.com', password: PASSWORD, account: 'default' });
    await h.createUser('ru1');
    await h.fund('ru1', 1_000_000);
  });
  afterAll(async () => {
    await h?.close();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  async function session(email = 'ops@example.com') {
    const res = await h.request('POST', '/admin/session', { key: null, body: { email, password: PASSWORD } });
    expect(res.status, res.body).toBe(200);
    return { cookie: String(res.headers['set-cookie']).split(';')[0]!, csrf: res.json.csrf_token as string };
  }
  const call = (s: { cookie: string; csrf: string }, method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) =>
    h.request(method, url, { key: null, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, ...(body !== undefined ? { body } : {}) });

  async function withdrawal(amount = 1000) {
    const res = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'ru1', amount, channel: 'alipay', order_no: orderNo(), extra: seedExtra('alipay', 'payee@example.com') } });
    expect(res.status, res.body).toBe(200);
    return res.json.id as string;
  }

  it('counts concurrent failed logins: a burst of guesses gets no more tries than one after another', async () => {
    await createOperator(h.rt, { email: 'burst@example.com', password: PASSWORD, account: 'default' });
    const tries = 3 * LOGIN_FAILURES_MAX;
    const answers = await Promise.all(
      Array.from({ length: tries }, (_, i) => h.request('POST', '/admin/session', { key: null, body: { email: 'burst@example.com', password: `wrong password ${i}` } })),
    );
    const checked = answers.filter((a) => a.status === 401);
    expect(checked.length, answers.map((a) => a.status).join(',')).toBeLessThanOrEqual(LOGIN_FAILURES_MAX);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(tries - checked.length);
    // The right password is refused too until the window has passed, then works.
    expect((await h.request('POST', '/admin/session', { key: null, body: { email: 'burst@example.com', password: PASSWORD } })).status).toBe(429);
    clock.advance(15 * 60_000 + 1);
    await session('burst@example.com');
  });

  it("shows in a withdrawal's detail only its own account's audit lines, not another account's with the same target", async () => {
    const id = await withdrawal(400);
    // Another merchant names a user after this withdrawal's id (user ids are the merchant's to choose) and disables it.
    const other = await createApp(h.rt, { name: 'mallory shop', account: 'mallory' });
    await createOperator(h.rt, { email: 'mallory@example.com', password: PASSWORD, account: 'mallory' });
    await createUser(h.rt, { accountId: other.account, app: other.id, livemode: false, requestId: null }, { id });
    const m = await session('mallory@example.com');
    const disabled = await call(m, 'POST', `/admin/apps/${other.id}/users/${id}/disabled`, { mode: 'test', disabled: true });
    expect(disabled.status, disabled.body).toBe(200);

    const s = await session();
    const detail = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals/${id}?mode=test`);
    expect(detail.status, detail.body).toBe(200);
    expect(detail.body).not.toContain('mallory@example.com');
    expect(detail.json.audit).toEqual([]);
    // Its own lines are still there.
    expect((await call(s, 'POST', `/admin/apps/${h.appId}/withdrawals/${id}/cancel`, { mode: 'test' })).status).toBe(200);
    const after = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals/${id}?mode=test`);
    expect(after.json.audit.map((l: { action: string }) => l.action)).toEqual(['withdrawal.cancel']);
  });

  it('refuses a created filter past MAX_TIMESTAMP on the withdrawals list with a 400, as the v1 list does', async () => {
    const s = await session();
    for (const q of ['created[gte]=100000000000000000000', 'created[lte]=9223372036854775808', 'created[gte]=2147483648']) {
      const res = await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&${q}`);
      expect(res.status, `${q}: ${res.body}`).toBe(400);
      expect(res.json.error).toBeDefined();
    }
    expect((await call(s, 'GET', `/admin/apps/${h.appId}/withdrawals?mode=test&created[lte]=2147483647`)).status).toBe(200);
  });

  it("removes a webhook endpoint only in the mode asked for, so the audit line names the endpoint's own mode", async () => {
    const s = await session();
    const { endpoint } = await upsertEndpoint(h.rt, { app: h.appId, livemode: true, url: 'https://hooks.example.com/live' });
    const before = await h.snapshot();
    const wrongMode = await call(s, 'DELETE', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}?mode=test`);
    expect(wrongMode.status, wrongMode.body).toBe(404);
    const noMode = await call(s, 'DELETE', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}`);
    expect(noMode.status, noMode.body).toBe(400);
    expect(await h.snapshot()).toEqual(before);
    const live = await call(s, 'GET', `/admin/apps/${h.appId}/webhook_endpoints?mode=live`);
    expect(live.json.data.map((e: { id: string }) => e.id)).toContain(endpoint.id);
    const removed = await call(s, 'DELETE', `/admin/apps/${h.appId}/webhook_endpoints/${endpoint.id}?mode=live`);
    expect(removed.status, removed.body).toBe(200);
    const audit = await call(s, 'GET', `/admin/audit?target=${endpoint.id}`);
    expect(audit.json.data).toHaveLength(1);
    expect(audit.json.data[0]).toMatchObject({ action: 'webhook_endpoint.remove', livemode: true });
  });

  it("never answers a Standard Webhooks endpoint's whsec_ secret to the console when it is saved again", async () => {
    const s = await session();
    const url = 'http://127.0.0.1:9/standard';
    const { endpoint } = await upsertEndpoint(h.rt, { app: h.appId, livemode: false, url, standardWebhooks: true });
    expect(endpoint.secret).toMatch(/^whsec_/);
    const saved = await call(s, 'POST', `/admin/apps/${h.appId}/webhook_endpoints`, { mode: 'test', url, events: ['balance.withdrawal.failed'] });
    expect(saved.status, saved.body).toBe(200);
    expect(saved.json.events).toEqual(['balance.withdrawal.failed']);
    expect(saved.json.standard_webhooks).toBe(true);
    expect(saved.body).not.toContain(endpoint.secret!);
    expect(saved.json.secret).toBeUndefined();
  });

  it("refuses another account's audit line as a cursor, like one that does not exist", async () => {
    const other = await createApp(h.rt, { name: 'cursor shop', account: 'cursor' });
    await createOperator(h.rt, { email: 'cursor@example.com', password: PASSWORD, account: 'cursor' });
    const c = await session('cursor@example.com');
    expect((await call(c, 'POST', `/admin/apps/${other.id}/keys/roll`, { mode: 'test', expire_old_in_s: 0 })).status).toBe(200);
    const foreign = (await call(c, 'GET', '/admin/audit')).json.data[0].id as string;
    const s = await session();
    const res = await call(s, 'GET', `/admin/audit?starting_after=${foreign}`);
    expect(res.status, res.body).toBe(400);
    expect(res.json.error.param).toBe('starting_after');
  });

  it('apps update changes nothing when any of its options is refused (no half-applied update)', async () => {
    const keyFile = path.join(keyDir, 'merchant_public.pem');
    writeFileSync(keyFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const app = await createApp(h.rt, { name: 'cli shop', account: 'default' });
    const state = async () => ({
      app: await h.rt.store.db.selectFrom('apps').select(['rsa_public_key', 'require_signature_test', 'require_signature_live']).where('id', '=', app.id).executeTakeFirstOrThrow(),
      endpoints: (await h.rt.store.db.selectFrom('webhook_endpoints').select('id').where('app', '=', app.id).execute()).length,
    });
    const before = await state();
    const refused = [
      ['--rsa-public-key-file', keyFile, '--require-signature', 'test', '--events', 'balance.withdrawal.failed'],
      ['--rsa-public-key-file', keyFile, '--require-signature', 'test', '--webhook-url', 'ftp://hooks.example.com/x'],
      ['--rsa-public-key-file', keyFile, '--webhook-url', 'http://127.0.0.1:9/x', '--events', 'no.such.event'],
      ['--rsa-public-key-file', path.join(keyDir, 'missing.pem'), '--webhook-url', 'http://127.0.0.1:9/x'],
    ];
    for (const args of refused) {
      const r = await runCli(h, 'apps', 'update', app.id, ...args);
      expect(r.code, `${args.join(' ')}: ${r.err.join('')}`).toBe(2);
      expect(await state(), args.join(' ')).toEqual(before);
    }
    const ok = await runCli(h, 'apps', 'update', app.id, '--rsa-public-key-file', keyFile, '--require-signature', 'test', '--webhook-url', 'http://127.0.0.1:9/x');
    expect(ok.code, ok.err.join('')).toBe(0);
    const after = await state();
    expect(after.app.require_signature_test).toBe(1);
    expect(after.endpoints).toBe(1);
  });
});
