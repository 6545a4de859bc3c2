import type { Runtime } from '../runtime.ts';
import type { Deleted, SettleAccount, SettleAccountChannel } from '@tixian/sdk';
import type { Db } from '../store/db.ts';
import type { SettleAccountRow, UserRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { numericId } from '../domain/ids.ts';
import { listPage, type ListParams } from '../store/paging.ts';
import { findUser, mode, parseJsonObject, requestHash, type Scope, type WriteOptions } from './common.ts';
import { MAX_SETTLE_ACCOUNTS_PER_USER, settleAccountToWire } from './settle_accounts_view.ts';

/**
 * 用户结算账户 (§9): payout accounts bound to one user, used by withdrawals instead of a
 * per-request `channel` + `extra`. Responses mask the recipient; the full recipient stays in the
 * row because the payout needs it. Deleting is soft: a withdrawal that used the account keeps
 * pointing at a row that still exists.
 *
 * The recipient arrives validated per channel by the route schema (http/routes/settle_accounts.ts).
 */
export interface SettleAccountCreateParams {
  channel: SettleAccountChannel;
  recipient: Record<string, unknown>;
}

/** The user named in the path. It is part of the URL, so a missing one is a 404 naming `user`. */
async function pathUser(db: Db, scope: Scope, userId: string): Promise<UserRow> {
  const user = await findUser(db, scope, userId);
  if (!user) throw errors.notFound('user', userId, 'user');
  return user;
}

/** Optional keys sent as `null` (PHP and Python examples send explicit nulls) are simply absent. */
function withoutNulls(recipient: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(recipient).filter(([, v]) => v !== null && v !== undefined));
}

export async function createSettleAccount(
  rt: Runtime,
  scope: Scope,
  userId: string,
  p: SettleAccountCreateParams,
  options: WriteOptions = {},
): Promise<SettleAccount> {
  // The system user "0" is the platform itself: it never withdraws, so it has nothing to bind.
  if (userId === '0') throw errors.invalidParam('user', 'the system user "0" cannot bind a settle_account', '系统用户 "0" 不能绑定结算账户');
  const recipient = withoutNulls(p.recipient);
  const fingerprint = requestHash({ channel: p.channel, recipient });

  const row = await rt.store.transaction(async (trx) => {
    // Lock the user row so that concurrent binds of one user cannot both pass the count below
    // (PostgreSQL row lock; SQLite already serialises writers with BEGIN IMMEDIATE).
    let query = trx.selectFrom('users').selectAll().where('app', '=', scope.app).where('livemode', '=', mode(scope)).where('id', '=', userId);
    if (rt.store.engine === 'postgres') query = query.forUpdate();
    const user = await query.executeTakeFirst();
    if (!user) throw errors.notFound('user', userId, 'user');
    if (user.disabled) throw errors.userDisabled(userId, 'user');

    const live = await trx
      .selectFrom('settle_accounts')
      .selectAll()
      .where('user_pk', '=', user.pk)
      .where('deleted', '=', 0)
      .orderBy('created', 'desc')
      .orderBy('id', 'desc')
      .limit(MAX_SETTLE_ACCOUNTS_PER_USER + 1)
      .execute();
    // Binding the same account again returns the existing binding: a client retrying a create
    // (Java's SDK re-sends POSTs after a 5xx) must not fill the user's list with copies.
    const same = live.find((r) => r.channel === p.channel && requestHash({ channel: r.channel, recipient: parseJsonObject(r.recipient) }) === fingerprint);
    if (same) return same;
    if (live.length >= MAX_SETTLE_ACCOUNTS_PER_USER) throw errors.settleAccountLimit(userId, MAX_SETTLE_ACCOUNTS_PER_USER);

    const nowMs = rt.clock.nowMs();
    const created: SettleAccountRow = {
      id: numericId('settle_account', nowMs),
      app: scope.app,
      livemode: mode(scope),
      user: user.id,
      user_pk: user.pk,
      channel: p.channel,
      recipient: JSON.stringify(recipient),
      created: Math.floor(nowMs / 1000),
      deleted: 0,
    };
    await trx.insertInto('settle_accounts').values(created).execute();
    return created;
  }, options);
  return settleAccountToWire(row);
}

