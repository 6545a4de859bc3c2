import { Type, type TSchema } from '@sinclair/typebox';
import type { WithdrawalChannel } from '@tixian/sdk';

/**
 * Payout channels of 余额提现 and their rules: the shape of `extra` (§6.3), the order_no format
 * (§6.4), and who the payee is. Pure: no I/O.
 */
export const WITHDRAWAL_CHANNELS: readonly WithdrawalChannel[] = ['unionpay', 'alipay', 'wx', 'wx_pub', 'wx_lite', 'allinpay', 'jdpay', 'custom'];

/**
 * `custom`: the merchant pays outside any channel (by hand, its own bank run) and tixian records
 * it. No driver, no credentials, no payout worker: a confirm makes it `succeeded` at once (§6.6).
 */
export function paysOutsideTixian(channel: string): boolean {
  return channel === 'custom';
}

const Text = (max: number) => Type.String({ minLength: 1, maxLength: max });
const Opt = <T extends TSchema>(t: T) => Type.Optional(t);
const BankCode = Type.String({ minLength: 1, maxLength: 16, pattern: '^[0-9A-Za-z]+$' });
/** 0 bank card, 1 passbook; Java's Map<String,String> examples can send it as a string. */
const CardType = Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal('0'), Type.Literal('1')]);
const strict = { additionalProperties: false } as const;

/**
 * Every key optional in the schema; which are required (and which aliases count) is decided in
 * `missingExtraKey`, so that an error names the key the caller should have sent.
 */
export const EXTRA_SCHEMAS: Record<WithdrawalChannel, TSchema> = {
  unionpay: Type.Object(
    {
      account: Opt(Text(64)),
      name: Opt(Text(64)),
      // Legacy spellings in Node docs and the C# BalanceDemo.
      card_number: Opt(Text(64)),
      user_name: Opt(Text(64)),
      open_bank_code: Opt(BankCode),
      open_bank: Opt(Text(64)),
      prov: Opt(Text(32)),
      city: Opt(Text(32)),
      sub_bank: Opt(Text(128)),
    },
    strict,
  ),
  alipay: Type.Object(
    {
      account: Opt(Text(100)),
      name: Opt(Text(64)),
      account_type: Opt(Type.Union([Type.Literal('ALIPAY_USERID'), Type.Literal('ALIPAY_LOGONID')])),
    },
    strict,
  ),
  wx: wxExtra(),
  wx_pub: wxExtra(),
  wx_lite: wxExtra(),
  allinpay: Type.Object(
    {
      account: Opt(Text(64)),
      name: Opt(Text(64)),
      open_bank_code: Opt(BankCode),
      business_code: Opt(Type.String({ minLength: 1, maxLength: 16, pattern: '^[0-9A-Za-z]+$' })),
      card_type: Opt(CardType),
    },
    strict,
  ),
  jdpay: Type.Object({ account: Opt(Text(64)), name: Opt(Text(64)), open_bank_code: Opt(BankCode) }, strict),
  // §6.3: "none". An unknown key is refused (400 naming it), as for every other channel.
  custom: Type.Object({}, strict),
};

function wxExtra() {
  // The seed guide spells it `openid`, the SDK examples `open_id`: both are accepted.
  return Type.Object(
    { open_id: Opt(Text(128)), openid: Opt(Text(128)), name: Opt(Text(64)), force_check: Opt(Type.Boolean()) },
    strict,
  );
}

/** The first required key missing from an already schema-valid extra, or null. */
export function missingExtraKey(channel: WithdrawalChannel, extra: Record<string, unknown>): string | null {
  const has = (...keys: string[]) => keys.some((k) => extra[k] !== undefined);
  switch (channel) {
    case 'unionpay':
      // Ping++ documents "open_bank_code or open_bank", but the seed guide's Java and Ruby examples
      // send neither, and they must work: the bank is then the channel's to derive from the card.
      if (!has('account', 'card_number')) return 'account';
      if (!has('name', 'user_name')) return 'name';
      return null;
    case 'alipay':
      if (!has('account')) return 'account';
      if (!has('name')) return 'name';
      return null;
    case 'wx':
    case 'wx_pub':
    case 'wx_lite':
      return has('open_id', 'openid') ? null : 'open_id';
    case 'allinpay':
    case 'jdpay':
      for (const k of ['account', 'name', 'open_bank_code']) if (!has(k)) return k;
      return null;
    case 'custom':
      return null;
  }
}

/**
 * The `extra` the withdrawal shows: the keys as sent (`openid` normalised to `open_id`), plus the
 * defaults the channel applies anyway. Never adds `user_name`/`card_number` aliases: the Java SDK's
 * test asserts they are absent when not sent.
 */
export function normaliseExtra(channel: WithdrawalChannel, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...extra };
  switch (channel) {
    case 'wx':
    case 'wx_pub':
    case 'wx_lite':
      if (out.openid !== undefined) {
        out.open_id ??= out.openid;
        delete out.openid;
      }
      out.force_check ??= false;
      break;
    case 'alipay':
      out.account_type ??= /^2088\d{12}$/.test(String(out.account)) ? 'ALIPAY_USERID' : 'ALIPAY_LOGONID';
      break;
    case 'allinpay':
      out.business_code ??= '09900';
      if (typeof out.card_type === 'string') out.card_type = Number(out.card_type);
      out.card_type ??= 0;
      break;
  }
  return out;
}

