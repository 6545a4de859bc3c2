import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WithdrawalChannel } from '@tixian/sdk';
import { PayoutWorker } from '../src/channels/worker.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra } from './helpers/withdrawals.ts';

type Case = { name: string; method?: 'POST' | 'PUT' | 'GET'; path?: string; body?: unknown; status?: number; param?: string };

describeEngines('invalid withdrawal requests change nothing', (engine) => {
  let h: Harness;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    h = await Harness.start(engine, { config: { sandboxDelayMs: 0 } });
    await h.createUser('w_user');
    await h.fund('w_user', 100_000);
    await h.createUser('other_user');
    await h.createUser('off_user');
    await h.fund('off_user', 1000);
    await h.request('PUT', h.appPath('/users/off_user'), { body: { disabled: true } });
    const mk = async (orderNo: string) =>
      (await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'w_user', amount: 100, channel: 'alipay', order_no: orderNo, extra: seedExtra('alipay') } })).json.id as string;
    ids.canceled = await mk('canceledone');
    await h.request('PUT', h.appPath(`/withdrawals/${ids.canceled}`), { body: { status: 'canceled' } });
    ids.succeeded = await mk('succeededone');
    await h.request('PUT', h.appPath(`/withdrawals/${ids.succeeded}`), { body: { status: 'pending' } });
    await new PayoutWorker(h.rt).runOnce();
    ids.created = await mk('createdone');
    const foreign = await h.request('POST', h.appPath('/users/other_user/settle_accounts'), { body: { channel: 'alipay', recipient: { account: 'a@b.cn', name: '王五' } } });
    ids.foreignSettle = foreign.json.id;
    const deleted = await h.request('POST', h.appPath('/users/w_user/settle_accounts'), { body: { channel: 'alipay', recipient: { account: 'c@d.cn', name: '赵六' } } });
    ids.deletedSettle = deleted.json.id;
    await h.request('DELETE', h.appPath(`/users/w_user/settle_accounts/${ids.deletedSettle}`));
  });
  afterAll(async () => h?.close());

  const base = { user: 'w_user', amount: 1000, channel: 'alipay', order_no: 'valid123', extra: seedExtra('alipay') };
  const without = (k: string) => Object.fromEntries(Object.entries(base).filter(([key]) => key !== k));
  const withChannel = (channel: WithdrawalChannel, extra: Record<string, unknown>, orderNo = '1234567') => ({ ...base, channel, extra, order_no: orderNo });

  const perChannelCases = (): Case[] => {
    const out: Case[] = [];
    const required: Record<WithdrawalChannel, string[]> = {
      unionpay: ['account', 'name'],
      alipay: ['account', 'name'],
      wx: ['open_id'],
      wx_pub: ['open_id'],
      wx_lite: ['open_id'],
      allinpay: ['account', 'name', 'open_bank_code'],
      jdpay: ['account', 'name', 'open_bank_code'],
      custom: [],
    };
    for (const [channel, keys] of Object.entries(required) as [WithdrawalChannel, string[]][]) {
      for (const key of keys) {
        const extra = { ...seedExtra(channel) };
        delete extra[key];
        if (key === 'open_id') delete extra.openid;
        if (key === 'open_bank_code') delete extra.open_bank;
        out.push({ name: `${channel}: extra without ${key}`, body: withChannel(channel, extra), param: `extra[${key}]` });
      }
      out.push({ name: `${channel}: unknown extra key`, body: withChannel(channel, { ...seedExtra(channel), bank_pin: '1234' }), param: 'extra[bank_pin]' });
      out.push({ name: `${channel}: extra is not an object`, body: withChannel(channel, 'oops' as unknown as Record<string, unknown>), param: 'extra' });
    }
    out.push({ name: 'unionpay: account not a string', body: withChannel('unionpay', { ...seedExtra('unionpay'), account: 6225210207078888 }), param: 'extra[account]' });
    out.push({ name: 'wx: force_check not a boolean', body: withChannel('wx', { ...seedExtra('wx'), force_check: 'yes' }), param: 'extra[force_check]' });
    out.push({ name: 'allinpay: card_type 2', body: withChannel('allinpay', { ...seedExtra('allinpay'), card_type: 2 }), param: 'extra[card_type]' });
    out.push({ name: 'alipay: bad account_type', body: withChannel('alipay', { ...seedExtra('alipay'), account_type: 'EMAIL' }), param: 'extra[account_type]' });
    out.push({ name: 'unionpay: order_no with letters', body: withChannel('unionpay', seedExtra('unionpay'), 'ab12'), param: 'order_no' });
    out.push({ name: 'unionpay: order_no of 21 digits', body: withChannel('unionpay', seedExtra('unionpay'), '1'.repeat(21)), param: 'order_no' });
    out.push({ name: 'wx: order_no of 51 characters', body: withChannel('wx', seedExtra('wx'), 'a'.repeat(51)), param: 'order_no' });
    out.push({ name: 'alipay: order_no with a dash', body: withChannel('alipay', seedExtra('alipay'), 'abc-123'), param: 'order_no' });
    out.push({ name: 'custom: order_no with a dot', body: withChannel('custom', {}, 'abc.123'), param: 'order_no' });
    out.push({ name: 'jdpay: order_no of 65 characters', body: withChannel('jdpay', seedExtra('jdpay'), 'a'.repeat(65)), param: 'order_no' });
    return out;
  };

  const cases = (): Case[] => [
    { name: 'missing user', body: without('user'), param: 'user' },
    { name: 'missing amount', body: without('amount'), param: 'amount' },
    { name: 'missing order_no', body: without('order_no'), param: 'order_no' },
    { name: 'missing channel (and no settle_account)', body: without('channel'), param: 'channel' },
    { name: 'missing extra with channel', body: without('extra'), param: 'extra' },
    { name: 'amount as a string', body: { ...base, amount: '1000' }, param: 'amount' },
    { name: 'amount 0', body: { ...base, amount: 0 }, param: 'amount' },
    { name: 'amount negative', body: { ...base, amount: -5 }, param: 'amount' },
    { name: 'amount fractional', body: { ...base, amount: 10.5 }, param: 'amount' },
    { name: 'amount above 2^31-1', body: { ...base, amount: 2 ** 31 }, param: 'amount' },
    { name: 'user_fee negative', body: { ...base, user_fee: -1 }, param: 'user_fee' },
    { name: 'user_fee equal to amount', body: { ...base, user_fee: 1000 }, param: 'user_fee' },
    { name: 'user_fee above amount', body: { ...base, user_fee: 5000 }, param: 'user_fee' },
    { name: 'user_fee as a string', body: { ...base, user_fee: '5' }, param: 'user_fee' },
    { name: 'unknown channel', body: { ...base, channel: 'bitcoin' }, param: 'channel' },
    { name: 'description over 60 characters', body: { ...base, description: '提'.repeat(61) }, param: 'description' },
    { name: 'metadata an array', body: { ...base, metadata: ['a'] }, param: 'metadata' },
    { name: 'unknown top-level parameter', body: { ...base, currency: 'cny' }, param: 'currency' },
    { name: 'user is a number', body: { ...base, user: 42 }, param: 'user' },
    { name: 'unknown user', body: { ...base, user: 'ghost' }, param: 'user' },
    { name: 'disabled user', body: { ...base, user: 'off_user', amount: 100 }, param: 'user' },
    { name: 'system user "0"', body: { ...base, user: '0' }, param: 'user' },
    { name: 'insufficient withdrawable balance', body: { ...base, amount: 2_000_000 }, param: 'amount' },
    { name: 'duplicate order_no with other parameters', body: { ...base, order_no: 'createdone' }, param: 'order_no' },
    { name: 'unknown settle account', body: { user: 'w_user', amount: 100, order_no: 'sa1', settle_account: '320000' }, param: 'settle_account' },
    { name: "another user's settle account", body: { user: 'w_user', amount: 100, order_no: 'sa2', settle_account: ids.foreignSettle }, param: 'settle_account' },
    { name: 'deleted settle account', body: { user: 'w_user', amount: 100, order_no: 'sa3', settle_account: ids.deletedSettle }, param: 'settle_account' },
    ...perChannelCases(),
    { name: 'confirm of a canceled withdrawal', method: 'PUT', path: `/withdrawals/${ids.canceled}`, body: { status: 'pending' }, param: 'status' },
    { name: 'cancel of a succeeded withdrawal', method: 'PUT', path: `/withdrawals/${ids.succeeded}`, body: { status: 'canceled' }, param: 'status' },
    { name: 'confirm of a succeeded withdrawal', method: 'PUT', path: `/withdrawals/${ids.succeeded}`, body: { status: 'pending' }, param: 'status' },
    { name: 'status succeeded is not settable', method: 'PUT', path: `/withdrawals/${ids.created}`, body: { status: 'succeeded' }, param: 'status' },
    { name: 'update without status', method: 'PUT', path: `/withdrawals/${ids.created}`, body: {}, param: 'status' },
    { name: 'update with another field', method: 'PUT', path: `/withdrawals/${ids.created}`, body: { status: 'pending', amount: 1 }, param: 'amount' },
    { name: 'update of an unknown withdrawal', method: 'PUT', path: '/withdrawals/1700000000', body: { status: 'pending' }, status: 404, param: 'id' },
    { name: 'retrieve of an unknown withdrawal', method: 'GET', path: '/withdrawals/1700000000', status: 404, param: 'id' },
    { name: 'list with an unknown status', method: 'GET', path: '/withdrawals?status=done', param: 'status' },
    { name: 'list with per_page 0', method: 'GET', path: '/withdrawals?per_page=0', param: 'per_page' },
  ];

  it('every case answers 4xx Ping++ error JSON naming the parameter and leaves no trace', async () => {
    const all = cases();
    expect(all.length).toBeGreaterThanOrEqual(60);
    const before = await h.snapshot();
    for (const c of all) {
      const res = await h.request(c.method ?? 'POST', h.appPath(c.path ?? '/withdrawals'), c.body === undefined ? {} : { body: c.body });
      const label = `${c.name}: ${res.status} ${res.body}`;
      expect(res.status, label).toBe(c.status ?? 400);
      expect(Object.keys(res.json), label).toEqual(['error']);
      expect(res.json.error.type, label).toBe('invalid_request_error');
      expect(typeof res.json.error.message, label).toBe('string');
      for (const k of ['code', 'param']) if (k in res.json.error) expect(typeof res.json.error[k], label).toBe('string');
      if (c.param) expect(res.json.error.param, label).toBe(c.param);
    }
    expect(await h.snapshot()).toEqual(before);
    expect((await h.verify()).ok).toBe(true);
  });
});
