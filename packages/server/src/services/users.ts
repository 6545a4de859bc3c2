import { CompiledQuery } from 'kysely';
import type { Runtime } from '../runtime.ts';
import type { User, Metadata, SettleAccount } from '@tixian/sdk';
import type { UserRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { newUserPk } from '../domain/ids.ts';
import { isUniqueViolation } from '../store/db.ts';
import { seconds } from '../clock.ts';
import { listPage, type ListParams } from '../store/paging.ts';
import { findUser, metadataText, mode, parseJsonObject, type Scope, type WriteOptions } from './common.ts';
import { MAX_SETTLE_ACCOUNTS_PER_USER, settleAccountToWire, settleAccountsOfUsers } from './settle_accounts_view.ts';

export interface UserProfile {
  address?: string | null;
  avatar?: string | null;
  email?: string | null;
  gender?: 'MALE' | 'FEMALE' | '' | null;
  mobile?: string | null;
  name?: string | null;
  metadata?: Metadata | null;
  parent_user_id?: string | null;
}

export interface UserCreateParams extends UserProfile {
  id: string;
}

export interface UserUpdateParams extends UserProfile {
  disabled?: boolean;
}

export function userToWire(row: UserRow, settleAccounts: SettleAccount[]): User {
  return {
    id: row.id,
    object: 'user',
    app: row.app,
    type: row.type as User['type'],
    related_app: row.related_app,
    address: row.address,
    avatar: row.avatar,
    available_coupons: 0,
    available_balance: row.available_balance,
    withdrawable_balance: row.withdrawable_balance,
    created: row.created,
    disabled: row.disabled === 1,
    email: row.email,
    gender: (row.gender || null) as User['gender'],
    identified: row.identified === 1,
    livemode: row.livemode === 1,
    mobile: row.mobile,
    name: row.name,
    metadata: parseJsonObject(row.metadata),
    settle_accounts: settleAccounts,
    parent_user_id: row.parent_user_id,
  };
}

const PROFILE_KEYS = ['address', 'avatar', 'email', 'gender', 'mobile', 'name', 'parent_user_id'] as const;

export async function createUser(rt: Runtime, scope: Scope, p: UserCreateParams, options: WriteOptions = {}): Promise<User> {
  const row: UserRow = {
    pk: newUserPk(rt.clock.nowMs()),
    app: scope.app,
    livemode: mode(scope),
    id: p.id,
    type: 'customer',
    related_app: null,
    address: p.address ?? null,
    avatar: p.avatar ?? null,
    email: p.email ?? null,
    gender: p.gender || null,
    mobile: p.mobile ?? null,
    name: p.name ?? null,
    parent_user_id: p.parent_user_id ?? null,
    metadata: metadataText(p.metadata),
    disabled: 0,
    identified: 0,
    available_balance: 0,
    withdrawable_balance: 0,
    created: seconds(rt.clock),
  };
  try {
    await rt.store.oneStatement((db) => db.insertInto('users').values(row).execute(), options);
  } catch (err) {
    if (isUniqueViolation(err)) throw errors.duplicateUser(p.id);
    throw err;
  }
  return userToWire(row, []);
}

/**
 * A retrieve is one statement: the user and its live settle accounts (at most
 * MAX_SETTLE_ACCOUNTS_PER_USER, creation refuses more), newest first, joined; one constant SQL
 * text per engine, so nothing is built per request and the prepared statement is reused. A user
 * without settle accounts is one row whose sa_ columns are null.
 */
const RETRIEVE_USER_SQL = (p: (n: number) => string) =>
  'select u.*, s.id as sa_id, s.created as sa_created, s.livemode as sa_livemode, s.channel as sa_channel, s.recipient as sa_recipient ' +
  'from users u left join settle_accounts s on s.user_pk = u.pk and s.deleted = 0 ' +
  `where u.app = ${p(1)} and u.livemode = ${p(2)} and u.id = ${p(3)} ` +
  `order by s.created desc, s.id desc limit ${MAX_SETTLE_ACCOUNTS_PER_USER}`;
/** Exported for its query plan's test (test/point_lookup_plans.test.ts). */
export const RETRIEVE_SQL = { sqlite: RETRIEVE_USER_SQL(() => '?'), postgres: RETRIEVE_USER_SQL((n) => `$${n}`) } as const;

type RetrieveRow = UserRow & {
  sa_id: string | null;
  sa_created: number | null;
  sa_livemode: number | null;
  sa_channel: string | null;
  sa_recipient: string | null;
};

export async function retrieveUser(rt: Runtime, scope: Scope, id: string): Promise<User> {
  const { db, engine } = rt.store;
  const query = CompiledQuery.raw(RETRIEVE_SQL[engine], [scope.app, mode(scope), id]) as CompiledQuery<RetrieveRow>;
  const { rows } = await db.executeQuery(query);
  const row = rows[0];
  if (!row) throw errors.notFound('user', id);
  const accounts: SettleAccount[] = [];
  for (const r of rows) {
    if (r.sa_id === null) continue;
    accounts.push(settleAccountToWire({ id: r.sa_id, created: r.sa_created!, livemode: r.sa_livemode!, channel: r.sa_channel!, recipient: r.sa_recipient! }));
  }
  return userToWire(row, accounts);
}

export async function listUsers(
  rt: Runtime,
  scope: Scope,
  p: ListParams & { type?: string },
): Promise<{ data: User[]; hasMore: boolean }> {
  const { rows, hasMore } = await listPage<UserRow>(
    rt.store.db,
    'users',
    (qb) => {
      qb = qb.where('app', '=', scope.app).where('livemode', '=', mode(scope));
      return p.type ? qb.where('type', '=', p.type) : qb;
    },
    p,
    'pk',
  );
  const accounts = await settleAccountsOfUsers(rt.store.db, rows.map((r) => r.pk));
  return { data: rows.map((row) => userToWire(row, accounts.get(row.pk) ?? [])), hasMore };
}

export async function updateUser(rt: Runtime, scope: Scope, id: string, p: UserUpdateParams): Promise<User> {
  const keys = Object.keys(p);
  // Ping++: `disabled` is changed alone, never together with profile fields.
  if (p.disabled !== undefined && keys.length > 1) {
    throw errors.invalidParam('disabled', 'must be sent alone, without other fields', '必须单独更新，不能与其他字段同时提交');
  }
  const row = await findUser(rt.store.db, scope, id);
  if (!row) throw errors.notFound('user', id);
  const set: Partial<UserRow> = {};
  if (p.disabled !== undefined) {
    if (id === '0') throw errors.invalidParam('disabled', 'the system user "0" cannot be disabled', '系统用户 "0" 不能被禁用');
    set.disabled = p.disabled ? 1 : 0;
  }
  for (const k of PROFILE_KEYS) {
    if (k in p) set[k] = (k === 'gender' ? p[k] || null : p[k]) ?? null;
  }
  if ('metadata' in p) set.metadata = metadataText(p.metadata);
  if (Object.keys(set).length > 0) {
    await rt.store.oneStatement((db) => db.updateTable('users').set(set).where('pk', '=', row.pk).execute());
  }
  return retrieveUser(rt, scope, id);
}
