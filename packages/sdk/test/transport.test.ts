import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ApiError,
  AuthenticationError,
  ChannelError,
  ConnectionError,
  InvalidRequestError,
  RateLimitError,
  SignatureVerificationError,
  Tixian,
  TixianError,
  type Withdrawal,
} from '../src/index.ts';
import { FakeServer, json } from './helpers/fake-server.ts';

/**
 * The client's transport against a scriptable server: headers, signing, query encoding, error
 * mapping, timeouts and retries, response signatures, pagination. The same client runs against
 * a real tixian server in flow.test.ts.
 */

const APP = 'app_1Gqj58ynP0mHeX1q';
const KEY = 'sk_test_ibbTe5jLGCi5rzfH4OqPW9KC';

let srv: FakeServer;
beforeAll(async () => {
  srv = await FakeServer.start();
});
afterAll(async () => srv?.close());
beforeEach(() => {
  srv.seen.length = 0;
  srv.handler = (_req, res) => json(res, 200, { id: 'x', object: 'withdrawal', status: 'created' });
});

const client = (extra: Partial<ConstructorParameters<typeof Tixian>[0]> = {}) =>
  new Tixian({ apiKey: KEY, baseUrl: srv.url, appId: APP, ...extra });

describe('requests', () => {
  it('sends Bearer auth, a timestamp and JSON only when there is a body; no trailing "?"', async () => {
    const t = client();
    await t.withdrawals.retrieve('1701');
    await t.users.create({ id: 'u1', name: '张三' });
    const [get, post] = srv.seen;
    expect(get!.method).toBe('GET');
    expect(get!.url).toBe(`/v1/apps/${APP}/withdrawals/1701`);
    expect(get!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(get!.headers['content-type']).toBeUndefined();
    expect(get!.headers['pingplusplus-request-timestamp']).toMatch(/^\d{10}$/);
    expect(Math.abs(Number(get!.headers['pingplusplus-request-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
    expect(get!.headers['pingplusplus-signature']).toBeUndefined();
    expect(get!.headers['user-agent']).toMatch(/^Tixian\/v1 TixianNodeSDK\//);
    expect(post!.method).toBe('POST');
    expect(post!.url).toBe(`/v1/apps/${APP}/users`);
    expect(post!.headers['content-type']).toBe('application/json; charset=UTF-8');
    expect(JSON.parse(post!.body)).toEqual({ id: 'u1', name: '张三' });
  });

  it('encodes ids as path segments and nested/array/boolean query params like the Node SDK', async () => {
    srv.handler = (_req, res) => json(res, 200, { object: 'list', url: '/v1/x', has_more: false, data: [] });
    const t = client();
    await t.withdrawals.list({ per_page: 3, created: { gte: 1, lt: 2 }, status: 'pending' });
    await t.settleAccounts.list('user@x.com', { page: 2 });
    await t.events.list({ type: 'balance.withdrawal.succeeded' });
    expect(srv.seen.map((s) => s.url)).toEqual([
      `/v1/apps/${APP}/withdrawals?per_page=3&created%5Bgte%5D=1&created%5Blt%5D=2&status=pending`,
      `/v1/apps/${APP}/users/user%40x.com/settle_accounts?page=2`,
      `/v1/events?type=balance.withdrawal.succeeded`,
    ]);
  });

  it('takes the app id as the first argument, or from { appId }; refuses a call with neither', async () => {
    await client().withdrawals.retrieve('app_other', '1701');
    await client().settleAccounts.retrieve('app_other', 'u1', '320');
    await client().settleAccounts.retrieve('u1', '320');
    expect(srv.seen.map((s) => s.url)).toEqual([
      '/v1/apps/app_other/withdrawals/1701',
      '/v1/apps/app_other/users/u1/settle_accounts/320',
      `/v1/apps/${APP}/users/u1/settle_accounts/320`,
    ]);
    const noApp = new Tixian({ apiKey: KEY, baseUrl: srv.url });
    expect(() => noApp.withdrawals.retrieve('1701')).toThrow(/app id/);
    expect(() => noApp.withdrawals.list()).toThrow(/app id/);
    expect(srv.seen).toHaveLength(3);
  });

  it('accepts base URLs with a trailing slash or Go-style /v1 and rejects nonsense options', async () => {
    await client({ baseUrl: srv.url + '/v1/' }).users.retrieve('u1');
    await client({ baseUrl: srv.url + '/' }).users.retrieve('u1');
    expect(srv.seen.map((s) => s.url)).toEqual([`/v1/apps/${APP}/users/u1`, `/v1/apps/${APP}/users/u1`]);
    expect(() => new Tixian({ apiKey: '' })).toThrow(TypeError);
    expect(() => client({ maxNetworkRetries: 11 })).toThrow(RangeError);
    expect(() => client({ timeoutMs: 0 })).toThrow(RangeError);
    expect(() => client({ baseUrl: 'ftp://x' })).toThrow(TypeError);
  });

  it('refuses "." and ".." and empty ids, which URL parsing would turn into another path; sends nothing', async () => {
    const t = client();
    // new URL('…/users/u1/settle_accounts/..') is '…/users/u1/': the DELETE would hit another resource.
    expect(() => t.settleAccounts.del('u1', '..')).toThrow(TypeError);
    expect(() => t.settleAccounts.del('..', '320')).toThrow(TypeError);
    expect(() => t.settleAccounts.retrieve('u1', '.')).toThrow(TypeError);
    expect(() => t.withdrawals.retrieve('..')).toThrow(TypeError);
    expect(() => t.withdrawals.confirm('.')).toThrow(TypeError);
    expect(() => t.withdrawals.retrieve('..', '1701')).toThrow(TypeError); // as the app id
    expect(() => t.users.update('..', { name: 'x' })).toThrow(TypeError);
    expect(() => t.users.retrieve('')).toThrow(TypeError);
    expect(() => t.events.retrieve('..')).toThrow(/other than "", "\." and "\.\."/);
    expect(srv.seen).toHaveLength(0);
    // Dots inside an id, or more than two, are an ordinary segment.
    await t.users.retrieve('...');
    await t.users.retrieve('a..b');
    await t.users.retrieve('.x');
    expect(srv.seen.map((s) => s.url)).toEqual([`/v1/apps/${APP}/users/...`, `/v1/apps/${APP}/users/a..b`, `/v1/apps/${APP}/users/.x`]);
  });

  it('routes every verb of the app collections to its path and method, with the app first or from { appId }', async () => {
    srv.handler = (_req, res) => json(res, 200, { id: 'x', object: 'list', url: null, has_more: false, data: [] });
    const t = client();
    const calls: Array<[() => Promise<unknown>, string]> = [
      [() => t.withdrawals.create({ user: 'u1', amount: 1, order_no: 'o1', settle_account: '320' }), `POST /v1/apps/${APP}/withdrawals`],
      [() => t.withdrawals.list('app_2', { status: 'created' }), 'GET /v1/apps/app_2/withdrawals?status=created'],
      [() => t.withdrawals.cancel('app_2', '1701'), 'PUT /v1/apps/app_2/withdrawals/1701'],
      [() => t.batchWithdrawals.create('app_2', { withdrawals: ['1701'] }), 'POST /v1/apps/app_2/batch_withdrawals'],
      [() => t.batchWithdrawals.retrieve('b1'), `GET /v1/apps/${APP}/batch_withdrawals/b1`],
      [() => t.users.create('app_2', { id: 'u1' }), 'POST /v1/apps/app_2/users'],
      [() => t.users.update('u1', { disabled: true }), `PUT /v1/apps/${APP}/users/u1`],
      [() => t.users.list({ type: 'business' }), `GET /v1/apps/${APP}/users?type=business`],
      [() => t.balanceBonuses.create({ user: 'u1', amount: 1, order_no: 'o1' }), `POST /v1/apps/${APP}/balance_bonuses`],
      [() => t.balanceBonuses.retrieve('app_2', 'bb1'), 'GET /v1/apps/app_2/balance_bonuses/bb1'],
      [() => t.balanceSettlements.create('app_2', { user: 'u1', amount: 1, order_no: 'o1' }), 'POST /v1/apps/app_2/balance_settlements'],
      [() => t.balanceSettlements.list({ user: 'u1' }), `GET /v1/apps/${APP}/balance_settlements?user=u1`],
      [() => t.balanceTransfers.create({ user: 'u1', recipient: '0', amount: 1, order_no: 'o1' }), `POST /v1/apps/${APP}/balance_transfers`],
      [() => t.balanceTransfers.retrieve('tr/1'), `GET /v1/apps/${APP}/balance_transfers/tr%2F1`],
      [() => t.balanceTransactions.list('app_2'), 'GET /v1/apps/app_2/balance_transactions'],
      [() => t.balanceTransactions.retrieve('bt1'), `GET /v1/apps/${APP}/balance_transactions/bt1`],
    ];
    for (const [call] of calls) await call();
    expect(srv.seen.map((s) => `${s.method} ${s.url}`)).toEqual(calls.map(([, expected]) => expected));
    expect(JSON.parse(srv.seen[3]!.body)).toEqual({ withdrawals: ['1701'] });
    expect(JSON.parse(srv.seen[6]!.body)).toEqual({ disabled: true });
    // Argument errors name the method as the client spells it.
    const noApp = new Tixian({ apiKey: KEY, baseUrl: srv.url });
    expect(() => noApp.balanceBonuses.create({ user: 'u1', amount: 1, order_no: 'o1' })).toThrow(/^balanceBonuses\.create: pass the app id/);
    expect(() => noApp.balanceTransactions.list()).toThrow(/^balanceTransactions\.list: /);
    const untyped = t.users.update.bind(t.users) as (...args: unknown[]) => Promise<unknown>;
    expect(() => untyped('app_2', 'u1', 'extra', { name: 'x' })).toThrow(/^users\.update: expected 1 id/);
    expect(srv.seen).toHaveLength(calls.length);
  });
});

describe('request signing (§3)', () => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pkcs1 = pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const pkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  const signatureOk = (s: { body: string; url: string; headers: Record<string, unknown> }) =>
    verify(
      'sha256',
      Buffer.from(s.body + s.url + String(s.headers['pingplusplus-request-timestamp'])),
      pair.publicKey,
      Buffer.from(String(s.headers['pingplusplus-signature']), 'base64'),
    );

  it('signs body + request-target (with /v1 and query) + timestamp, with PKCS#1 or PKCS#8 keys', async () => {
    srv.handler = (req, res) =>
      req.method === 'GET' && req.url.includes('?')
        ? json(res, 200, { object: 'list', url: '/v1/x', has_more: false, data: [] })
        : json(res, 200, { id: 'x' });
    for (const privateKey of [pkcs1, pkcs8, pair.privateKey]) {
      const t = client({ privateKey });
      await t.withdrawals.create({ user: 'u1', amount: 100, order_no: 'o1', channel: 'alipay', extra: { account: 'a@b.c', name: '张三' } });
      await t.withdrawals.list({ per_page: 3, created: { gte: 1 } });
      await t.withdrawals.confirm('1701');
      await t.settleAccounts.del('u1', '320');
    }
    expect(srv.seen).toHaveLength(12);
    for (const s of srv.seen) {
      expect(s.headers['pingplusplus-signature'], s.url).toBeDefined();
      expect(signatureOk(s), `${s.method} ${s.url}`).toBe(true);
    }
    // A different target does not verify: the signature covers the path.
    const tampered = { ...srv.seen[0]!, url: srv.seen[0]!.url + 'x' };
    expect(signatureOk(tampered)).toBe(false);
  });

  it('refuses a key that is not an RSA private key at construction', () => {
    const pub = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => client({ privateKey: pair.publicKey })).toThrow(TypeError);
    expect(() => client({ privateKey: pub })).toThrow();
    expect(() => client({ privateKey: 'not a pem' })).toThrow();
  });
});

describe('errors', () => {
  const cases: Array<[number, unknown, new (...a: never[]) => TixianError, string]> = [
    [400, { error: { type: 'invalid_request_error', message: 'bad', param: 'amount', code: 'invalid_parameter' } }, InvalidRequestError, 'invalid_request_error'],
    [404, { error: { type: 'invalid_request_error', message: '未找到 withdrawal : 1。', param: 'id' } }, InvalidRequestError, 'invalid_request_error'],
    [401, { error: { type: 'invalid_request_error', message: '提供了无效的 API KEY' } }, AuthenticationError, 'invalid_request_error'],
    [402, { error: { type: 'channel_error', message: 'refused' } }, ChannelError, 'channel_error'],
    [400, { error: { type: 'channel_error', message: 'refused' } }, ChannelError, 'channel_error'],
    [403, { error: { type: 'invalid_request_error', message: 'slow down' } }, RateLimitError, 'invalid_request_error'],
    [429, { error: { type: 'invalid_request_error', message: 'slow down' } }, RateLimitError, 'invalid_request_error'],
    [500, { error: { type: 'api_error', message: 'boom' } }, ApiError, 'api_error'],
    [404, '<html>not here</html>', ApiError, 'invalid_request_error'],
  ];

  it.each(cases)('maps HTTP %i to the right class, keeping param, code, status and request id', async (status, body, cls, type) => {
    srv.handler = (_req, res) => json(res, status, body, { 'x-request-id': 'req_abc' });
    const err = await client().withdrawals.retrieve('1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(TixianError);
    const e = err as TixianError;
    expect(e.statusCode).toBe(status);
    expect(e.requestId).toBe('req_abc');
    expect(e.type).toBe(type);
    expect(e.name).toBe(cls.name);
    if (typeof body === 'object') {
      const wire = (body as { error: { param?: string; code?: string; message: string } }).error;
      expect(e.param).toBe(wire.param);
      expect(e.code).toBe(wire.code);
      expect(e.message).toBe(wire.message);
    }
    // 4xx is never retried, 500 is not either (the server may have acted).
    expect(srv.seen).toHaveLength(1);
  });

  it('treats a 2xx that is not a JSON object as an ApiError', async () => {
    srv.handler = (_req, res) => json(res, 200, 'OK');
    await expect(client().users.retrieve('u1')).rejects.toBeInstanceOf(ApiError);
  });
});

describe('timeouts and retries', () => {
  const hang = () => {
    srv.handler = () => new Promise<void>(() => {}); // never answers
  };
  /** Drops the connection without an answer the first `n` times (the work may have been done). */
  const dropFirst = (n: number, then: Parameters<typeof json>[2]) => {
    srv.handler = (_req, res) => {
      if (srv.seen.length <= n) res.socket?.destroy();
      else json(res, 200, then);
    };
  };

  it('times out every attempt and retries a GET up to maxNetworkRetries', async () => {
    hang();
    const started = Date.now();
    const err = (await client({ timeoutMs: 150, maxNetworkRetries: 2 }).withdrawals.retrieve('1').catch((e: unknown) => e)) as ConnectionError;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.timedOut).toBe(true);
    expect(err.attempts).toBe(3);
    expect(err.message).toMatch(/timed out after 150 ms/);
    expect(srv.seen).toHaveLength(3);
    // 3 × 150 ms of timeouts plus two backoffs (≥ 250 ms and ≥ 500 ms with jitter).
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * 150 + 250 + 500 - 20);
  });

  it('retries a dropped connection for a create with order_no, and returns the answer', async () => {
    dropFirst(1, { id: 'bonus_1', object: 'balance_bonus' });
    const bonus = await client().balanceBonuses.create({ user: 'u1', amount: 100, order_no: 'b1' });
    expect(bonus.id).toBe('bonus_1');
    expect(srv.seen).toHaveLength(2);
    expect(srv.seen[0]!.body).toBe(srv.seen[1]!.body);
  });

  it('never retries creates without an idempotency key, nor DELETE', async () => {
    dropFirst(5, {});
    await expect(client().users.create({ id: 'u1' })).rejects.toBeInstanceOf(ConnectionError);
    await expect(client().settleAccounts.create('u1', { channel: 'alipay', recipient: { account: 'a@b.c', name: 'x' } })).rejects.toBeInstanceOf(ConnectionError);
    await expect(client().batchWithdrawals.create({ withdrawals: ['1'] })).rejects.toBeInstanceOf(ConnectionError);
    await expect(client().settleAccounts.del('u1', '320')).rejects.toBeInstanceOf(ConnectionError);
    expect(srv.seen).toHaveLength(4);
  });

  it('respects maxNetworkRetries: 0 and per-call overrides', async () => {
    dropFirst(5, {});
    await expect(client({ maxNetworkRetries: 0 }).users.retrieve('u1')).rejects.toBeInstanceOf(ConnectionError);
    expect(srv.seen).toHaveLength(1);
    await expect(client({ maxNetworkRetries: 0 }).users.retrieve('u1', { maxNetworkRetries: 1 })).rejects.toBeInstanceOf(ConnectionError);
    expect(srv.seen).toHaveLength(3);
  });

  it('bounds maxNetworkRetries per call exactly as per client (0..10), instead of clamping', async () => {
    for (const n of [11, -1, 1.5]) {
      expect(() => client({ maxNetworkRetries: n })).toThrow(/maxNetworkRetries must be an integer in 0\.\.10/);
      await expect(client().users.retrieve('u1', { maxNetworkRetries: n })).rejects.toThrow(/maxNetworkRetries must be an integer in 0\.\.10/);
    }
    await expect(client().users.retrieve('u1', { maxNetworkRetries: 11 })).rejects.toBeInstanceOf(RangeError);
    expect(srv.seen).toHaveLength(0);
    expect((await client({ maxNetworkRetries: 10 }).users.retrieve('u1', { maxNetworkRetries: 10 })).id).toBe('x');
  });

  it('retries a GET answered 503, not one answered 500 or 400', async () => {
    srv.handler = (_req, res) => (srv.seen.length === 1 ? json(res, 503, { error: { type: 'api_error', message: 'closing' } }) : json(res, 200, { id: 'u1' }));
    expect((await client().users.retrieve('u1')).id).toBe('u1');
    expect(srv.seen).toHaveLength(2);
  });

  it('stops at once when the caller aborts, without retrying', async () => {
    hang();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = (await client({ maxNetworkRetries: 3 }).users.retrieve('u1', { signal: controller.signal }).catch((e: unknown) => e)) as ConnectionError;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.message).toBe('aborted by the caller');
    expect(err.timedOut).toBe(false);
    expect(srv.seen).toHaveLength(1);
  });

  it('counts the attempts already made when the caller aborts during the backoff wait', async () => {
    const controller = new AbortController();
    srv.handler = (_req, res) => {
      res.socket?.destroy();
      // After the second failure the client waits 500–1000 ms before a third attempt: abort inside that wait.
      if (srv.seen.length === 2) setTimeout(() => controller.abort(), 100);
    };
    const err = (await client({ maxNetworkRetries: 3 }).users.retrieve('u1', { signal: controller.signal }).catch((e: unknown) => e)) as ConnectionError;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.message).toBe('aborted by the caller');
    expect(err.attempts).toBe(2);
    expect(srv.seen).toHaveLength(2);
  });

  it('rejects with a ConnectionError, sending nothing, when the signal was aborted before the call', async () => {
    const err = (await client().users.retrieve('u1', { signal: AbortSignal.abort() }).catch((e: unknown) => e)) as ConnectionError;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.message).toBe('aborted by the caller');
    expect(err.attempts).toBe(0);
    expect(srv.seen).toHaveLength(0);
  });

  describe('confirm/cancel after a lost answer', () => {
    const withdrawal = (status: Withdrawal['status']) => ({ id: '1701', object: 'withdrawal', status });
    const cannot = { error: { type: 'invalid_request_error', message: 'withdrawal 1701 is pending and its status cannot be updated.', param: 'status', code: 'invalid_state' } };

    it('returns the withdrawal when the retry is refused because the lost attempt already confirmed it', async () => {
      srv.handler = (req, res) => {
        if (srv.seen.length === 1) return void res.socket?.destroy();
        if (req.method === 'PUT') return json(res, 400, cannot);
        json(res, 200, withdrawal('pending'));
      };
      const w = await client().withdrawals.confirm('1701');
      expect(w.status).toBe('pending');
      expect(srv.seen.map((s) => s.method)).toEqual(['PUT', 'PUT', 'GET']);
      expect(JSON.parse(srv.seen[0]!.body)).toEqual({ status: 'pending' });
    });

    it('keeps the 400 when the withdrawal went elsewhere (canceled by someone else)', async () => {
      srv.handler = (req, res) => {
        if (srv.seen.length === 1) return void res.socket?.destroy();
        if (req.method === 'PUT') return json(res, 400, cannot);
        json(res, 200, withdrawal('canceled'));
      };
      const err = (await client().withdrawals.confirm('1701').catch((e: unknown) => e)) as InvalidRequestError;
      expect(err).toBeInstanceOf(InvalidRequestError);
      expect(err.code).toBe('invalid_state');
      expect(err.attempts).toBe(2);
    });

    it('recognises Ping++\'s wording too, for cancel', async () => {
      srv.handler = (req, res) => {
        if (srv.seen.length === 1) return void res.socket?.destroy();
        if (req.method === 'PUT') return json(res, 400, { error: { type: 'invalid_request_error', message: '该提现不能被更新状态' } });
        json(res, 200, withdrawal('canceled'));
      };
      expect((await client().withdrawals.cancel('1701')).status).toBe('canceled');
    });

    it('throws a first-attempt refusal as is, without reading the withdrawal', async () => {
      srv.handler = (_req, res) => json(res, 400, cannot);
      await expect(client().withdrawals.confirm('1701')).rejects.toBeInstanceOf(InvalidRequestError);
      expect(srv.seen.map((s) => s.method)).toEqual(['PUT']);
    });
  });
});

