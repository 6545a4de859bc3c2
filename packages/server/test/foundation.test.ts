import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/services/accounts.ts';
import { describeEngines, Harness } from './helpers/harness.ts';

describeEngines('foundation', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start(engine);
  });
  afterAll(async () => h?.close());

  describe('auth', () => {
    it('accepts Basic with and without the trailing colon, and Bearer', async () => {
      for (const authorization of [
        'Basic ' + Buffer.from(h.testKey + ':').toString('base64'),
        'Basic ' + Buffer.from(h.testKey).toString('base64'),
        'Bearer ' + h.testKey,
      ]) {
        const res = await h.request('GET', h.appPath('/users/0'), { key: null, headers: { authorization } });
        expect(res.status).toBe(200);
        expect(res.json.id).toBe('0');
      }
    });

    it('answers 401 with a masked key and never echoes the whole key', async () => {
      const bad = 'sk_test_' + 'A'.repeat(24);
      const res = await h.request('GET', h.appPath('/users/0'), { key: bad });
      expect(res.status).toBe(401);
      expect(res.json.error.type).toBe('invalid_request_error');
      expect(res.body).not.toContain(bad);
      expect(res.json.error.message).toContain('sk_test_AAAA');
      const none = await h.request('GET', h.appPath('/users/0'), { key: null });
      expect(none.status).toBe(401);
    });

    it("answers 404 for another account's app, as for an app that does not exist", async () => {
      const other = await createApp(h.rt, { name: 'other', account: 'someone-else' });
      const foreign = await h.request('GET', `/v1/apps/${other.id}/users/0`);
      const missing = await h.request('GET', `/v1/apps/app_doesnotexist0000/users/0`);
      expect(foreign.status).toBe(404);
      expect(missing.status).toBe(404);
      expect(foreign.json.error.param).toBe('app');
      // Both look the same to the caller apart from the id they named.
      expect(foreign.json.error.message.replace(other.id, 'X')).toBe(missing.json.error.message.replace('app_doesnotexist0000', 'X'));
    });

    it('keeps test and live apart, and the key decides livemode', async () => {
      await h.createUser('mode_user');
      const live = await h.request('GET', h.appPath('/users/mode_user'), { key: h.liveKey });
      expect(live.status).toBe(404);
      const createdLive = await h.createUser('mode_user', {}, h.liveKey);
      expect(createdLive.livemode).toBe(true);
      const test = await h.request('GET', h.appPath('/users/mode_user'));
      expect(test.json.livemode).toBe(false);
    });

    it('routes the Node SDK trailing "?" and answers it with Connection: close', async () => {
      const res = await h.request('GET', h.appPath('/users/0?'), { headers: { 'user-agent': 'Pingpp/v1 NodeBindings/2.1.6' } });
      expect(res.status).toBe(200);
      expect(res.headers.connection).toBe('close');
    });

    it('localises messages: English when Accept-Language starts with en', async () => {
      const zh = await h.request('GET', h.appPath('/users/nobody'));
      const en = await h.request('GET', h.appPath('/users/nobody'), { headers: { 'accept-language': 'en-US' } });
      expect(zh.json.error.message).toBe('未找到 user : nobody。');
      expect(en.json.error.message).toBe('No such user: nobody.');
    });
  });

  describe('users', () => {
    it('creates, retrieves, updates and lists users', async () => {
      const u = await h.createUser('alice', { name: '爱丽丝', email: null, gender: 'FEMALE', metadata: { tier: 'gold' } });
      expect(u).toMatchObject({
        id: 'alice', object: 'user', app: h.appId, type: 'customer', available_balance: 0, withdrawable_balance: 0,
        disabled: false, identified: false, livemode: false, related_app: null, settle_accounts: [], metadata: { tier: 'gold' },
        name: '爱丽丝', email: null, gender: 'FEMALE',
      });
      expect(Number.isInteger(u.created)).toBe(true);

      const upd = await h.request('PUT', h.appPath('/users/alice'), { body: { mobile: '13800000000', metadata: null } });
      expect(upd.status).toBe(200);
      expect(upd.json).toMatchObject({ mobile: '13800000000', metadata: {}, name: '爱丽丝' });

      const disabled = await h.request('PUT', h.appPath('/users/alice'), { body: { disabled: true } });
      expect(disabled.json.disabled).toBe(true);
      const mixed = await h.request('PUT', h.appPath('/users/alice'), { body: { disabled: false, name: 'x' } });
      expect(mixed.status).toBe(400);
      expect(mixed.json.error.param).toBe('disabled');
      const enabled = await h.request('PUT', h.appPath('/users/alice'), { body: { disabled: false } });
      expect(enabled.json.disabled).toBe(false);

      const dup = await h.request('POST', h.appPath('/users'), { body: { id: 'alice' } });
      expect(dup.status).toBe(400);
      expect(dup.json.error.param).toBe('id');
    });

    it('paginates with page/per_page and with limit/starting_after/ending_before', async () => {
      for (let i = 0; i < 5; i++) await h.createUser(`page_${i}`);
      const all = await h.request('GET', h.appPath('/users?per_page=100'));
      const ids: string[] = all.json.data.map((u: { id: string }) => u.id);
      expect(all.json).toMatchObject({ object: 'list', url: `/v1/apps/${h.appId}/users`, has_more: false });
      expect(ids.length).toBeGreaterThanOrEqual(6);

      const p1 = await h.request('GET', h.appPath('/users?page=1&per_page=2'));
      const p2 = await h.request('GET', h.appPath('/users?page=2&per_page=2'));
      expect(p1.json.has_more).toBe(true);
      expect([...p1.json.data, ...p2.json.data].map((u: { id: string }) => u.id)).toEqual(ids.slice(0, 4));

      const c1 = await h.request('GET', h.appPath('/users?limit=3'));
      const c2 = await h.request('GET', h.appPath(`/users?limit=3&starting_after=${c1.json.data[2].id}`));
      expect([...c1.json.data, ...c2.json.data].map((u: { id: string }) => u.id)).toEqual(ids.slice(0, 6));
      const back = await h.request('GET', h.appPath(`/users?limit=2&ending_before=${c2.json.data[0].id}`));
      expect(back.json.data.map((u: { id: string }) => u.id)).toEqual(ids.slice(1, 3));

      const badCursor = await h.request('GET', h.appPath('/users?limit=2&starting_after=nope'));
      expect(badCursor.status).toBe(400);
      expect(badCursor.json.error.param).toBe('starting_after');
    });
  });

  describe('money in and balance transactions', () => {
    it('a bonus raises available but not withdrawable; a settlement raises both', async () => {
      await h.createUser('bob');
      const bonus = await h.request('POST', h.appPath('/balance_bonuses'), {
        body: { user: 'bob', amount: 500, order_no: 'bonus_bob_1', description: '注册奖励', metadata: { campaign: 'new' } },
      });
      expect(bonus.status).toBe(200);
      expect(bonus.json).toMatchObject({ object: 'balance_bonus', user: 'bob', amount: 500, paid: true, refunded: false, amount_refunded: 0, livemode: false });
      const settle = await h.request('POST', h.appPath('/balance_settlements'), { body: { user: 'bob', amount: 1200, order_no: 'settle_bob_1' } });
      expect(settle.status).toBe(200);
      expect(settle.json).toMatchObject({ object: 'balance_settlement', status: 'succeeded', amount: 1200 });

      const bob = await h.request('GET', h.appPath('/users/bob'));
      expect(bob.json).toMatchObject({ available_balance: 1700, withdrawable_balance: 1200 });

      const lines = await h.request('GET', h.appPath('/balance_transactions?user=bob'));
      expect(lines.json.data.map((l: Record<string, unknown>) => [l.type, l.amount, l.available_balance, l.source])).toEqual([
        ['credited', 1200, 1700, settle.json.id],
        ['receipts_extra', 500, 500, bonus.json.id],
      ]);
      const one = await h.request('GET', h.appPath(`/balance_transactions/${bonus.json.balance_transaction}`));
      expect(one.json).toMatchObject({ object: 'balance_transaction', id: bonus.json.balance_transaction, user: 'bob', type: 'receipts_extra' });

      expect((await h.request('GET', h.appPath(`/balance_bonuses/${bonus.json.id}`))).json).toEqual(bonus.json);
      expect((await h.request('GET', h.appPath(`/balance_settlements/${settle.json.id}`))).json).toEqual(settle.json);
      const bonuses = await h.request('GET', h.appPath('/balance_bonuses?user=bob'));
      expect(bonuses.json.data.map((b: { id: string }) => b.id)).toEqual([bonus.json.id]);
      expect((await h.verify()).ok).toBe(true);
    });

    it('an identical retry of a create returns the first object; other parameters are a duplicate', async () => {
      await h.createUser('carol');
      const body = { user: 'carol', amount: 300, order_no: 'retry_1' };
      const first = await h.request('POST', h.appPath('/balance_bonuses'), { body });
      const again = await h.request('POST', h.appPath('/balance_bonuses'), { body: { order_no: 'retry_1', amount: 300, user: 'carol' } });
      expect(again.status).toBe(200);
      expect(again.json.id).toBe(first.json.id);
      const other = await h.request('POST', h.appPath('/balance_bonuses'), { body: { ...body, amount: 301 } });
      expect(other.status).toBe(400);
      expect(other.json.error.param).toBe('order_no');
      const carol = await h.request('GET', h.appPath('/users/carol'));
      expect(carol.json.available_balance).toBe(300);
    });

    it('concurrent identical creates credit once', async () => {
      await h.createUser('dave');
      const body = { user: 'dave', amount: 100, order_no: 'race_1' };
      const results = await Promise.all(Array.from({ length: 10 }, () => h.request('POST', h.appPath('/balance_settlements'), { body })));
      expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
      expect(results.every((r) => r.status === 200)).toBe(true);
      const dave = await h.request('GET', h.appPath('/users/dave'));
      expect(dave.json.withdrawable_balance).toBe(100);
      expect((await h.verify()).ok).toBe(true);
    });
  });

  it('GET /healthz answers without a key', async () => {
    const res = await h.request('GET', '/healthz', { key: null });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('ok');
  });
});
