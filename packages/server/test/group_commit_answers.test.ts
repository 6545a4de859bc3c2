import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { defaults, type Config } from '../src/config.ts';
import { buildApp } from '../src/http/app.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { createApp } from '../src/services/accounts.ts';
import { freshStorage, shownKey } from './helpers/harness.ts';
import { verifyPingppSignature } from './helpers/receiver.ts';
import { heldWalSync } from './helpers/wal-sync.ts';

/**
 * The API's writes take their outcome at COMMIT (store/group-commit.ts, answerAt 'committed';
 * http/context.ts ANSWER_AT_COMMIT): an answer is built and signed while the batch's WAL sync is
 * in flight, and leaves only once the batch is durable (http/app.ts). The sync here is the real fdatasync, which a test holds,
 * then lets through or fails (helpers/wal-sync.ts).
 */
const sync = heldWalSync();

/** What an injected request answered. */
interface Answer {
  statusCode: number;
  body: string;
  headers: Record<string, unknown>;
  json: () => unknown;
}

/** A few event-loop turns (the loop is not blocked: these come back). */
async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('SQLite: an API write is answered during its batch\'s WAL sync and sent once the batch is durable', () => {
  let rt: Runtime;
  let app: FastifyInstance;
  let drop: () => Promise<void>;
  let post: (path: string, body: object) => Promise<Answer>;
  let put: (path: string, body: object) => Promise<Answer>;
  let del: (path: string) => Promise<Answer>;

  beforeEach(async () => {
    sync.state.hold = false;
    const storage = await freshStorage('sqlite');
    drop = storage.drop;
    const config: Config = { ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false, logLevel: 'silent', rateLimit: 0 };
    rt = await openRuntime(config, { log: pino({ level: 'silent' }), sqliteWalSync: sync.factory });
    app = await buildApp(rt);
    const merchant = await createApp(rt, { name: 'answers' });
    const key = shownKey(merchant.secret_key_test);
    const send = (method: 'POST' | 'PUT' | 'DELETE') => (path: string, body?: object) =>
      app.inject({ method, url: `/v1/apps/${merchant.id}${path}`, headers: { authorization: `Bearer ${key}` }, ...(body ? { payload: body } : {}) });
    post = send('POST');
    put = send('PUT');
    del = send('DELETE');
    expect((await post('/users', { id: 'u1' })).statusCode).toBe(200);
    expect((await post('/users', { id: 'u2' })).statusCode).toBe(200);
    expect((await post('/balance_settlements', { user: 'u1', amount: 10_000, order_no: 'fund1' })).statusCode).toBe(200);
  });
  afterEach(async () => {
    sync.state.hold = false;
    sync.release();
    await app.close();
    await rt.close();
    await drop();
  });

  const create = { user: 'u1', amount: 1_000, channel: 'alipay', order_no: 'w1', extra: { account: 'payee@example.com', name: '张三' } };
  /** Resolves once an answer has reached the last hook while a commit is not yet durable: built and signed, held there. */
  const heldAtTheGate = async (gate: { mock: { results: { value: unknown }[] } }) =>
    vi.waitFor(() => expect(gate.mock.results.some((r) => r.value instanceof Promise)).toBe(true));

  /** A withdrawal still `created`, for the confirm and the cancel. */
  const created = async () => {
    const res = await post('/withdrawals', create);
    expect(res.statusCode).toBe(200);
    return (res.json() as { id: string }).id;
  };
  /** A settle account of u1, for the delete. */
  const boundAccount = async () => {
    const res = await post('/users/u1/settle_accounts', { channel: 'alipay', recipient: { account: 'payee@example.com', name: '张三' } });
    expect(res.statusCode).toBe(200);
    return (res.json() as { id: string }).id;
  };
  /** Each write of the API, after what it needs (`before`, its syncs not held). */
  const writes: { name: string; before?: () => Promise<string>; request: (id: string) => Promise<Answer>; answer: object }[] = [
    { name: 'user create', request: () => post('/users', { id: 'u3' }), answer: { object: 'user', id: 'u3' } },
    { name: 'settle account create', request: () => post('/users/u1/settle_accounts', { channel: 'alipay', recipient: { account: 'payee@example.com', name: '张三' } }), answer: { object: 'settle_account', channel: 'alipay' } },
    { name: 'settle account delete', before: boundAccount, request: (id) => del(`/users/u1/settle_accounts/${id}`), answer: { object: 'settle_account', deleted: true } },
    { name: 'withdrawal create', request: () => post('/withdrawals', create), answer: { object: 'withdrawal', status: 'created', amount: 1_000, user: 'u1' } },
    { name: 'withdrawal confirm', before: created, request: (id) => put(`/withdrawals/${id}`, { status: 'pending' }), answer: { object: 'withdrawal', status: 'pending' } },
    { name: 'withdrawal cancel', before: created, request: (id) => put(`/withdrawals/${id}`, { status: 'canceled' }), answer: { object: 'withdrawal', status: 'canceled' } },
    { name: 'balance bonus', request: () => post('/balance_bonuses', { user: 'u1', amount: 500, order_no: 'b1' }), answer: { object: 'balance_bonus', amount: 500 } },
    { name: 'balance settlement', request: () => post('/balance_settlements', { user: 'u1', amount: 500, order_no: 's1' }), answer: { object: 'balance_settlement', amount: 500 } },
    { name: 'balance transfer', request: () => post('/balance_transfers', { user: 'u1', recipient: 'u2', amount: 500, order_no: 't1' }), answer: { object: 'balance_transfer', status: 'succeeded' } },
  ];

  it.each(writes)('$name: builds and signs the answer while the sync is in flight, and sends it only once the sync returns', async ({ before, request, answer: expected }) => {
    const id = (await before?.()) ?? '';
    const gate = vi.spyOn(rt.store, 'committedDurable');
    sync.state.hold = true;
    let sent = false;
    const answer = request(id).then((res) => ((sent = true), res));
    await heldAtTheGate(gate);
    expect(sync.state.held).toHaveLength(1);
    await turns();
    expect(sent).toBe(false);

    sync.state.hold = false;
    sync.state.held.shift()!();
    const res = await answer;
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject(expected);
    expect(verifyPingppSignature(Buffer.from(res.body), res.headers['x-pingplusplus-signature'] as string, rt.platformKey.publicKeyPem)).toBe(true);
  });

  it('an answer whose batch could not be made durable goes out as an error, signed, never as the withdrawal', async () => {
    const gate = vi.spyOn(rt.store, 'committedDurable');
    sync.state.hold = true;
    const answer = post('/withdrawals', create);
    await heldAtTheGate(gate);
    sync.state.held.shift()!(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const res = await answer;
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: expect.objectContaining({ type: 'api_error' }) });
    expect(res.body).not.toContain('"withdrawal"');
    expect(verifyPingppSignature(Buffer.from(res.body), res.headers['x-pingplusplus-signature'] as string, rt.platformKey.publicKeyPem)).toBe(true);
  });
});