async function liveSettleAccount(db: Db, scope: Scope, userPk: string, id: string): Promise<SettleAccountRow | undefined> {
  return db
    .selectFrom('settle_accounts')
    .selectAll()
    .where('id', '=', id)
    .where('app', '=', scope.app)
    .where('livemode', '=', mode(scope))
    .where('user_pk', '=', userPk)
    .where('deleted', '=', 0)
    .executeTakeFirst();
}

/** A deleted account, or one of another user, answers exactly like one that never existed. */
export async function retrieveSettleAccount(rt: Runtime, scope: Scope, userId: string, id: string): Promise<SettleAccount> {
  const user = await pathUser(rt.store.db, scope, userId);
  const row = await liveSettleAccount(rt.store.db, scope, user.pk, id);
  if (!row) throw errors.notFound('settle_account', id);
  return settleAccountToWire(row);
}

export async function listSettleAccounts(rt: Runtime, scope: Scope, userId: string, p: ListParams): Promise<{ data: SettleAccount[]; hasMore: boolean }> {
  const user = await pathUser(rt.store.db, scope, userId);
  // Unbound accounts are left out of the page but not out of the cursor look-up: a client that
  // unbinds the accounts of one page and then asks for the next one names a deleted account as
  // its cursor. That reveals nothing: the cursor is the path user's own account.
  const { rows, hasMore } = await listPage<SettleAccountRow>(
    rt.store.db,
    'settle_accounts',
    (qb) => qb.where('app', '=', scope.app).where('livemode', '=', mode(scope)).where('user_pk', '=', user.pk),
    p,
    'id',
    (qb) => qb.where('deleted', '=', 0),
  );
  return { data: rows.map(settleAccountToWire), hasMore };
}

/**
 * Unbinds (soft delete). One conditional UPDATE, so two concurrent deletes cannot both succeed:
 * the second one, like any delete of an already-deleted or foreign account, is a 404.
 * A disabled user may still unbind: removing payout data is never a risk.
 */
export async function deleteSettleAccount(
  rt: Runtime,
  scope: Scope,
  userId: string,
  id: string,
  options: WriteOptions = {},
): Promise<Deleted & { object: 'settle_account' }> {
  const user = await pathUser(rt.store.db, scope, userId);
  const result = await rt.store.oneStatement((db) =>
    db
      .updateTable('settle_accounts')
      .set({ deleted: 1 })
      .where('id', '=', id)
      .where('app', '=', scope.app)
      .where('livemode', '=', mode(scope))
      .where('user_pk', '=', user.pk)
      .where('deleted', '=', 0)
      .executeTakeFirst(), options);
  if (Number(result.numUpdatedRows) !== 1) throw errors.notFound('settle_account', id);
  return { id, object: 'settle_account', deleted: true };
}

/**
 * For withdrawals (§6.2 `settle_account`): the unmasked account a payout goes to. Called inside
 * the withdrawal-create transaction. Unknown, deleted, another user's, or another app's/mode's
 * accounts all answer the same 400 naming `settle_account`, so a caller learns nothing about
 * accounts that are not theirs.
 *
 * No row lock: a delete that commits while the withdrawal is being created leaves a withdrawal
 * pointing at a just-deleted account, which is harmless because the row (and its recipient)
 * is kept and the payout uses the recipient copied here.
 */
export async function usableSettleAccount(
  db: Db,
  scope: Scope,
  userPk: string,
  settleAccountId: string,
): Promise<{ id: string; channel: string; recipient: Record<string, unknown> }> {
  const row = await liveSettleAccount(db, scope, userPk, settleAccountId);
  if (!row) throw errors.settleAccountNotUsable(settleAccountId);
  return { id: row.id, channel: row.channel, recipient: parseJsonObject(row.recipient) };
}
