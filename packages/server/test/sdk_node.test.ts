import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';

/**
 * The official Node SDK (`pingpp` on npm, unchanged) pointed at tixian with setHost(host, port,
 * 'http'). It has no types: the few calls used here are declared below. Every call is bounded:
 * the SDK's known failure against servers that keep connections alive is to hang (§1 Keep-alive).
 */

type Call = (...args: unknown[]) => Promise<Record<string, unknown>>;
interface PingppClient {
  setHost(host: string, port: number, protocol: 'http' | 'https'): void;
  setTimeout(ms: number): void;
  users: { create: Call; retrieve: Call; list: Call; update: Call };
  balanceBonuses: { create: Call; retrieve: Call; list: Call };
  balanceTransactions: { list: Call; retrieve: Call };
}
interface PingppErrorLike {
  type: string;
  rawType?: string;
  param?: string;
  code?: string;
  message: string;
}

const require = createRequire(import.meta.url);
const pingppFactory = require('pingpp') as (key: string) => PingppClient;
const pingppErrors = require('pingpp/lib/Error.js') as Record<'PingppAuthenticationError' | 'PingppInvalidRequestError', new (...a: unknown[]) => Error>;

const CALL_TIMEOUT_MS = 5_000;

/** Rejects when the SDK call has not settled in time, instead of letting the test hang. */
async function bounded<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${CALL_TIMEOUT_MS} ms (the SDK hung)`)), CALL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error a rejected SDK call carries (fails the test if the call succeeded). */
async function sdkError(what: string, promise: Promise<unknown>): Promise<PingppErrorLike & Error> {
  try {
    await bounded(what, promise);
  } catch (e) {
    return e as PingppErrorLike & Error;
  }
  throw new Error(`${what} should have failed`);
}

describeEngines('official Node SDK (pingpp)', (engine) => {
  let h: Harness;
  let pingpp: PingppClient;
  let port: number;

  beforeAll(async () => {
    h = await Harness.start(engine);
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    port = (h.app.server.address() as AddressInfo).port;
    pingpp = pingppFactory(h.testKey);
    pingpp.setHost('127.0.0.1', port, 'http');
  });
  afterAll(async () => h?.close());

  it('creates a user, grants a bonus, and reads the user, the bonus and the balance transactions', async () => {
    const user = await bounded('users.create', pingpp.users.create(h.appId, { id: 'sdk_alice', name: 'Alice', email: null, metadata: { level: 1 } }));
    expect(user).toMatchObject({ object: 'user', id: 'sdk_alice', app: h.appId, name: 'Alice', available_balance: 0, withdrawable_balance: 0, disabled: false, livemode: false });

    const bonus = await bounded(
      'balanceBonuses.create',
      pingpp.balanceBonuses.create(h.appId, { user: 'sdk_alice', amount: 1200, order_no: 'sdkbonus0001', description: 'welcome', metadata: { campaign: 'spring' } }),
    );
    expect(bonus).toMatchObject({ object: 'balance_bonus', user: 'sdk_alice', amount: 1200, order_no: 'sdkbonus0001', paid: true, metadata: { campaign: 'spring' } });
    expect(typeof bonus.balance_transaction).toBe('string');

    const again = await bounded('users.retrieve', pingpp.users.retrieve(h.appId, 'sdk_alice'));
    expect(again).toMatchObject({ id: 'sdk_alice', available_balance: 1200, withdrawable_balance: 0 });

    const fetched = await bounded('balanceBonuses.retrieve', pingpp.balanceBonuses.retrieve(h.appId, bonus.id));
    expect(fetched).toEqual(bonus);

    const lines = await bounded('balanceTransactions.list', pingpp.balanceTransactions.list(h.appId, { user: 'sdk_alice' }));
    expect(lines).toMatchObject({ object: 'list', url: `/v1/apps/${h.appId}/balance_transactions`, has_more: false });
    expect(lines.data).toEqual([
      expect.objectContaining({ object: 'balance_transaction', id: bonus.balance_transaction, user: 'sdk_alice', type: 'receipts_extra', amount: 1200, available_balance: 1200, source: bonus.id }),
    ]);
    const line = await bounded('balanceTransactions.retrieve', pingpp.balanceTransactions.retrieve(h.appId, bonus.balance_transaction));
    expect(line).toMatchObject({ id: bonus.balance_transaction, type: 'receipts_extra' });

    const bonuses = await bounded('balanceBonuses.list', pingpp.balanceBonuses.list(h.appId, { user: 'sdk_alice', page: 1, per_page: 10 }));
    expect((bonuses.data as { id: string }[]).map((b) => b.id)).toEqual([bonus.id]);

    expect((await h.verify()).ok).toBe(true);
  });

  it('updates a user: profile fields, then `disabled` alone, then back', async () => {
    await bounded('users.create', pingpp.users.create(h.appId, { id: 'sdk_bob' }));
    const updated = await bounded('users.update', pingpp.users.update(h.appId, 'sdk_bob', { name: 'Bob', mobile: '13800000000', metadata: { vip: true } }));
    expect(updated).toMatchObject({ id: 'sdk_bob', name: 'Bob', mobile: '13800000000', metadata: { vip: true }, disabled: false });

    const disabled = await bounded('users.update disabled', pingpp.users.update(h.appId, 'sdk_bob', { disabled: true }));
    expect(disabled).toMatchObject({ id: 'sdk_bob', disabled: true, name: 'Bob' });
    const refused = await sdkError('bonus to a disabled user', pingpp.balanceBonuses.create(h.appId, { user: 'sdk_bob', amount: 1, order_no: 'sdkbonus0002' }));
    expect(refused).toBeInstanceOf(pingppErrors.PingppInvalidRequestError);
    expect(refused.param).toBe('user');

    const enabled = await bounded('users.update enabled', pingpp.users.update(h.appId, 'sdk_bob', { disabled: false }));
    expect(enabled.disabled).toBe(false);
  });

  it('lists with per_page and created[gte]', async () => {
    for (let i = 0; i < 4; i++) await bounded('users.create', pingpp.users.create(h.appId, { id: `sdk_page_${i}` }));
    const page = await bounded('users.list', pingpp.users.list(h.appId, { per_page: 3 }));
    expect(page).toMatchObject({ object: 'list', url: `/v1/apps/${h.appId}/users`, has_more: true });
    expect(page.data).toHaveLength(3);

    const newest = (page.data as { created: number }[])[0]!.created;
    const since = await bounded('users.list created[gte]', pingpp.users.list(h.appId, { per_page: 100, created: { gte: newest } }));
    const ids = (since.data as { id: string; created: number }[]).map((u) => u.id);
    expect(ids).toContain('sdk_page_3');
    expect((since.data as { created: number }[]).every((u) => u.created >= newest)).toBe(true);
    const future = await bounded('users.list created[gte] future', pingpp.users.list(h.appId, { created: { gte: newest + 3600 } }));
    expect(future.data).toEqual([]);
  });

  it('makes many consecutive calls on the default keep-alive agent without hanging', async () => {
    // pingpp-nodejs writes its body on the socket's `connect` event; a reused keep-alive socket never
    // fires it, so without `Connection: close` from the server the 2nd call would hang.
    await bounded('users.create', pingpp.users.create(h.appId, { id: 'sdk_loop' }));
    for (let i = 0; i < 8; i++) {
      const created = await bounded(`bonus #${i}`, pingpp.balanceBonuses.create(h.appId, { user: 'sdk_loop', amount: 1, order_no: `sdkloop${i}` }));
      expect(created.order_no).toBe(`sdkloop${i}`);
      const read = await bounded(`retrieve #${i}`, pingpp.users.retrieve(h.appId, 'sdk_loop'));
      expect(read.available_balance).toBe(i + 1);
    }
  });

  it('maps errors: 401 → PingppAuthenticationError, 400 → PingppInvalidRequestError with .param, 404 with param id', async () => {
    await bounded('users.create', pingpp.users.create(h.appId, { id: 'sdk_err' }));
    await bounded('bonus', pingpp.balanceBonuses.create(h.appId, { user: 'sdk_err', amount: 50, order_no: 'sdkerr0001' }));
    const stranger = pingppFactory('sk_test_' + 'x'.repeat(24));
    stranger.setHost('127.0.0.1', port, 'http');
    const auth = await sdkError('bad key', stranger.users.retrieve(h.appId, 'sdk_err'));
    expect(auth).toBeInstanceOf(pingppErrors.PingppAuthenticationError);
    expect(auth.rawType).toBe('invalid_request_error');
    expect(auth.message).toMatch(/sk_test_/);

    const bad = await sdkError('amount 0', pingpp.balanceBonuses.create(h.appId, { user: 'sdk_err', amount: 0, order_no: 'sdkbad0001' }));
    expect(bad).toBeInstanceOf(pingppErrors.PingppInvalidRequestError);
    expect(bad.param).toBe('amount');
    expect(typeof bad.message).toBe('string');

    const dup = await sdkError('duplicate order_no', pingpp.balanceBonuses.create(h.appId, { user: 'sdk_err', amount: 999, order_no: 'sdkerr0001' }));
    expect(dup).toBeInstanceOf(pingppErrors.PingppInvalidRequestError);
    expect(dup.param).toBe('order_no');

    const missing = await sdkError('unknown user', pingpp.users.retrieve(h.appId, 'sdk_nobody'));
    expect(missing).toBeInstanceOf(pingppErrors.PingppInvalidRequestError);
    expect(missing.param).toBe('id');

    const foreignApp = await sdkError('unknown app', pingpp.users.retrieve('app_doesnotexist0000', 'sdk_err'));
    expect(foreignApp).toBeInstanceOf(pingppErrors.PingppInvalidRequestError);
    expect(foreignApp.param).toBe('app');

    // After all those errors the balance is what the successful calls made it.
    const after = await bounded('users.retrieve', pingpp.users.retrieve(h.appId, 'sdk_err'));
    expect(after.available_balance).toBe(50);
    expect((await h.verify()).ok).toBe(true);
  });
});
