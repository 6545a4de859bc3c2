// The WeChat bill number of a payout key: pure, so that code deciding about bills (wechat-cancel.ts)
// does not load wechat.ts and its SDK (wechatpay-axios-plugin, axios) at start-up.

/** WeChat accepts `[0-9A-Za-z]{1,32}`: the round suffix `_2` becomes `R2` (a 19-digit id + `R` + round fits). */
export function outBillNo(key: string): string {
  const no = key.replace('_', 'R');
  if (!/^[0-9A-Za-z]{1,32}$/.test(no)) throw new Error(`payout key ${key} cannot be a WeChat out_bill_no`);
  return no;
}
