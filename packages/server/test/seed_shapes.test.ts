import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WithdrawalChannel } from '@tixian/sdk';
import { WITHDRAWAL_CHANNELS } from '../src/domain/channels.ts';
import { createApp } from '../src/services/accounts.ts';
import { describeEngines, Harness } from './helpers/harness.ts';

/**
 * Step 3 of the seed guide (余额提现), as each official SDK's example sends it: the same
 * parameters, the same extra keys per channel, order numbers made the way each example makes
 * them, and the JSON spelled the way each language's serialiser spells it. Every one must be
 * accepted, unchanged.
 */

// The examples make order numbers from the clock (unique per second, or per second plus a few random
// digits). Same shapes here, with a counter in place of the clock's or the dice's digits, so that the
// 56 requests of one test never collide.
let seq = 0;
const ts10 = () => String(1_700_000_000 + ++seq);
const digits = (n: number) => String(++seq).padStart(n, '0');

/** The `extra` of each language's example, per channel (seed-withdrawal-guide.txt). */
function extraFor(lang: string, channel: WithdrawalChannel): Record<string, unknown> {
  const wx = { openid: 'open_id', name: lang === 'java' ? 'NAME' : lang === 'csharp' || lang === 'php' ? '张三' : '姓名' };
  switch (channel) {
    case 'unionpay':
      if (lang === 'java') return { name: 'NAME', account: '6225210207078888' };
      if (lang === 'ruby') return { account: '6201112223333', name: '姓名' };
      if (lang === 'python') return { account: '622123456789', name: '姓名', open_bank_code: '0102', prov: '上海', city: '上海' };
      return { account: '6225210207078888', name: '张三', open_bank_code: '0308', open_bank: '招商银行', prov: '上海', city: '上海', sub_bank: '徐家汇支行' };
    case 'alipay':
      if (lang === 'java') return { name: 'NAME', account: 'test_user_001@gmail.com' };
      if (lang === 'csharp') return { account: 'user@example.com', name: '张三', account_type: 'ALIPAY_USERID' };
      if (lang === 'python') return { account: '622123456789', name: '姓名' };
      return { account: 'user@gmail.com', name: '张三' };
    case 'wx':
    case 'wx_pub':
    case 'wx_lite':
      return wx;
    case 'allinpay':
      return { account: '6214850288888888', name: lang === 'java' ? 'NAME' : '姓名', open_bank_code: '0308', business_code: '09900', card_type: 0 };
    case 'jdpay':
      return { account: '6214850288888888', name: lang === 'java' ? 'NAME' : '姓名', open_bank_code: '0308' };
    case 'custom':
      return {};
  }
}

function bodyFor(lang: string, channel: WithdrawalChannel, user: string): Record<string, unknown> {
  const extra = extraFor(lang, channel);
  switch (lang) {
    case 'php':
      return { user, amount: 200, channel, user_fee: 10, description: 'Your Description', order_no: ts10() + digits(6), extra };
    case 'java':
      // Sends settle_account next to channel+extra: the guide says the settle account is then ignored.
      return { user, channel, amount: 100, description: 'custom description', order_no: '1010' + String(1_700_000_000_000 + ++seq), extra, user_fee: 5, settle_account: 'test_user_001' };
    case 'node':
      return { user, amount: 20, channel, user_fee: 10, order_no: ts10(), description: 'test232description', extra };
    case 'python':
      return { user, amount: 20000, user_fee: 50, order_no: '1234567890', description: 'Your description', channel, extra };
    case 'ruby':
      return {
        user, amount: 10, user_fee: 0, description: '用户提现', channel, extra, metadata: { custom_key: 'custom_value' },
        order_no: channel === 'allinpay' ? `301002${ts10()}${digits(6)}` : `${ts10()}${digits(4)}`,
      };
    case 'go':
      return { user, amount: 20000, user_fee: 0, channel, description: 'Your description', order_no: '20160829133002', extra };
    default: // csharp
      return { order_no: '2016111000039', amount: 1, user_fee: 0, channel, user, description: 'Your description', extra };
  }
}

/** The bytes each language's JSON encoder would send. */
function serialise(lang: string, body: Record<string, unknown>): string {
  if (lang === 'python') return JSON.stringify(body).replace(/","/g, '", "').replace(/":/g, '": ').replace(/,"/g, ', "');
  if (lang === 'csharp') return JSON.stringify(body, null, 2);
  return JSON.stringify(body);
}

const CONTENT_TYPES: Record<string, string> = {
  php: 'application/json;charset=UTF-8',
  csharp: 'application/json;charset=utf-8',
  node: 'application/json; charset=UTF-8',
};
const LANGUAGES = ['php', 'java', 'node', 'python', 'ruby', 'go', 'csharp'];

describeEngines('the seed guide\'s withdrawal requests, in all seven SDK languages', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start(engine);
  });
  afterAll(async () => h?.close());

  it('accepts every example body on every channel', async () => {
    let n = 0;
    for (const lang of LANGUAGES) {
      for (const channel of WITHDRAWAL_CHANNELS) {
        // Python, Go and C# send a fixed order number, unique per app: each of those requests gets an app of its own.
        const app = ['python', 'go', 'csharp'].includes(lang) ? await createApp(h.rt, { name: `seed-${lang}-${channel}` }) : h.merchant;
        const user = `seed_${lang}_${channel}`;
        const headers = { authorization: `Bearer ${app.secret_key_test ?? h.testKey}`, 'content-type': CONTENT_TYPES[lang] ?? 'application/json' };
        const created = await h.app.inject({ method: 'POST', url: `/v1/apps/${app.id}/users`, headers, payload: JSON.stringify({ id: user }) });
        expect(created.statusCode, created.body).toBe(200);
        const funded = await h.app.inject({
          method: 'POST', url: `/v1/apps/${app.id}/balance_settlements`, headers,
          payload: JSON.stringify({ user, amount: 100_000, order_no: `fund${lang}${channel.replace('_', '')}` }),
        });
        expect(funded.statusCode, funded.body).toBe(200);
        const body = bodyFor(lang, channel, user);
        const res = await h.app.inject({ method: 'POST', url: `/v1/apps/${app.id}/withdrawals`, headers, payload: serialise(lang, body) });
        expect(res.statusCode, `${lang} ${channel}: ${res.body}`).toBe(200);
        const w = res.json();
        expect(w).toMatchObject({ object: 'withdrawal', status: 'created', channel, amount: body.amount, order_no: body.order_no, settle_account: null });
        if (channel.startsWith('wx')) expect(w.extra).toMatchObject({ open_id: 'open_id' });
        n++;
      }
    }
    expect(n).toBe(56);
    expect((await h.verify()).ok).toBe(true);
  });
});