describe('response signatures', () => {
  const platform = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const platformPublicKey = platform.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const body = JSON.stringify({ id: 'u1', object: 'user', name: '张三' });
  const goodSig = sign('sha256', Buffer.from(body), platform.privateKey).toString('base64');

  it('accepts a 2xx whose X-Pingplusplus-Signature matches the raw body', async () => {
    srv.handler = (_req, res) => json(res, 200, body, { 'x-pingplusplus-signature': goodSig });
    expect((await client({ platformPublicKey }).users.retrieve('u1')).name).toBe('张三');
  });

  it('rejects a 2xx with a signature over other bytes, or with none; does not retry', async () => {
    srv.handler = (_req, res) => json(res, 200, body.replace('u1', 'u2'), { 'x-pingplusplus-signature': goodSig });
    await expect(client({ platformPublicKey }).users.retrieve('u1')).rejects.toBeInstanceOf(SignatureVerificationError);
    srv.handler = (_req, res) => json(res, 200, body);
    await expect(client({ platformPublicKey }).users.retrieve('u1')).rejects.toThrow(/carries no X-Pingplusplus-Signature/);
    expect(srv.seen).toHaveLength(2);
    // Without the option nothing is checked.
    expect((await client().users.retrieve('u1')).id).toBe('u1');
  });
});

