import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { defaults } from '../src/config.ts';
import { createLogger } from '../src/logging.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { buildApp } from '../src/http/app.ts';
import { createApp } from '../src/services/accounts.ts';
import { createOperator } from '../src/admin/operators.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';

/** Console secrets (passwords, session cookies, CSRF tokens, secret keys) never reach a log line or an /admin answer. */
describeEngines('console secrets', (engine) => {
  const lines: string[] = [];
  let rt: Runtime;
  let app: FastifyInstance;
  let drop: () => Promise<void>;
  let keys: string[];
  const PASSWORD = 'a password never logged';

  beforeAll(async () => {
    const storage = await freshStorage(engine);
    drop = storage.drop;
    const sink = new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) });
    rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, rateLimit: 0 }, { log: createLogger('debug', sink) });
    app = await buildApp(rt);
    const created = await createApp(rt, { name: 'secrets app' });
    keys = [created.secret_key_test!, created.secret_key_live!];
    await createOperator(rt, { email: 'ops@example.com', password: PASSWORD, account: 'default' });
  });
  afterAll(async () => {
    await app?.close();
    await rt?.close();
    await drop?.();
  });

  it('logs neither the password, the cookie, the CSRF token nor a secret key, and answers none of them back', async () => {
    const wrong = await app.inject({ method: 'POST', url: '/admin/session', payload: { email: 'ops@example.com', password: PASSWORD + 'x' } });
    expect(wrong.statusCode).toBe(401);
    const login = await app.inject({ method: 'POST', url: '/admin/session', payload: { email: 'ops@example.com', password: PASSWORD } });
    expect(login.statusCode).toBe(200);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const token = cookie.split('=')[1]!;
    const csrf = login.json().csrf_token as string;
    const answers: string[] = [login.body];
    for (const url of ['/admin/session', '/admin/apps', '/admin/audit']) {
      const res = await app.inject({ method: 'GET', url, headers: { cookie } });
      expect(res.statusCode).toBe(200);
      answers.push(res.body);
    }
    const appId = (await app.inject({ method: 'GET', url: '/admin/apps', headers: { cookie } })).json().data[0].id as string;
    answers.push((await app.inject({ method: 'GET', url: `/admin/apps/${appId}/developers`, headers: { cookie } })).body);
    // A refused change logs its request too.
    await app.inject({ method: 'POST', url: `/admin/apps/${appId}/withdrawals/1/confirm`, headers: { cookie, 'x-csrf-token': csrf }, payload: { mode: 'test' } });
    await app.inject({ method: 'DELETE', url: '/admin/session', headers: { cookie, 'x-csrf-token': csrf } });
    rt.log.flush?.();
    const log = lines.join('');
    expect(lines.length).toBeGreaterThan(5);
    for (const secret of [PASSWORD, token, csrf, ...keys]) expect(log).not.toContain(secret);
    for (const secret of [PASSWORD, 'scrypt$', ...keys]) for (const a of answers) expect(a).not.toContain(secret);
    expect(answers.join('')).not.toContain(token);
  });
});
