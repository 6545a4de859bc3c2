import type { Runtime } from '../runtime.ts';
import type { WithdrawalRow } from '../store/schema.ts';
import { loadCredentials } from './credentials.ts';
import { payoutOrder, type PayeeConfirmation } from './driver.ts';
import { outBillNo } from './wechat-bill.ts';

/** How long the merchant's cancel request waits for WeChat's answer. */
export const CANCEL_TIMEOUT_MS = 10_000;

/**
 * Whether a pending withdrawal's current WeChat bill waits for the payee's confirmation: the bill
 * shown on it (`extra.wx_confirmation`) is the one of its current payout round (`key`).
 */
export function awaitsPayeeConfirmation(row: WithdrawalRow, key: string): boolean {
  if (row.status !== 'pending' || !row.channel.startsWith('wx')) return false;
  let shown: PayeeConfirmation | undefined;
  try {
    shown = (JSON.parse(row.extra) as { wx_confirmation?: PayeeConfirmation }).wx_confirmation;
  } catch {
    return false;
  }
  try {
    return shown?.out_bill_no === outBillNo(key);
  } catch {
    return false;
  }
}

/**
 * The merchant gives up a withdrawal whose WeChat bill waits for the payee (channels.md §2.2: a bill
 * may be cancelled only before the payee confirms; tixian never switches to a new bill number while
 * one is open). WeChat is asked to cancel the bill (transfer-bills cancel), and the withdrawal is
 * made due for a query now; nothing changes here on WeChat's word. The query that sees `CANCELLED`
 * sends the withdrawal back to `created` (the merchant's side: the hold stays), from where the
 * merchant cancels it (hold returned) or confirms it again (a new bill). If the payee confirmed
 * first, WeChat refuses the cancel and the bill is paid as usual.
 *
 * Returns true when WeChat accepted the cancel (CANCELING or CANCELLED), false otherwise.
 */
export async function cancelWaitingWechatBill(rt: Runtime, row: WithdrawalRow, key: string): Promise<boolean> {
  const livemode = row.livemode === 1;
  const loaded = await loadCredentials(rt, row.app, livemode, 'wechat');
  if (!loaded || loaded.credentials.channel !== 'wechat') return false;
  const c = loaded.credentials;
  const { WechatDriver } = await import('./wechat.ts');
  const driver = new WechatDriver(async () => c, rt.log);
  const order = payoutOrder(row, key);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('wechat cancel timed out')), CANCEL_TIMEOUT_MS);
  let outcome;
  try {
    outcome = await driver.cancel(order, { timeoutMs: CANCEL_TIMEOUT_MS, signal: controller.signal, nowMs: rt.clock.nowMs() });
  } finally {
    clearTimeout(timer);
  }
  const accepted = outcome.kind === 'processing' || outcome.kind === 'failed';
  rt.log.info({ withdrawal: row.id, outcome: outcome.kind, accepted }, 'wechat: merchant asked to cancel a bill waiting for the payee');
  // Whatever WeChat answered (even nothing), the bill's state is learnt by a query, now.
  await rt.store.db.updateTable('withdrawals').set({ payout_due_ms: rt.clock.nowMs() })
    .where('id', '=', row.id).where('status', '=', 'pending').where('payout_round', '=', row.payout_round).execute();
  rt.bus.emit('payout');
  return accepted;
}