describe('pagination', () => {
  const ids = Array.from({ length: 7 }, (_, i) => `w${7 - i}`); // newest first: w7 … w1
  /** A list endpoint with both schemes, like tixian's lists.ts. */
  const listServer = () => {
    srv.handler = (req, res) => {
      const q = new URL(req.url, 'http://x').searchParams;
      let data: string[];
      let hasMore: boolean;
      if (q.has('page') || q.has('per_page')) {
        const per = Number(q.get('per_page') ?? 20);
        const page = Number(q.get('page') ?? 1);
        data = ids.slice((page - 1) * per, page * per);
        hasMore = ids.length > page * per;
      } else {
        const limit = Number(q.get('limit') ?? 10);
        if (q.has('ending_before')) {
          const at = ids.indexOf(q.get('ending_before')!);
          data = ids.slice(Math.max(0, at - limit), at);
          hasMore = at - limit > 0;
        } else {
          const at = q.has('starting_after') ? ids.indexOf(q.get('starting_after')!) + 1 : 0;
          data = ids.slice(at, at + limit);
          hasMore = ids.length > at + limit;
        }
      }
      json(res, 200, { object: 'list', url: `/v1/apps/${APP}/withdrawals`, has_more: hasMore, data: data.map((id) => ({ id })), total_withdrawals_amount: 700 });
    };
  };

  it('iterates every item across pages with a cursor (starting_after) by default', async () => {
    listServer();
    const got: string[] = [];
    for await (const w of client().withdrawals.list({ limit: 3 })) got.push(w.id);
    expect(got).toEqual(ids);
    expect(srv.seen.map((s) => s.url.split('?')[1])).toEqual(['limit=3', 'limit=3&starting_after=w5', 'limit=3&starting_after=w2']);
  });

  it('continues page/per_page lists by page number, and exposes the list fields', async () => {
    listServer();
    const page = await client().withdrawals.list({ per_page: 3 });
    expect(page.total_withdrawals_amount).toBe(700);
    expect(page.data.map((w) => w.id)).toEqual(['w7', 'w6', 'w5']);
    expect(JSON.parse(JSON.stringify(page))).toEqual({ object: 'list', url: `/v1/apps/${APP}/withdrawals`, has_more: true, data: page.data, total_withdrawals_amount: 700 });
    const sizes: number[] = [];
    for await (const p of page.pages()) sizes.push(p.data.length);
    expect(sizes).toEqual([3, 3, 1]);
    expect(srv.seen.map((s) => s.url.split('?')[1])).toEqual(['per_page=3', 'per_page=3&page=2', 'per_page=3&page=3']);
  });

  it('pages backwards with ending_before', async () => {
    listServer();
    const got: string[] = [];
    for await (const w of client().withdrawals.list({ limit: 2, ending_before: 'w1' })) got.push(w.id);
    expect(got).toEqual(['w3', 'w2', 'w5', 'w4', 'w7', 'w6']);
  });

  it('stops autoPagingToArray at its limit and requires one', async () => {
    listServer();
    const five = await client().withdrawals.list({ limit: 2 }).autoPagingToArray({ limit: 5 });
    expect(five.map((w) => w.id)).toEqual(['w7', 'w6', 'w5', 'w4', 'w3']);
    expect(srv.seen).toHaveLength(3);
    await expect(client().withdrawals.list().autoPagingToArray({ limit: 0 })).rejects.toBeInstanceOf(RangeError);
  });

  it('fails loudly instead of looping when the server repeats a page', async () => {
    srv.handler = (_req, res) => json(res, 200, { object: 'list', url: null, has_more: true, data: [{ id: 'same' }] });
    await expect(client().users.list().autoPagingToArray({ limit: 100 })).rejects.toThrow(/did not advance/);
  });

  it('fails loudly instead of looping when the server ignores page (page-number lists)', async () => {
    // Always the first page, always "more": without the guard every page would be this one, forever.
    srv.handler = (_req, res) => json(res, 200, { object: 'list', url: null, has_more: true, data: [{ id: 'w7' }, { id: 'w6' }] });
    await expect(client().withdrawals.list({ per_page: 2 }).autoPagingToArray({ limit: 100 })).rejects.toThrow(/did not advance/);
    expect(srv.seen.map((s) => s.url.split('?')[1])).toEqual(['per_page=2', 'per_page=2&page=2']);
    const page = await client().users.list({ page: 4 });
    await expect(page.nextPage()).rejects.toThrow(/did not advance/);
    expect(srv.seen.at(-1)!.url.split('?')[1]).toBe('page=5');
  });

  it('lets a page-number list end on an empty page', async () => {
    srv.handler = (req, res) => {
      const page = Number(new URL(req.url, 'http://x').searchParams.get('page') ?? 1);
      json(res, 200, { object: 'list', url: null, has_more: page === 1, data: page === 1 ? [{ id: 'w2' }, { id: 'w1' }] : [] });
    };
    const got = await client().withdrawals.list({ per_page: 2 }).autoPagingToArray({ limit: 100 });
    expect(got.map((w) => w.id)).toEqual(['w2', 'w1']);
    expect(srv.seen).toHaveLength(2);
  });
});
