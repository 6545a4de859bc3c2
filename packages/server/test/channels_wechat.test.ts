import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WechatDriver, type WechatCredentials } from '../src/channels/wechat.ts';
import { outBillNo } from '../src/channels/wechat-bill.ts';
import type { ChannelCall, PayoutOrder } from '../src/channels/driver.ts';
import { FakeWechat } from './fakes/wechat.ts';

/**
 * The WeChat Pay transfer-bills driver against a fake gateway, through the unchanged
 * wechatpay-axios-plugin. (Not yet wired to live withdrawals: see channels/wechat.ts.)
 */
describe('WeChat Pay transfer-bills driver', () => {
  let fake: FakeWechat;
  let creds: WechatCredentials;
  let driver: WechatDriver;
  let seq = 0;

  beforeAll(async () => {
    fake = await new FakeWechat().start();
    creds = fake.credentials({
      appids: { wx_lite: 'wxlite0000000001', wx_pub: 'wxpub00000000001' },
      report_infos: [{ info_type: '活动名称', info_content: '余额提现' }, { info_type: '奖励说明', info_content: '用户余额提现' }],
    });
    driver = new WechatDriver(async () => creds, pino({ level: 'silent' }));
  });
  afterAll(async () => fake?.close());

  const call = (): ChannelCall => ({ timeoutMs: 3000, signal: new AbortController().signal, nowMs: Date.now() });
  function order(openid: string, round = 1, amount = 1000): PayoutOrder {
    const id = `40${String(Date.now()).slice(-10)}${String(++seq).padStart(7, '0')}`;
    return { key: round === 1 ? id : `${id}_${round}`, withdrawalId: id, app: 'app_x', channel: 'wx_lite', amount, extra: { open_id: openid, name: '张三' }, livemode: true, confirmedMs: Date.now() };
  }

  it('maps payout keys to WeChat out_bill_no: letters and digits, at most 32', () => {
    expect(outBillNo('4012345678901234567')).toBe('4012345678901234567');
    expect(outBillNo('4012345678901234567_2')).toBe('4012345678901234567R2');
    expect(() => outBillNo('x'.repeat(33))).toThrow();
  });

  it('waits for the payee: processing with package_info, mch_id and app_id; confirmed → succeeded, paid once', async () => {
    const o = order('o_confirm');
    const first = await driver.submit(o, call());
    expect(first).toMatchObject({ kind: 'processing', confirmation: { package_info: expect.any(String), mch_id: fake.mchid, app_id: 'wxlite0000000001' } });
    const bill = fake.bills.get(o.key)!;
    expect(bill.user_name).toBe('张三'); // sent encrypted, decrypted by the gateway's key
    expect((await driver.query(o, call())).kind).toBe('processing');
    fake.confirm(o.key);
    expect(await driver.query(o, call())).toEqual({ kind: 'succeeded' });
    // A repeated submit of the same key is the same bill: no second debit.
    expect(await driver.submit(o, call())).toEqual({ kind: 'succeeded' });
    expect(fake.debits.get(o.key)).toBe(1);
  });

  it("an expired confirmation is the user's failure once the confirmation was shown for this bill, else the merchant's", async () => {
    const o = order('o_expire');
    const first = await driver.submit(o, call());
    expect(first.kind).toBe('processing');
    fake.expire(o.key);
    expect(await driver.query(o, call())).toMatchObject({ kind: 'failed', blame: 'merchant', message: expect.stringContaining('OVERDUE_CLOSE') });
    const shown = { ...o, extra: { ...o.extra, wx_confirmation: first.kind === 'processing' ? first.confirmation : null } };
    expect(await driver.query(shown, call())).toMatchObject({ kind: 'failed', blame: 'user', message: expect.stringContaining('OVERDUE_CLOSE') });
    expect(fake.debits.has(o.key)).toBe(false);
  });

  it("an invalid openid is the payee's fault", async () => {
    fake.invalidOpenids.add('o_invalid');
    expect(await driver.submit(order('o_invalid'), call())).toMatchObject({ kind: 'failed', blame: 'user' });
  });

  it("the merchant short of funds: NOT_ENOUGH and no bill → the merchant's; the next round's bill pays", async () => {
    fake.balanceFen = 500;
    const o = order('o_short');
    expect(await driver.submit(o, call())).toMatchObject({ kind: 'failed', blame: 'merchant', message: expect.stringContaining('NOT_ENOUGH') });
    expect(fake.calls.slice(-2)).toEqual(['POST /v3/fund-app/mch-transfer/transfer-bills', `GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/${o.key}`]);
    fake.balanceFen = Number.MAX_SAFE_INTEGER;
    fake.preAuthorized.add('o_short');
    const again = { ...o, key: `${o.withdrawalId}_2` };
    expect(await driver.submit(again, call())).toEqual({ kind: 'succeeded' });
    expect(fake.debits.get(`${o.withdrawalId}R2`)).toBe(1);
  });

  it('a cut connection is unknown; the query finds the bill; a lost bill is not_found', async () => {
    fake.cutAfterAccept.add('o_cut');
    fake.preAuthorized.add('o_cut');
    const o = order('o_cut');
    expect((await driver.submit(o, call())).kind).toBe('unknown');
    expect(await driver.query(o, call())).toEqual({ kind: 'succeeded' });
    expect(fake.debits.get(o.key)).toBe(1);
    expect(await driver.query(order('o_never'), call())).toEqual({ kind: 'not_found' });
  });

  it('answers that do not verify are unknown, never success or failure', async () => {
    fake.badSignature = true;
    fake.preAuthorized.add('o_badsig');
    fake.invalidOpenids.add('o_badsig_fail');
    try {
      const ok = order('o_badsig');
      expect((await driver.submit(ok, call())).kind).toBe('unknown');
      expect((await driver.query(ok, call())).kind).toBe('unknown');
      expect((await driver.submit(order('o_badsig_fail'), call())).kind).toBe('unknown');
    } finally {
      fake.badSignature = false;
    }
  });

  it('a request signed with another merchant key is refused by the gateway and stays unknown', async () => {
    const other = new FakeWechat();
    const wrong = new WechatDriver(async () => ({ ...creds, private_key: other.merchantPrivateKey }), pino({ level: 'silent' }));
    const rejected = fake.rejectedSignatures;
    expect((await wrong.submit(order('o_wrongkey'), call())).kind).toBe('unknown');
    expect(fake.rejectedSignatures).toBeGreaterThan(rejected);
  });
});
