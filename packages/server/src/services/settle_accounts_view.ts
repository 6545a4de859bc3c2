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
  if (typeof out.name === 'string' && out.name.length > 0) out.name = maskName(out.name);
  if (typeof out.mobile === 'string' && out.mobile.length >= 7) out.mobile = out.mobile.slice(0, 3) + '****' + out.mobile.slice(-4);
  if (typeof out.sender_card_number === 'string') out.sender_card_number = maskAccount(out.sender_card_number);
  return out;
}

/**
 * The `extra` a withdrawal paid to a settle account shows: masked like the settle account itself,
 * or the withdrawal would give away what the settle account hides. `extra` names the recipient's
 * account `open_id` on WeChat channels, and may carry the aliases `card_number` and `user_name`.
 * The full extra stays in the database: the channel needs it to pay.
 */
export function maskSettleAccountExtra(extra: Record<string, unknown>): Record<string, unknown> {
  const out = maskRecipient(extra);
  for (const key of ['open_id', 'openid', 'card_number'] as const) {
    if (typeof out[key] === 'string') out[key] = maskAccount(out[key]);
  }
  if (typeof out.user_name === 'string' && out.user_name.length > 0) out.user_name = maskName(out.user_name);
  return out;
}

function maskName(name: string): string {
  return '***' + [...name].slice(-1).join('');
}

function maskAccount(account: string): string {
  const chars = [...account];
  if (chars.length > 10) return chars.slice(0, 6).join('') + '***' + chars.slice(-4).join('');
  if (chars.length > 4) return chars.slice(0, 2).join('') + '***' + chars.slice(-2).join('');
  return '***';
}

/** The columns the wire form needs (a retrieve reads them joined to the user, users.ts). */
export type SettleAccountWireColumns = Pick<SettleAccountRow, 'id' | 'created' | 'livemode' | 'channel' | 'recipient'>;

export function settleAccountToWire(row: SettleAccountWireColumns): SettleAccount {
  return {
    id: row.id,
    object: 'settle_account',
    created: row.created,
    livemode: row.livemode === 1,
    channel: row.channel as SettleAccount['channel'],
    recipient: maskRecipient(parseJsonObject(row.recipient)),
  };
}

/** The live settle accounts of many users in one query (a page of users), newest first per user. */
export async function settleAccountsOfUsers(db: Db, userPks: string[]): Promise<Map<string, SettleAccount[]>> {
  const byUser = new Map<string, SettleAccount[]>();
  if (userPks.length === 0) return byUser;
  const rows = await db
    .selectFrom('settle_accounts')
    .selectAll()
    .where('user_pk', 'in', userPks)
    .where('deleted', '=', 0)
    .orderBy('created', 'desc')
    .orderBy('id', 'desc')
    // Creation refuses more than the maximum per user, so this bounds the whole page.
    .limit(MAX_SETTLE_ACCOUNTS_PER_USER * userPks.length)
    .execute();
  for (const row of rows) {
    const list = byUser.get(row.user_pk) ?? [];
    if (list.length < MAX_SETTLE_ACCOUNTS_PER_USER) list.push(settleAccountToWire(row));
    byUser.set(row.user_pk, list);
  }
  return byUser;
}
