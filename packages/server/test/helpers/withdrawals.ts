import type { WithdrawalChannel } from '@tixian/sdk';

/** The `extra` of each channel exactly as the seed guide's examples send it, with a chosen payee. */
export function seedExtra(channel: WithdrawalChannel, payee?: string): Record<string, unknown> {
  switch (channel) {
    case 'unionpay':
      return { account: payee ?? '6225210207078888', name: '张三', open_bank_code: '0308', open_bank: '招商银行', prov: '上海', city: '上海', sub_bank: '徐家汇支行' };
    case 'alipay':
      return { account: payee ?? 'user@gmail.com', name: '张三' };
    case 'wx':
    case 'wx_pub':
    case 'wx_lite':
      return { openid: payee ?? 'open_id', name: '张三' };
    case 'allinpay':
      return { account: payee ?? '6214850288888888', name: '张三', open_bank_code: '0308', business_code: '09900', card_type: 0 };
    case 'jdpay':
      return { account: payee ?? '6214850288888888', name: '张三', open_bank_code: '0308' };
    case 'custom':
      return {};
  }
}

/** A payee identifier valid for the channel whose sandbox outcome is chosen by its ending. */
export function sandboxPayee(channel: WithdrawalChannel, ending: '' | '0002' | '0003' | '0004'): string {
  const base = channel === 'alipay' ? 'payee@example.com' : channel.startsWith('wx') ? 'o_wx_openid_' : '621485028888';
  return ending ? base + ending : base + (channel === 'alipay' ? '' : '8888');
}

let orderSeq = 0;
/** An order_no valid for every channel (digits only, ≤ 16). */
export function orderNo(): string {
  orderSeq = (orderSeq + 1) % 1000;
  return String(Date.now()).slice(-10) + String(orderSeq).padStart(3, '0') + String(Math.floor(Math.random() * 1000)).padStart(3, '0');
}
