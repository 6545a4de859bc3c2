import { sha256Hex } from '../security/secrets.ts';
import type { Db } from '../store/db.ts';
import { prepared } from '../store/prepared.ts';
import { mode, type UserRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { BalanceLimitExceeded, InsufficientFunds } from '../ledger/ledger.ts';
import type { Metadata } from '@tixian/sdk';

/** Who is asking: one app of one account, in one mode (test and live are separate worlds). */
export interface Scope {
  accountId: string;
  app: string;
  livemode: boolean;
  requestId: string | null;
}

export { mode };

export type { WriteOptions } from '../store/db.ts';

export function parseJsonObject<T = Record<string, unknown>>(text: string): T {
  return JSON.parse(text) as T;
}

export function metadataText(metadata: Metadata | null | undefined): string {
  return JSON.stringify(metadata ?? {});
}

/** Stable fingerprint of create parameters (key order does not matter; SDKs differ in it). */
export function requestHash(params: unknown): string {
  return sha256Hex(canonicalJson(params));
}

/**
 * JSON with object keys sorted and null or undefined members left out; in arrays they are `null`.
 * Written as loops, not map/filter/join: it runs on every create (~2 µs less each than that way).
 * The text must never change (request_hash is stored; request_hash.test.ts pins it).
 */
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(v[i]);
    return out + ']';
  }
  const o = v as Record<string, unknown>;
  let out = '{';
  for (const k of Object.keys(o).sort()) {
    const member = o[k];
    if (member === undefined || member === null) continue;
    out += (out.length === 1 ? '' : ',') + JSON.stringify(k) + ':' + canonicalJson(member);
  }
  return out + '}';
}

const FIND_USER = prepared<{ app: string; livemode: number; id: string }, UserRow>((db, p) =>
  db.selectFrom('users').selectAll().where('app', '=', p.app).where('livemode', '=', p.livemode).where('id', '=', p.id),
);

export async function findUser(db: Db, scope: Scope, id: string): Promise<UserRow | undefined> {
  return (await FIND_USER.execute(db, { app: scope.app, livemode: mode(scope), id })).rows[0];
}

/** The user a money movement names: must exist and not be disabled. */
export async function activeUser(db: Db, scope: Scope, id: string, param = 'user'): Promise<UserRow> {
  const user = await findUser(db, scope, id);
  if (!user) throw errors.userNotFound(id, param);
  if (user.disabled) throw errors.userDisabled(id, param);
  return user;
}

type OrderTable = 'balance_bonuses' | 'balance_settlements' | 'balance_transfers' | 'withdrawals';

/**
 * Creates an object keyed by `order_no`, unique per app and mode, in the transaction `create`
 * runs. A retry of the same create (same parameters) returns the object made the first time, so a
 * client that timed out can safely send it again (Java's SDK re-sends POSTs after a 5xx); the same
 * order_no with other parameters is a 400 `duplicate_order_no`.
 *
 * No look-up before the create: the unique index is the check. Whatever refuses an attempt (the
 * index, or the balance an original just spent while this one waited on its row lock) rolls the
 * attempt back whole, and then an original that has committed wins. Only when there is none does
 * the refusal stand, with the ledger's refusals mapped to API errors.
 */
export async function createOnce<T extends { request_hash: string }>(
  db: Db,
  table: OrderTable,
  scope: Scope,
  orderNo: string,
  hash: string,
  create: () => Promise<T>,
  /** Other hashes that also stand for this request (how an earlier version hashed it), made only when an order_no is taken. */
  earlierHashes: () => readonly string[] = () => [],
): Promise<T> {
  try {
    return await create();
  } catch (err) {
    const original = (await db
      .selectFrom(table)
      .selectAll()
      .where('app', '=', scope.app)
      .where('livemode', '=', mode(scope))
      .where('order_no', '=', orderNo)
      .executeTakeFirst()) as T | undefined;
    if (!original) return refusedMovement(err);
    if (original.request_hash !== hash && !earlierHashes().includes(original.request_hash)) throw errors.duplicateOrderNo(orderNo);
    return original;
  }
}

/** Maps the ledger's refusals (raised inside a transaction that has since rolled back) to API errors. */
export function refusedMovement(err: unknown): never {
  if (err instanceof InsufficientFunds) throw errors.insufficientBalance('amount');
  if (err instanceof BalanceLimitExceeded) throw errors.balanceLimitExceeded(err.userId);
  throw err;
}
