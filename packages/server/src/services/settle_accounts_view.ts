import type { SettleAccount } from '@tixian/sdk';
import type { Db } from '../store/db.ts';
import type { SettleAccountRow } from '../store/schema.ts';
import { parseJsonObject } from './common.ts';

/** Hard bound on settle accounts shown inline on a user (and bound to one user). */
export const MAX_SETTLE_ACCOUNTS_PER_USER = 20;

/**
 * Masks a recipient the way Ping++ shows it (§9.1): account keeps its first 6 and last 4
 * characters (`621488***8865`), name keeps its last character (`***哥`), mobile `138****4557`.
 * The full recipient stays in the database for payouts.
 */
export function maskRecipient(recipient: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...recipient };
  if (typeof out.account === 'string') out.account = maskAccount(out.account);
  if (typeof out.name === 'string' && out.name.length > 0) out.name = '***' + [...out.name].slice(-1).join('');
  if (typeof out.mobile === 'string' && out.mobile.length >= 7) out.mobile = out.mobile.slice(0, 3) + '****' + out.mobile.slice(-4);
  if (typeof out.sender_card_number === 'string') out.sender_card_number = maskAccount(out.sender_card_number);
  return out;
}

function maskAccount(account: string): string {
  const chars = [...account];
  if (chars.length > 10) return chars.slice(0, 6).join('') + '***' + chars.slice(-4).join('');
  if (chars.length > 4) return chars.slice(0, 2).join('') + '***' + chars.slice(-2).join('');
  return '***';
}

export function settleAccountToWire(row: SettleAccountRow): SettleAccount {
  return {
    id: row.id,
    object: 'settle_account',
    created: row.created,
    livemode: row.livemode === 1,
    channel: row.channel as SettleAccount['channel'],
    recipient: maskRecipient(parseJsonObject(row.recipient)),
  };
}

export async function settleAccountsOfUser(db: Db, userPk: string): Promise<SettleAccount[]> {
  const rows = await db
    .selectFrom('settle_accounts')
    .selectAll()
    .where('user_pk', '=', userPk)
    .where('deleted', '=', 0)
    .orderBy('created', 'desc')
    .orderBy('id', 'desc')
    .limit(MAX_SETTLE_ACCOUNTS_PER_USER)
    .execute();
  return rows.map(settleAccountToWire);
}