/** The payee's identifier in a normalised extra: bank card, Alipay account or WeChat open id. */
export function payeeAccount(channel: WithdrawalChannel, extra: Record<string, unknown>): string {
  const v = channel.startsWith('wx') ? extra.open_id : (extra.account ?? extra.card_number);
  return typeof v === 'string' ? v : '';
}

/**
 * order_no per channel (§6.4), widened where an official example would otherwise be refused:
 * unionpay is documented as 1–16 digits but the Java example sends "1010" + 13-digit millis (17),
 * so digits up to 20 are accepted; allinpay is documented as a 10-digit merchant number plus a
 * 10–30 character serial, but the PHP, Java, C#, Node and Python examples send 10–17 digits, so
 * 1–40 alphanumerics are accepted. custom follows the spec's balance/custom rule (`-` and `_` too).
 */
export const ORDER_NO_RULES: Record<WithdrawalChannel, { pattern: RegExp; rule: string; ruleZh: string }> = {
  unionpay: { pattern: /^[0-9]{1,20}$/, rule: 'must be 1-20 digits for unionpay', ruleZh: 'unionpay 渠道须为 1-20 位数字' },
  alipay: { pattern: /^[0-9A-Za-z]{1,64}$/, rule: 'must be 1-64 letters or digits for alipay', ruleZh: 'alipay 渠道须为 1-64 位字母或数字' },
  wx: { pattern: /^[0-9A-Za-z]{1,50}$/, rule: 'must be 1-50 letters or digits for wx', ruleZh: 'wx 渠道须为 1-50 位字母或数字' },
  wx_pub: { pattern: /^[0-9A-Za-z]{1,50}$/, rule: 'must be 1-50 letters or digits for wx_pub', ruleZh: 'wx_pub 渠道须为 1-50 位字母或数字' },
  wx_lite: { pattern: /^[0-9A-Za-z]{1,50}$/, rule: 'must be 1-50 letters or digits for wx_lite', ruleZh: 'wx_lite 渠道须为 1-50 位字母或数字' },
  allinpay: { pattern: /^[0-9A-Za-z]{1,40}$/, rule: 'must be 1-40 letters or digits for allinpay', ruleZh: 'allinpay 渠道须为 1-40 位字母或数字' },
  jdpay: { pattern: /^[0-9A-Za-z]{1,64}$/, rule: 'must be 1-64 letters or digits for jdpay', ruleZh: 'jdpay 渠道须为 1-64 位字母或数字' },
  custom: { pattern: /^[0-9A-Za-z_-]{1,64}$/, rule: 'must be 1-64 letters, digits, - or _ for custom', ruleZh: 'custom 渠道须为 1-64 位字母、数字、- 或 _' },
};

/** Settle-account channels map to the withdrawal channel that pays them. */
export function channelForSettleAccount(settleChannel: string): WithdrawalChannel | null {
  switch (settleChannel) {
    case 'alipay':
    case 'wx':
    case 'wx_pub':
    case 'wx_lite':
      return settleChannel;
    case 'bank_account':
      return 'unionpay';
    default:
      return null;
  }
}

/** The withdrawal `extra` that pays a settle account's (unmasked) recipient. */
export function extraFromSettleAccount(channel: WithdrawalChannel, recipient: Record<string, unknown>): Record<string, unknown> {
  const pick = (...keys: string[]) => Object.fromEntries(keys.filter((k) => recipient[k] !== undefined && recipient[k] !== null).map((k) => [k, recipient[k]]));
  if (channel.startsWith('wx')) {
    const { account, ...rest } = pick('account', 'name', 'force_check');
    return { open_id: account, ...rest };
  }
  if (channel === 'alipay') return pick('account', 'name', 'account_type');
  return pick('account', 'name', 'open_bank_code', 'open_bank', 'prov', 'city', 'sub_bank');
}

/**
 * The smallest payout (fen, after the user's fee) a live channel accepts: Alipay refuses transfers
 * below 0.10 yuan (EXCEED_LIMIT_SM_MIN_AMOUNT), WeChat's transfer-bills too (0.1 元 per transfer;
 * uncertain, from WeChat's product page), so such a withdrawal is refused at creation instead
 * of failing at payout. Test mode keeps the sandbox's wider range (existing integrations test with
 * tiny amounts).
 */
export const LIVE_MIN_PAYOUT_FEN: Partial<Record<WithdrawalChannel, number>> = { alipay: 10, wx: 10, wx_pub: 10, wx_lite: 10 };

/** Why a live channel would refuse this payout amount, or null. */
export function livePayoutAmountError(channel: WithdrawalChannel, payoutFen: number): { en: string; zh: string } | null {
  const min = LIVE_MIN_PAYOUT_FEN[channel];
  if (min !== undefined && payoutFen < min) {
    return {
      en: `${channel} pays out at least ${min} fen (amount less user_fee); got ${payoutFen}`,
      zh: `${channel} 渠道单笔到账金额（amount 减 user_fee）至少 ${min} 分，当前为 ${payoutFen}`,
    };
  }
  return null;
}
