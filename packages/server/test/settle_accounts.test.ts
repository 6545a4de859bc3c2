import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEngines, Harness } from './helpers/harness.ts';
import { officialSdk, type PingppClient } from './helpers/pingpp.ts';
import { usableSettleAccount } from '../src/services/settle_accounts.ts';
import { MAX_SETTLE_ACCOUNTS_PER_USER } from '../src/services/settle_accounts_view.ts';
import type { Scope } from '../src/services/common.ts';


const BANK = {
  account: '6214888888888865',
  name: '张三哥',
  type: 'b2c',
  open_bank_code: '0308',
  open_bank: '招商银行',
  card_type: 0,
  prov: '上海',
  city: '上海',
  sub_bank: '招商银行上海分行',
  sub_bank_code: '308290003020',
  mobile: '13812344557',
};

describeEngines('settle_accounts', (engine) => {
  let h: Harness;
  let sdk: PingppClient;
  const path = (user: string, rest = '') => h.appPath(`/users/${user}/settle_accounts${rest}`);
  const bind = (user: string, body: unknown, key?: string) => h.request('POST', path(user), { body, ...(key ? { key } : {}) });
  const userPk = async (id: string, livemode = false) =>
    (await h.rt.store.db.selectFrom('users').select('pk').where('app', '=', h.appId).where('livemode', '=', livemode ? 1 : 0).where('id', '=', id).executeTakeFirstOrThrow()).pk;
  const scope = (livemode = false): Scope => ({ accountId: h.merchant.account, app: h.appId, livemode, requestId: null });

  beforeAll(async () => {
    h = await Harness.start(engine);
    sdk = await officialSdk(h);
  });
  afterAll(async () => h?.close());

  describe('with the official Node SDK', () => {
    it('creates, retrieves, lists and deletes; responses mask the recipient and the user shows live accounts', async () => {
      await h.createUser('sdk_user');
      const bank = await sdk.settleAccounts.create(h.appId, 'sdk_user', { channel: 'bank_account', recipient: BANK });
      expect(bank).toMatchObject({ object: 'settle_account', channel: 'bank_account', livemode: false });
      expect(bank.id).toMatch(/^[1-9]\d{18}$/);
      expect(Number.isInteger(bank.created)).toBe(true);
      expect(bank.recipient).toEqual({
        ...BANK,
        account: '621488***8865',
        name: '***哥',
        mobile: '138****4557',
      });

      const alipay = await sdk.settleAccounts.create(h.appId, 'sdk_user', {
        channel: 'alipay',
        recipient: { account: 'payee@example.com', name: '李四', type: 'b2c', account_type: 'ALIPAY_LOGONID' },
      });
      expect(alipay.recipient).toEqual({ account: 'payee@***.com', name: '***四', type: 'b2c', account_type: 'ALIPAY_LOGONID' });

      expect(await sdk.settleAccounts.retrieve(h.appId, 'sdk_user', bank.id)).toEqual(bank);
      const list = await sdk.settleAccounts.list(h.appId, 'sdk_user', { page: 1, per_page: 10 });
      expect(list).toMatchObject({ object: 'list', url: `/v1/apps/${h.appId}/users/sdk_user/settle_accounts`, has_more: false });
      expect(list.data.map((s: { id: string }) => s.id)).toEqual([alipay.id, bank.id]);

      // The user object carries the same masked accounts, newest first.
      const user = await h.request('GET', h.appPath('/users/sdk_user'));
      expect(user.json.settle_accounts).toEqual([alipay, bank]);

      const deleted = await sdk.settleAccounts.delete(h.appId, 'sdk_user', bank.id);
      expect(deleted).toEqual({ id: bank.id, object: 'settle_account', deleted: true });
      expect((await h.request('GET', h.appPath('/users/sdk_user'))).json.settle_accounts).toEqual([alipay]);
      expect((await sdk.settleAccounts.list(h.appId, 'sdk_user')).data.map((s: { id: string }) => s.id)).toEqual([alipay.id]);

      // The row stays with its full recipient: withdrawals that used it still point at it.
      const row = await h.rt.store.db.selectFrom('settle_accounts').selectAll().where('id', '=', bank.id).executeTakeFirstOrThrow();
      expect(row.deleted).toBe(1);
      expect(JSON.parse(row.recipient)).toEqual(BANK);
    });

    it('maps errors to PingppInvalidRequest with param', async () => {
      await h.createUser('sdk_err');
      const err = await sdk.settleAccounts.create(h.appId, 'sdk_err', { channel: 'alipay', recipient: { account: 'a@b.cn' } }).catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'PingppInvalidRequest', rawType: 'invalid_request_error', param: 'recipient[name]' });
      const missing = await sdk.settleAccounts.retrieve(h.appId, 'sdk_err', '320000').catch((e: unknown) => e);
      expect(missing).toMatchObject({ type: 'PingppInvalidRequest', param: 'id', message: '未找到 settle_account : 320000。' });
    });
  });

  describe('create', () => {
    it('accepts every channel with its required keys only, and drops optional keys sent as null', async () => {
      await h.createUser('channels');
      const cases: [string, Record<string, unknown>][] = [
        ['alipay', { account: '2088102122524333', name: '王五' }],
        ['wx', { account: 'o9zpMs9jIaLynQY9N6yxcZ' }],
        ['wx_pub', { account: 'o9zpMs9jIaLynQY9N6yxcY', name: '', force_check: false, type: 'b2c' }],
        ['wx_lite', { account: 'o9zpMs9jIaLynQY9N6yxcX', name: '赵六', force_check: true }],
        ['bank_account', { account: '6214850211111111', name: '钱七', type: 'b2b', open_bank_code: '0102' }],
        ['alipay', { account: 'x@example.com', name: '孙八', type: null, account_type: null }],
        ['alipay', { account: '2088102122524334', name: '吴十', account_type: 'ALIPAY_USERID' }],
      ];
      for (const [channel, recipient] of cases) {
        const res = await bind('channels', { channel, recipient });
        expect(res.status, `${channel} ${JSON.stringify(recipient)} → ${res.body}`).toBe(200);
        expect(res.json.channel).toBe(channel);
        const stored = await h.rt.store.db.selectFrom('settle_accounts').select('recipient').where('id', '=', res.json.id).executeTakeFirstOrThrow();
        expect(JSON.parse(stored.recipient)).toEqual(Object.fromEntries(Object.entries(recipient).filter(([, v]) => v !== null)));
      }
    });

    it('binding the same account again returns the existing binding (safe client retries)', async () => {
      await h.createUser('rebind');
      const body = { channel: 'wx_pub', recipient: { account: 'oRebind000000000000000000001', name: '周九' } };
      const first = await bind('rebind', body);
      const again = await bind('rebind', { recipient: { name: '周九', account: 'oRebind000000000000000000001' }, channel: 'wx_pub' });
      expect(again.json.id).toBe(first.json.id);
      const otherChannel = await bind('rebind', { ...body, channel: 'wx_lite' });
      expect(otherChannel.json.id).not.toBe(first.json.id);
      // After a delete, the same account binds as a new settle_account.
      await h.request('DELETE', path('rebind', `/${first.json.id}`));
      const fresh = await bind('rebind', body);
      expect(fresh.status).toBe(200);
      expect(fresh.json.id).not.toBe(first.json.id);
    });

    it('bounds live settle accounts per user; deleting one makes room', async () => {
      await h.createUser('many');
      const ids: string[] = [];
      for (let i = 0; i < MAX_SETTLE_ACCOUNTS_PER_USER; i++) {
        const res = await bind('many', { channel: 'wx', recipient: { account: `oMany${i}` } });
        expect(res.status).toBe(200);
        ids.push(res.json.id);
      }
      const before = await h.snapshot();
      const over = await bind('many', { channel: 'wx', recipient: { account: 'oManyOver' } });
      expect(over.status).toBe(400);
      expect(over.json.error).toMatchObject({ type: 'invalid_request_error', param: 'user', code: 'settle_account_limit' });
      expect(await h.snapshot()).toEqual(before);

      const user = await h.request('GET', h.appPath('/users/many'));
      expect(user.json.settle_accounts).toHaveLength(MAX_SETTLE_ACCOUNTS_PER_USER);

      await h.request('DELETE', path('many', `/${ids[0]}`));
      expect((await bind('many', { channel: 'wx', recipient: { account: 'oManyOver' } })).status).toBe(200);
    });

    it('holds the bound under concurrent binds', async () => {
      await h.createUser('racer');
      const room = 3;
      for (let i = 0; i < MAX_SETTLE_ACCOUNTS_PER_USER - room; i++) await bind('racer', { channel: 'wx', recipient: { account: `oRacer${i}` } });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => bind('racer', { channel: 'alipay', recipient: { account: `race${i}@example.com`, name: '竞' } })),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(room);
      expect(results.filter((r) => r.status === 400).every((r) => r.json.error.code === 'settle_account_limit')).toBe(true);
      const count = await h.rt.store.db.selectFrom('settle_accounts').select((eb) => eb.fn.countAll<number>().as('n'))
        .where('user_pk', '=', await userPk('racer')).where('deleted', '=', 0).executeTakeFirstOrThrow();
      expect(Number(count.n)).toBe(MAX_SETTLE_ACCOUNTS_PER_USER);
    });

    it('answers 404 naming user for an unknown user, 400 for a disabled user and for the system user', async () => {
      const body = { channel: 'wx', recipient: { account: 'oNobody' } };
      await h.createUser('off');
      await h.request('PUT', h.appPath('/users/off'), { body: { disabled: true } });
      const snap = await h.snapshot();
      const unknown = await bind('nobody', body);
      expect(unknown.status).toBe(404);
      expect(unknown.json.error).toEqual({ type: 'invalid_request_error', code: 'resource_missing', param: 'user', message: '未找到 user : nobody。' });
      const disabled = await bind('off', body);
      expect(disabled.status).toBe(400);
      expect(disabled.json.error).toMatchObject({ param: 'user', code: 'user_disabled' });
      const system = await bind('0', body);
      expect(system.status).toBe(400);
      expect(system.json.error.param).toBe('user');
      expect(await h.snapshot()).toEqual(snap);
      // A disabled user's accounts can still be read.
      expect((await h.request('GET', path('off'))).status).toBe(200);
    });

    describe('invalid input answers 400 naming the parameter and changes nothing', () => {
      const alipay = { account: 'a@example.com', name: '甲' };
      const cases: [string, unknown, string][] = [
        ['unknown channel', { channel: 'unionpay', recipient: alipay }, 'channel'],
        ['channel not a string', { channel: 1, recipient: alipay }, 'channel'],
        ['missing channel', { recipient: alipay }, 'channel'],
        ['missing recipient', { channel: 'alipay' }, 'recipient'],
        ['recipient not an object', { channel: 'alipay', recipient: 'a@example.com' }, 'recipient'],
        ['recipient an array', { channel: 'alipay', recipient: [] }, 'recipient'],
        ['unknown top-level key', { channel: 'alipay', recipient: alipay, extra: {} }, 'extra'],
        ['alipay without account', { channel: 'alipay', recipient: { name: '甲' } }, 'recipient[account]'],
        ['alipay without name', { channel: 'alipay', recipient: { account: 'a@example.com' } }, 'recipient[name]'],
        ['alipay empty account', { channel: 'alipay', recipient: { ...alipay, account: '' } }, 'recipient[account]'],
        ['alipay bad type', { channel: 'alipay', recipient: { ...alipay, type: 'c2c' } }, 'recipient[type]'],
        ['alipay bad account_type', { channel: 'alipay', recipient: { ...alipay, account_type: 'EMAIL' } }, 'recipient[account_type]'],
        ['alipay ALIPAY_USERID not a 2088 id', { channel: 'alipay', recipient: { ...alipay, account_type: 'ALIPAY_USERID' } }, 'recipient[account]'],
        ['alipay unknown key', { channel: 'alipay', recipient: { ...alipay, open_bank_code: '0308' } }, 'recipient[open_bank_code]'],
        ['alipay name too long', { channel: 'alipay', recipient: { ...alipay, name: '名'.repeat(65) } }, 'recipient[name]'],
        ['wx without account', { channel: 'wx', recipient: { name: '乙' } }, 'recipient[account]'],
        ['wx_pub without account', { channel: 'wx_pub', recipient: {} }, 'recipient[account]'],
        ['wx_lite force_check not boolean', { channel: 'wx_lite', recipient: { account: 'o1', force_check: 'true' } }, 'recipient[force_check]'],
        ['wx type b2b', { channel: 'wx', recipient: { account: 'o1', type: 'b2b' } }, 'recipient[type]'],
        ['wx open_id spelling', { channel: 'wx', recipient: { account: 'o1', open_id: 'o1' } }, 'recipient[open_id]'],
        ['bank without name', { channel: 'bank_account', recipient: { ...BANK, name: undefined } }, 'recipient[name]'],
        ['bank without type', { channel: 'bank_account', recipient: { ...BANK, type: undefined } }, 'recipient[type]'],
        ['bank without open_bank_code', { channel: 'bank_account', recipient: { ...BANK, open_bank_code: undefined } }, 'recipient[open_bank_code]'],
        ['bank card_type 2', { channel: 'bank_account', recipient: { ...BANK, card_type: 2 } }, 'recipient[card_type]'],
        ['bank card_type string', { channel: 'bank_account', recipient: { ...BANK, card_type: '1' } }, 'recipient[card_type]'],
        ['bank card_type fractional', { channel: 'bank_account', recipient: { ...BANK, card_type: 0.5 } }, 'recipient[card_type]'],
        ['bank bad mobile', { channel: 'bank_account', recipient: { ...BANK, mobile: 'call me' } }, 'recipient[mobile]'],
        ['bank unknown key', { channel: 'bank_account', recipient: { ...BANK, useof: 'salary' } }, 'recipient[useof]'],
        ['bank account_type (an alipay key)', { channel: 'bank_account', recipient: { ...BANK, account_type: 'ALIPAY_USERID' } }, 'recipient[account_type]'],
      ];
      it.each(cases)('%s', async (_name, body, param) => {
        const user = await h.createUser(`inv_${Math.random().toString(36).slice(2, 10)}`);
        const before = await h.snapshot();
        const res = await bind(user.id, body);
        expect(res.status, res.body).toBe(400);
        expect(res.json.error.type).toBe('invalid_request_error');
        expect(res.json.error.param).toBe(param);
        expect(typeof res.json.error.message).toBe('string');
        expect(await h.snapshot()).toEqual(before);
      });
    });
  });

  describe('retrieve, list, delete', () => {
    it("retrieve and delete only reach the path user's live accounts", async () => {
      await h.createUser('owner');
      await h.createUser('stranger');
      const sa = (await bind('owner', { channel: 'alipay', recipient: { account: 'owner@example.com', name: '主' } })).json;

      const foreign = await h.request('GET', path('stranger', `/${sa.id}`));
      expect(foreign.status).toBe(404);
      expect(foreign.json.error).toMatchObject({ param: 'id', code: 'resource_missing' });
      expect((await h.request('GET', path('nobody', `/${sa.id}`))).json.error.param).toBe('user');
      expect((await h.request('GET', path('nobody'))).status).toBe(404);

      const before = await h.snapshot();
      const foreignDelete = await h.request('DELETE', path('stranger', `/${sa.id}`));
      expect(foreignDelete.status).toBe(404);
      expect(foreignDelete.json.error.param).toBe('id');
      const unknownUser = await h.request('DELETE', path('nobody', `/${sa.id}`));
      expect(unknownUser.status).toBe(404);
      expect(unknownUser.json.error.param).toBe('user');
      expect(await h.snapshot()).toEqual(before);
      expect((await h.request('GET', path('owner', `/${sa.id}`))).status).toBe(200);

      // Node sends DELETE …/{id}? — the trailing "?" routes normally.
      const del = await h.request('DELETE', path('owner', `/${sa.id}?`), { headers: { 'user-agent': 'Pingpp/v1 NodeBindings/2.1.6' } });
      expect(del.status).toBe(200);
      expect(del.json).toEqual({ id: sa.id, object: 'settle_account', deleted: true });

      const rowBefore = await h.rt.store.db.selectFrom('settle_accounts').selectAll().where('id', '=', sa.id).executeTakeFirstOrThrow();
      const again = await h.request('DELETE', path('owner', `/${sa.id}`));
      expect(again.status).toBe(404);
      expect(again.json.error.param).toBe('id');
      expect(await h.rt.store.db.selectFrom('settle_accounts').selectAll().where('id', '=', sa.id).executeTakeFirstOrThrow()).toEqual(rowBefore);
      expect((await h.request('GET', path('owner', `/${sa.id}`))).status).toBe(404);
    });

    it('concurrent deletes of one account: exactly one succeeds', async () => {
      await h.createUser('twice');
      const sa = (await bind('twice', { channel: 'wx', recipient: { account: 'oTwice' } })).json;
      const results = await Promise.all(Array.from({ length: 5 }, () => h.request('DELETE', path('twice', `/${sa.id}`))));
      expect(results.map((r) => r.status).sort()).toEqual([200, 404, 404, 404, 404]);
    });

    it('paginates with page/per_page and with cursors, newest first', async () => {
      await h.createUser('pager');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.unshift((await bind('pager', { channel: 'wx', recipient: { account: `oPager${i}` } })).json.id);
      const p1 = await h.request('GET', path('pager', '?page=1&per_page=2'));
      const p3 = await h.request('GET', path('pager', '?page=3&per_page=2'));
      expect(p1.json.has_more).toBe(true);
      expect(p1.json.data.map((s: { id: string }) => s.id)).toEqual(ids.slice(0, 2));
      expect(p3.json.has_more).toBe(false);
      expect(p3.json.data.map((s: { id: string }) => s.id)).toEqual(ids.slice(4));
      const c = await h.request('GET', path('pager', `?limit=2&starting_after=${ids[1]}`));
      expect(c.json.data.map((s: { id: string }) => s.id)).toEqual(ids.slice(2, 4));
      const bad = await h.request('GET', path('pager', '?per_page=101'));
      expect(bad.status).toBe(400);
      expect(bad.json.error.param).toBe('per_page');
    });

    it('an unbound account still marks the place for the next page; another user\'s account does not', async () => {
      await h.createUser('unbinder');
      const ids: string[] = []; // newest first, as lists are
      for (let i = 0; i < 4; i++) ids.unshift((await bind('unbinder', { channel: 'wx', recipient: { account: `oUnbind${i}` } })).json.id);
      const p1 = await h.request('GET', path('unbinder', '?limit=2'));
      expect(p1.json.data.map((s: { id: string }) => s.id)).toEqual(ids.slice(0, 2));
      for (const id of ids.slice(0, 2)) expect((await h.request('DELETE', path('unbinder', `/${id}`))).status).toBe(200);
      const p2 = await h.request('GET', path('unbinder', `?limit=2&starting_after=${ids[1]}`));
      expect(p2.status, p2.body).toBe(200);
      expect({ ids: p2.json.data.map((s: { id: string }) => s.id), has_more: p2.json.has_more }).toEqual({ ids: ids.slice(2), has_more: false });
      const back = await h.request('GET', path('unbinder', `?limit=2&ending_before=${ids[2]}`));
      expect(back.json.data).toEqual([]);
      // The cursor is looked up among the path user's own accounts only.
      await h.createUser('bystander');
      const other = await h.request('GET', path('bystander', `?limit=2&starting_after=${ids[1]}`));
      expect(other.status).toBe(400);
      expect(other.json.error.param).toBe('starting_after');
    });

    it('test and live are separate: a test account is invisible to the live key', async () => {
      await h.createUser('twin');
      await h.createUser('twin', {}, h.liveKey);
      const sa = (await bind('twin', { channel: 'wx', recipient: { account: 'oTwin' } })).json;
      expect(sa.livemode).toBe(false);
      expect((await h.request('GET', path('twin', `/${sa.id}`), { key: h.liveKey })).status).toBe(404);
      expect((await h.request('DELETE', path('twin', `/${sa.id}`), { key: h.liveKey })).status).toBe(404);
      expect((await h.request('GET', path('twin'), { key: h.liveKey })).json.data).toEqual([]);
      const live = await bind('twin', { channel: 'wx', recipient: { account: 'oTwin' } }, h.liveKey);
      expect(live.json.livemode).toBe(true);
      expect(live.json.id).not.toBe(sa.id);
    });
  });

  describe('usableSettleAccount (for withdrawals)', () => {
    it('returns the unmasked recipient of a live account of that user', async () => {
      await h.createUser('payee');
      const sa = (await bind('payee', { channel: 'bank_account', recipient: BANK })).json;
      const usable = await usableSettleAccount(h.rt.store.db, scope(), await userPk('payee'), sa.id);
      expect(usable).toEqual({ id: sa.id, channel: 'bank_account', recipient: BANK });
    });

    it("refuses unknown, deleted, another user's and another mode's accounts with 400 settle_account", async () => {
      await h.createUser('payee2');
      await h.createUser('payee3');
      await h.createUser('payee2', {}, h.liveKey);
      const kept = (await bind('payee2', { channel: 'wx', recipient: { account: 'oKept' } })).json;
      const gone = (await bind('payee2', { channel: 'wx', recipient: { account: 'oGone' } })).json;
      await h.request('DELETE', path('payee2', `/${gone.id}`));
      const pk2 = await userPk('payee2');
      const attempts: [string, () => Promise<unknown>][] = [
        ['unknown', () => usableSettleAccount(h.rt.store.db, scope(), pk2, '320999')],
        ['deleted', () => usableSettleAccount(h.rt.store.db, scope(), pk2, gone.id)],
        ['other user', async () => usableSettleAccount(h.rt.store.db, scope(), await userPk('payee3'), kept.id)],
        ['other mode', async () => usableSettleAccount(h.rt.store.db, scope(true), await userPk('payee2', true), kept.id)],
        ['other app', () => usableSettleAccount(h.rt.store.db, { ...scope(), app: 'app_other0000000000' }, pk2, kept.id)],
      ];
      for (const [name, attempt] of attempts) {
        const err = await attempt().then(() => null, (e: unknown) => e);
        expect(err, name).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'settle_account' });
      }
    });
  });

  describe('users', () => {
    it('retrieve and list show up-to-date settle accounts; list filters by type and created', async () => {
      const u = await h.createUser('listed');
      const listed = async (query: string) =>
        (await h.request('GET', h.appPath(`/users?per_page=100${query}`))).json.data.find((x: { id: string }) => x.id === 'listed');
      expect((await listed('')).settle_accounts).toEqual([]);
      const sa = (await bind('listed', { channel: 'alipay', recipient: { account: '2088000000000001', name: '列' } })).json;
      expect((await h.request('GET', h.appPath('/users/listed'))).json.settle_accounts).toEqual([sa]);
      expect((await listed('')).settle_accounts).toEqual([sa]);
      expect((await listed('&type=customer'))?.id).toBe('listed');
      expect(await listed('&type=business')).toBeUndefined();
      expect((await listed(`&created[gte]=${u.created}`))?.id).toBe('listed');
      expect(await listed(`&created%5Bgt%5D=${u.created + 3600}`)).toBeUndefined();
      const badType = await h.request('GET', h.appPath('/users?type=merchant'));
      expect(badType.status).toBe(400);
      expect(badType.json.error.param).toBe('type');
      await h.request('DELETE', path('listed', `/${sa.id}`));
      expect((await listed('')).settle_accounts).toEqual([]);
    });
  });
});
