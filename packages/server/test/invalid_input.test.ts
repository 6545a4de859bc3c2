import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { describeEngines, Harness } from './helpers/harness.ts';
import { seedExtra } from './helpers/withdrawals.ts';

/**
 * Bad input changes nothing: every request below is one a client could send by mistake (or on
 * purpose). Each must get a 4xx whose body is exactly Ping++'s error JSON (§4.1) naming the
 * offending `param` where one applies, and must leave every table and balance as it was.
 * A fuzz at the end checks that nothing a client can send makes the server answer 5xx.
 */

const ERROR_TYPES = ['invalid_request_error', 'api_error', 'channel_error'];
const MAX_AMOUNT = 2_147_483_647;

interface Ctx {
  h: Harness;
  /** An app of another merchant account. */
  other: CreatedApp;
}

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Relative to `/v1/apps/<our app>`, or a whole path when it starts with `/`. */
  path: string | ((c: Ctx) => string);
  body?: unknown;
  /** Bytes sent as they are (Content-Type application/json unless `contentType` says otherwise). */
  raw?: string | Buffer;
  contentType?: string;
  /** Defaults to our test key; null sends no Authorization header. */
  key?: (c: Ctx) => string | null;
  headers?: Record<string, string>;
  status: number | number[];
  /** The `param` the error must name; null: none applies, so `param` must be absent; undefined: not checked. */
  param: string | null | undefined;
}

/** An id or order_no no case has used: a case that wrongly succeeds must not make the next one a duplicate. */
let freshCount = 0;
const fresh = () => `inv_new_${++freshCount}`;
const bonus = (over: Record<string, unknown>, drop: string[] = []) => {
  const b: Record<string, unknown> = { user: 'inv_alice', amount: 100, order_no: `inv_order_${++freshCount}`, ...over };
  for (const k of drop) delete b[k];
  return b;
};
const manyKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));

const transportAndAuth: Case[] = [
  { name: 'no Authorization header', method: 'POST', path: '/balance_bonuses', body: bonus({}), key: () => null, status: 401, param: null },
  { name: 'an unknown secret key', method: 'POST', path: '/balance_bonuses', body: bonus({}), key: () => 'sk_test_' + 'Z'.repeat(24), status: 401, param: null },
  { name: 'a key of the wrong shape', method: 'GET', path: '/users/inv_alice', key: () => 'pk_test_abc', status: 401, param: null },
  { name: 'an Authorization scheme that is neither Basic nor Bearer', method: 'GET', path: '/users/inv_alice', key: () => null, headers: { authorization: 'Token sk_test_abc' }, status: 401, param: null },
  { name: 'Basic with garbage instead of base64', method: 'GET', path: '/users/inv_alice', key: () => null, headers: { authorization: 'Basic %%%%' }, status: 401, param: null },
  { name: "another account's key on this app", method: 'POST', path: '/balance_bonuses', body: bonus({}), key: (c) => c.other.secret_key_test, status: 404, param: 'app' },
  { name: "this key on another account's app", method: 'POST', path: (c) => `/v1/apps/${c.other.id}/balance_bonuses`, body: bonus({}), status: 404, param: 'app' },
  { name: "this key listing another account's users", method: 'GET', path: (c) => `/v1/apps/${c.other.id}/users`, status: 404, param: 'app' },
  { name: 'an app that does not exist', method: 'GET', path: '/v1/apps/app_doesnotexist0000/users', status: 404, param: 'app' },
  { name: 'the live key naming a user that exists only in test mode', method: 'POST', path: '/balance_bonuses', body: bonus({}), key: (c) => c.h.liveKey, status: 400, param: 'user' },
  { name: 'malformed JSON', method: 'POST', path: '/balance_bonuses', raw: '{"user": "inv_alice", "amount": 1', status: 400, param: null },
  { name: 'a JSON array body', method: 'POST', path: '/balance_bonuses', raw: JSON.stringify([bonus({})]), status: 400, param: null },
  { name: 'a JSON string body', method: 'POST', path: '/users', raw: JSON.stringify(fresh()), status: 400, param: null },
  { name: 'a JSON null body', method: 'PUT', path: '/users/inv_alice', raw: 'null', status: 400, param: null },
  { name: 'a JSON number body', method: 'POST', path: '/balance_settlements', raw: '42', status: 400, param: null },
  { name: 'binary garbage as body', method: 'POST', path: '/balance_bonuses', raw: Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80]), status: 400, param: null },
  { name: 'an empty JSON body', method: 'POST', path: '/balance_bonuses', raw: '', status: 400, param: 'user' },
  { name: 'Content-Type text/plain', method: 'POST', path: '/balance_bonuses', raw: JSON.stringify(bonus({})), contentType: 'text/plain', status: 415, param: null },
  { name: 'Content-Type application/x-www-form-urlencoded', method: 'POST', path: '/balance_bonuses', raw: 'user=inv_alice&amount=100&order_no=inv_never_made', contentType: 'application/x-www-form-urlencoded', status: 415, param: null },
  { name: 'Content-Type multipart/form-data', method: 'POST', path: '/users', raw: '--x\r\nContent-Disposition: form-data; name="id"\r\n\r\nv\r\n--x--', contentType: 'multipart/form-data; boundary=x', status: 415, param: null },
  { name: 'a body over 256 KiB', method: 'POST', path: '/balance_bonuses', raw: JSON.stringify(bonus({ description: 'x'.repeat(300 * 1024) })), status: 413, param: null },
  { name: 'a POST to the read-only balance_transactions', method: 'POST', path: '/balance_transactions', body: {}, status: 404, param: null },
  { name: 'a malformed percent-encoding in the path', method: 'GET', path: '/users/%E0%A4%A', status: 400, param: undefined },
  { name: 'a path id longer than the router accepts', method: 'GET', path: '/users/' + 'a'.repeat(200), status: [400, 404, 414], param: undefined },
];

const userCases: Case[] = [
  { name: 'user create without id', method: 'POST', path: '/users', body: { name: 'x' }, status: 400, param: 'id' },
  { name: 'user id as a number', method: 'POST', path: '/users', body: { id: 123 }, status: 400, param: 'id' },
  { name: 'user id with a space and "!"', method: 'POST', path: '/users', body: { id: 'bad id!' }, status: 400, param: 'id' },
  { name: 'user id of 65 characters', method: 'POST', path: '/users', body: { id: 'u'.repeat(65) }, status: 400, param: 'id' },
  { name: 'user id starting with "-"', method: 'POST', path: '/users', body: { id: '-dash' }, status: 400, param: 'id' },
  { name: 'user id empty', method: 'POST', path: '/users', body: { id: '' }, status: 400, param: 'id' },
  { name: 'user id already taken', method: 'POST', path: '/users', body: { id: 'inv_alice' }, status: 400, param: 'id' },
  { name: 'user id "0" (the system user)', method: 'POST', path: '/users', body: { id: '0' }, status: 400, param: 'id' },
  { name: 'user create with an unknown field', method: 'POST', path: '/users', body: { id: fresh(), available_balance: 100 }, status: 400, param: 'available_balance' },
  { name: 'gender not MALE/FEMALE', method: 'POST', path: '/users', body: { id: fresh(), gender: 'X' }, status: 400, param: 'gender' },
  { name: 'name of 129 characters', method: 'POST', path: '/users', body: { id: fresh(), name: 'n'.repeat(129) }, status: 400, param: 'name' },
  { name: 'email as a number', method: 'POST', path: '/users', body: { id: fresh(), email: 42 }, status: 400, param: 'email' },
  { name: 'name carrying U+0000 (PostgreSQL text cannot hold it)', method: 'POST', path: '/users', body: { id: fresh(), name: 'a\u0000b' }, status: 400, param: 'name' },
  { name: 'metadata as an array', method: 'POST', path: '/users', body: { id: fresh(), metadata: ['a'] }, status: 400, param: 'metadata' },
  { name: 'metadata as a string', method: 'POST', path: '/users', body: { id: fresh(), metadata: 'tier=gold' }, status: 400, param: 'metadata' },
  { name: 'metadata with 51 keys', method: 'POST', path: '/users', body: { id: fresh(), metadata: manyKeys(51) }, status: 400, param: 'metadata' },
  { name: 'metadata value of 501 characters', method: 'POST', path: '/users', body: { id: fresh(), metadata: { k: 'v'.repeat(501) } }, status: 400, param: 'metadata[k]' },
  { name: 'metadata value that is an object', method: 'POST', path: '/users', body: { id: fresh(), metadata: { a: { b: 1 } } }, status: 400, param: 'metadata[a]' },
  { name: 'metadata key of 41 characters', method: 'POST', path: '/users', body: { id: fresh(), metadata: { ['k'.repeat(41)]: 'v' } }, status: 400, param: 'metadata' },
  { name: 'metadata with an empty key', method: 'POST', path: '/users', body: { id: fresh(), metadata: { '': 'v' } }, status: 400, param: 'metadata' },
  { name: 'parent_user_id with bad characters', method: 'POST', path: '/users', body: { id: fresh(), parent_user_id: 'a b' }, status: 400, param: 'parent_user_id' },
  { name: 'disabled together with name', method: 'PUT', path: '/users/inv_alice', body: { disabled: true, name: 'x' }, status: 400, param: 'disabled' },
  { name: 'disabled together with metadata', method: 'PUT', path: '/users/inv_off', body: { disabled: false, metadata: { a: '1' } }, status: 400, param: 'disabled' },
  { name: 'disabled as the string "true"', method: 'PUT', path: '/users/inv_alice', body: { disabled: 'true' }, status: 400, param: 'disabled' },
  { name: 'disabled as null', method: 'PUT', path: '/users/inv_alice', body: { disabled: null }, status: 400, param: 'disabled' },
  { name: 'disabling the system user "0"', method: 'PUT', path: '/users/0', body: { disabled: true }, status: 400, param: 'disabled' },
  { name: 'changing a user id by update', method: 'PUT', path: '/users/inv_alice', body: { id: 'mallory' }, status: 400, param: 'id' },
  { name: 'update with metadata of 51 keys', method: 'PUT', path: '/users/inv_alice', body: { metadata: manyKeys(51) }, status: 400, param: 'metadata' },
  { name: 'update of an unknown user', method: 'PUT', path: '/users/nobody', body: { name: 'x' }, status: 404, param: 'id' },
  { name: 'update with a user id of 65 characters in the path', method: 'PUT', path: '/users/' + 'u'.repeat(65), body: { name: 'x' }, status: 400, param: 'id' },
  { name: 'retrieve of an unknown user', method: 'GET', path: '/users/nobody', status: 404, param: 'id' },
  { name: 'retrieve with a user id of 65 characters', method: 'GET', path: '/users/' + 'u'.repeat(65), status: 400, param: 'id' },
  { name: 'users list per_page=0', method: 'GET', path: '/users?per_page=0', status: 400, param: 'per_page' },
  { name: 'users list per_page=101', method: 'GET', path: '/users?per_page=101', status: 400, param: 'per_page' },
  { name: 'users list page=0', method: 'GET', path: '/users?page=0', status: 400, param: 'page' },
  { name: 'users list page=abc', method: 'GET', path: '/users?page=abc', status: 400, param: 'page' },
  { name: 'users list per_page=1.5', method: 'GET', path: '/users?per_page=1.5', status: 400, param: 'per_page' },
  { name: 'users list limit=0', method: 'GET', path: '/users?limit=0', status: 400, param: 'limit' },
  { name: 'users list limit=101', method: 'GET', path: '/users?limit=101', status: 400, param: 'limit' },
  { name: 'users list starting_after an unknown id', method: 'GET', path: '/users?limit=2&starting_after=nobody', status: 400, param: 'starting_after' },
  { name: 'users list ending_before an unknown id', method: 'GET', path: '/users?ending_before=nobody', status: 400, param: 'ending_before' },
  { name: 'users list with both cursors', method: 'GET', path: '/users?starting_after=inv_alice&ending_before=inv_off', status: 400, param: 'ending_before' },
  { name: 'users list type=vip', method: 'GET', path: '/users?type=vip', status: 400, param: 'type' },
  { name: 'users list created[gte]=-1', method: 'GET', path: '/users?created%5Bgte%5D=-1', status: 400, param: 'created[gte]' },
  { name: 'users list created[lt]=abc (raw brackets, as Ruby sends)', method: 'GET', path: '/users?created[lt]=abc', status: 400, param: 'created[lt]' },
  { name: 'users list created[gte] beyond any timestamp', method: 'GET', path: '/users?created%5Bgte%5D=99999999999999999999', status: 400, param: 'created[gte]' },
];

const bonusCases: Case[] = [
  { name: 'bonus amount 0', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: 0 }), status: 400, param: 'amount' },
  { name: 'bonus amount negative', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: -100 }), status: 400, param: 'amount' },
  { name: 'bonus amount fractional', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: 1.5 }), status: 400, param: 'amount' },
  { name: 'bonus amount 2^31', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: MAX_AMOUNT + 1 }), status: 400, param: 'amount' },
  { name: 'bonus amount as a string', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: '100' }), status: 400, param: 'amount' },
  { name: 'bonus amount null', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: null }), status: 400, param: 'amount' },
  { name: 'bonus amount true', method: 'POST', path: '/balance_bonuses', body: bonus({ amount: true }), status: 400, param: 'amount' },
  { name: 'bonus amount 1e400 (Infinity once parsed)', method: 'POST', path: '/balance_bonuses', raw: '{"user":"inv_alice","amount":1e400,"order_no":"inv_never_made"}', status: 400, param: 'amount' },
  { name: 'bonus amount sent twice, the last one negative', method: 'POST', path: '/balance_bonuses', raw: '{"user":"inv_alice","amount":100,"order_no":"inv_never_made","amount":-100}', status: 400, param: 'amount' },
  { name: 'bonus without amount', method: 'POST', path: '/balance_bonuses', body: bonus({}, ['amount']), status: 400, param: 'amount' },
  { name: 'bonus without user', method: 'POST', path: '/balance_bonuses', body: bonus({}, ['user']), status: 400, param: 'user' },
  { name: 'bonus to an unknown user', method: 'POST', path: '/balance_bonuses', body: bonus({ user: 'nobody' }), status: 400, param: 'user' },
  { name: 'bonus to a disabled user', method: 'POST', path: '/balance_bonuses', body: bonus({ user: 'inv_off' }), status: 400, param: 'user' },
  { name: 'bonus to the system user "0"', method: 'POST', path: '/balance_bonuses', body: bonus({ user: '0' }), status: 400, param: 'user' },
  { name: 'bonus user as a number', method: 'POST', path: '/balance_bonuses', body: bonus({ user: 42 }), status: 400, param: 'user' },
  { name: 'bonus user of 65 characters', method: 'POST', path: '/balance_bonuses', body: bonus({ user: 'u'.repeat(65) }), status: 400, param: 'user' },
  { name: 'bonus user with bad characters', method: 'POST', path: '/balance_bonuses', body: bonus({ user: 'a b/c' }), status: 400, param: 'user' },
  { name: 'bonus without order_no', method: 'POST', path: '/balance_bonuses', body: bonus({}, ['order_no']), status: 400, param: 'order_no' },
  { name: 'bonus order_no with a space', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: 'order 1' }), status: 400, param: 'order_no' },
  { name: 'bonus order_no in Chinese', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: '订单1' }), status: 400, param: 'order_no' },
  { name: 'bonus order_no of 65 characters', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: 'o'.repeat(65) }), status: 400, param: 'order_no' },
  { name: 'bonus order_no empty', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: '' }), status: 400, param: 'order_no' },
  { name: 'bonus order_no as a number', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: 12345 }), status: 400, param: 'order_no' },
  { name: 'bonus order_no reused with another amount', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: 'inv_dup_bonus', amount: 201 }), status: 400, param: 'order_no' },
  { name: 'bonus order_no reused for another user', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: 'inv_dup_bonus', user: 'inv_bob', amount: 200 }), status: 400, param: 'order_no' },
  { name: 'bonus order_no reused with other metadata', method: 'POST', path: '/balance_bonuses', body: bonus({ order_no: 'inv_dup_bonus', amount: 200, metadata: { x: 'y' } }), status: 400, param: 'order_no' },
  { name: 'bonus description of 256 characters', method: 'POST', path: '/balance_bonuses', body: bonus({ description: 'd'.repeat(256) }), status: 400, param: 'description' },
  { name: 'bonus description as a number', method: 'POST', path: '/balance_bonuses', body: bonus({ description: 7 }), status: 400, param: 'description' },
  { name: 'bonus description carrying U+0000', method: 'POST', path: '/balance_bonuses', body: bonus({ description: 'gift\u0000' }), status: 400, param: 'description' },
  { name: 'bonus with an unknown field', method: 'POST', path: '/balance_bonuses', body: bonus({ channel: 'alipay' }), status: 400, param: 'channel' },
  { name: 'bonus with a nested unknown field', method: 'POST', path: '/balance_bonuses', body: bonus({ extra: { account: '1' } }), status: 400, param: 'extra' },
  { name: 'bonus metadata with 51 keys', method: 'POST', path: '/balance_bonuses', body: bonus({ metadata: manyKeys(51) }), status: 400, param: 'metadata' },
  { name: 'bonus metadata value as an array', method: 'POST', path: '/balance_bonuses', body: bonus({ metadata: { tags: ['a'] } }), status: 400, param: 'metadata[tags]' },
  { name: 'bonus retrieve of an unknown id', method: 'GET', path: '/balance_bonuses/650000000000000000000000', status: 404, param: 'id' },
  { name: 'bonus list per_page=101', method: 'GET', path: '/balance_bonuses?per_page=101', status: 400, param: 'per_page' },
  { name: 'bonus list with a user of 65 characters', method: 'GET', path: '/balance_bonuses?user=' + 'u'.repeat(65), status: 400, param: 'user' },
  { name: 'bonus list starting_after an unknown id', method: 'GET', path: '/balance_bonuses?starting_after=650000000000000000000000', status: 400, param: 'starting_after' },
];

const settlement = (over: Record<string, unknown>) => bonus(over);
const settlementCases: Case[] = [
  { name: 'settlement amount 0', method: 'POST', path: '/balance_settlements', body: settlement({ amount: 0 }), status: 400, param: 'amount' },
  { name: 'settlement amount negative', method: 'POST', path: '/balance_settlements', body: settlement({ amount: -1 }), status: 400, param: 'amount' },
  { name: 'settlement amount 2^31', method: 'POST', path: '/balance_settlements', body: settlement({ amount: 2 ** 31 }), status: 400, param: 'amount' },
  { name: 'settlement amount as a string', method: 'POST', path: '/balance_settlements', body: settlement({ amount: '1' }), status: 400, param: 'amount' },
  { name: 'settlement amount 0.01 (yuan instead of fen)', method: 'POST', path: '/balance_settlements', body: settlement({ amount: 0.01 }), status: 400, param: 'amount' },
  { name: 'settlement to an unknown user', method: 'POST', path: '/balance_settlements', body: settlement({ user: 'nobody' }), status: 400, param: 'user' },
  { name: 'settlement to a disabled user', method: 'POST', path: '/balance_settlements', body: settlement({ user: 'inv_off' }), status: 400, param: 'user' },
  { name: 'settlement to the system user "0"', method: 'POST', path: '/balance_settlements', body: settlement({ user: '0' }), status: 400, param: 'user' },
  { name: 'settlement order_no reused with another amount', method: 'POST', path: '/balance_settlements', body: settlement({ order_no: 'inv_dup_settle', amount: 999 }), status: 400, param: 'order_no' },
  { name: 'settlement order_no with a dot', method: 'POST', path: '/balance_settlements', body: settlement({ order_no: 'a.b' }), status: 400, param: 'order_no' },
  { name: 'settlement metadata value of 501 characters', method: 'POST', path: '/balance_settlements', body: settlement({ metadata: { note: 'n'.repeat(501) } }), status: 400, param: 'metadata[note]' },
  { name: 'settlement description of 256 characters', method: 'POST', path: '/balance_settlements', body: settlement({ description: 'd'.repeat(256) }), status: 400, param: 'description' },
  { name: 'settlement with user_fee (not a settlement field)', method: 'POST', path: '/balance_settlements', body: settlement({ user_fee: 1 }), status: 400, param: 'user_fee' },
  { name: 'settlement retrieve of an unknown id', method: 'GET', path: '/balance_settlements/670000000000000000000000', status: 404, param: 'id' },
  { name: 'settlement list page=0', method: 'GET', path: '/balance_settlements?page=0', status: 400, param: 'page' },
];

const transactionCases: Case[] = [
  { name: 'balance_transaction retrieve of an unknown id', method: 'GET', path: '/balance_transactions/600000000000000000000000', status: 404, param: 'id' },
  { name: 'balance_transactions list per_page=0', method: 'GET', path: '/balance_transactions?per_page=0', status: 400, param: 'per_page' },
  { name: 'balance_transactions list per_page=101', method: 'GET', path: '/balance_transactions?per_page=101', status: 400, param: 'per_page' },
  { name: 'balance_transactions list page=-1', method: 'GET', path: '/balance_transactions?page=-1', status: 400, param: 'page' },
  { name: 'balance_transactions list starting_after an unknown id', method: 'GET', path: '/balance_transactions?starting_after=600000000000000000000000', status: 400, param: 'starting_after' },
  { name: 'balance_transactions list created[gt]=x', method: 'GET', path: '/balance_transactions?created%5Bgt%5D=x', status: 400, param: 'created[gt]' },
  { name: 'balance_transactions list with a user of 65 characters', method: 'GET', path: '/balance_transactions?user=' + 'u'.repeat(65), status: 400, param: 'user' },
];

/**
 * An empty cursor names no object (no id is empty): a 400 on the cursor that was sent, the same on
 * every list, not the first page and not the other cursor.
 */
const cursorCases: Case[] = [
  { name: 'users list starting_after empty', method: 'GET', path: '/users?limit=2&starting_after=', status: 400, param: 'starting_after' },
  { name: 'users list starting_after empty, no limit', method: 'GET', path: '/users?starting_after=', status: 400, param: 'starting_after' },
  { name: 'users list ending_before empty', method: 'GET', path: '/users?ending_before=', status: 400, param: 'ending_before' },
  { name: 'users list both cursors, starting_after empty', method: 'GET', path: '/users?starting_after=&ending_before=inv_alice', status: 400, param: 'ending_before' },
  { name: 'withdrawals list starting_after empty', method: 'GET', path: '/withdrawals?status=created&starting_after=', status: 400, param: 'starting_after' },
  { name: 'withdrawals list ending_before empty', method: 'GET', path: '/withdrawals?limit=3&ending_before=', status: 400, param: 'ending_before' },
  { name: 'batch_withdrawals list starting_after empty', method: 'GET', path: '/batch_withdrawals?starting_after=', status: 400, param: 'starting_after' },
  { name: 'balance_transfers list starting_after empty', method: 'GET', path: '/balance_transfers?starting_after=', status: 400, param: 'starting_after' },
  { name: 'balance_bonuses list ending_before empty', method: 'GET', path: '/balance_bonuses?ending_before=', status: 400, param: 'ending_before' },
  { name: 'balance_transactions list starting_after empty', method: 'GET', path: '/balance_transactions?user=inv_alice&starting_after=', status: 400, param: 'starting_after' },
  { name: 'settle_accounts list starting_after empty', method: 'GET', path: '/users/inv_alice/settle_accounts?starting_after=', status: 400, param: 'starting_after' },
  { name: 'events list starting_after empty', method: 'GET', path: '/v1/events?starting_after=', status: 400, param: 'starting_after' },
];

const allCases = [...transportAndAuth, ...userCases, ...bonusCases, ...settlementCases, ...transactionCases, ...cursorCases];

/** Percent-encodes every byte but unreserved ones; unlike encodeURIComponent it takes any bytes. */
function pctBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : '%' + b.toString(16).padStart(2, '0').toUpperCase();
  return out;
}
/** A string's UTF-8 bytes percent-encoded (lone surrogates become U+FFFD, as on the wire). */
const pct = (s: string) => pctBytes(Buffer.from(s, 'utf8'));

type Response = Awaited<ReturnType<Harness['request']>>;

/** What is wrong with a response that should be a Ping++ error (empty when nothing). */
function errorShapeProblems(res: Response): string[] {
  const problems: string[] = [];
  if (!String(res.headers['content-type'] ?? '').startsWith('application/json')) problems.push(`content-type ${res.headers['content-type']}`);
  const body = res.json as unknown;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return [...problems, `body is not a JSON object: ${res.body.slice(0, 200)}`];
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'error') problems.push(`top-level keys ${JSON.stringify(keys)}`);
  const error = (body as { error?: unknown }).error;
  if (error === null || typeof error !== 'object' || Array.isArray(error)) return [...problems, `error is not an object: ${res.body.slice(0, 200)}`];
  const e = error as Record<string, unknown>;
  for (const k of Object.keys(e)) if (!['type', 'message', 'code', 'param'].includes(k)) problems.push(`unexpected error.${k}`);
  if (typeof e.type !== 'string' || !ERROR_TYPES.includes(e.type)) problems.push(`error.type ${JSON.stringify(e.type)}`);
  if (typeof e.message !== 'string' || e.message.length === 0) problems.push(`error.message ${JSON.stringify(e.message)}`);
  // Go type-asserts these to string when present: null or a number would panic it.
  for (const k of ['code', 'param']) if (k in e && typeof e[k] !== 'string') problems.push(`error.${k} ${JSON.stringify(e[k])}`);
  return problems;
}

describeEngines('invalid input', (engine) => {
  let h: Harness;
  let ctx: Ctx;

  beforeAll(async () => {
    h = await Harness.start(engine);
    const other = await createApp(h.rt, { name: 'someone else', account: 'inv-other-account' });
    ctx = { h, other };
    await h.createUser('inv_alice');
    await h.createUser('inv_bob');
    await h.createUser('inv_off');
    await h.fund('inv_alice', 1000);
    for (const [path, order_no] of [['/balance_bonuses', 'inv_dup_bonus'], ['/balance_settlements', 'inv_dup_settle']] as const) {
      const res = await h.request('POST', h.appPath(path), { body: { user: 'inv_alice', amount: 200, order_no } });
      expect(res.status).toBe(200);
    }
    const off = await h.request('PUT', h.appPath('/users/inv_off'), { body: { disabled: true } });
    expect(off.json.disabled).toBe(true);
  });
  afterAll(async () => h?.close());

  it(`has at least 40 distinct invalid requests (${allCases.length})`, () => {
    expect(allCases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(allCases.map((c) => c.name)).size).toBe(allCases.length);
  });

  describe.each([
    ['transport and auth', transportAndAuth],
    ['users', userCases],
    ['balance_bonuses', bonusCases],
    ['balance_settlements', settlementCases],
    ['balance_transactions', transactionCases],
    ['empty list cursors', cursorCases],
  ] as const)('%s', (_group, cases) => {
    it.each(cases)('$name → $status', async (c) => {
      const before = await h.snapshot();
      const p = typeof c.path === 'function' ? c.path(ctx) : c.path;
      const url = p.startsWith('/v1/') ? p : h.appPath(p);
      const headers: Record<string, string> = { ...c.headers };
      if (c.raw !== undefined) headers['content-type'] = c.contentType ?? 'application/json; charset=UTF-8';
      const res = await h.request(c.method, url, {
        key: c.key ? c.key(ctx) : h.testKey,
        headers,
        ...(c.raw !== undefined ? { rawBody: c.raw } : c.body !== undefined ? { body: c.body } : {}),
      });

      const statuses = Array.isArray(c.status) ? c.status : [c.status];
      expect(statuses, `status ${res.status}: ${res.body.slice(0, 300)}`).toContain(res.status);
      expect(errorShapeProblems(res), res.body.slice(0, 300)).toEqual([]);
      if (c.param === null) expect(res.json.error).not.toHaveProperty('param');
      else if (c.param !== undefined) expect(res.json.error.param).toBe(c.param);
      expect(await h.snapshot()).toEqual(before);
    });
  });

  it('errors speak English when asked, with the same type and param', async () => {
    const body = bonus({ amount: 0 });
    const zh = await h.request('POST', h.appPath('/balance_bonuses'), { body });
    const en = await h.request('POST', h.appPath('/balance_bonuses'), { body, headers: { 'accept-language': 'en-US,en;q=0.9' } });
    expect(errorShapeProblems(en)).toEqual([]);
    expect(en.json.error.param).toBe('amount');
    expect(en.json.error.type).toBe(zh.json.error.type);
    expect(en.json.error.message).not.toBe(zh.json.error.message);
    expect(en.json.error.message).toMatch(/amount/);
  });

  it('refuses a credit that would take a balance above 2^31−1 (Java and C# read balances as 32-bit ints)', async () => {
    await h.createUser('inv_rich');
    const first = await h.request('POST', h.appPath('/balance_bonuses'), { body: { user: 'inv_rich', amount: MAX_AMOUNT, order_no: 'inv_rich_1' } });
    expect(first.status).toBe(200);
    const before = await h.snapshot();
    for (const path of ['/balance_bonuses', '/balance_settlements']) {
      const res = await h.request('POST', h.appPath(path), { body: { user: 'inv_rich', amount: 1, order_no: 'inv_rich_2' } });
      expect(res.status, res.body).toBe(400);
      expect(errorShapeProblems(res)).toEqual([]);
      expect(res.json.error.param).toBe('amount');
    }
    expect(await h.snapshot()).toEqual(before);
    const rich = await h.request('GET', h.appPath('/users/inv_rich'));
    expect(rich.json.available_balance).toBe(MAX_AMOUNT);
  });

  it('counts what open withdrawals hold against that bound: a cancel gives it back, and that return is never refused', async () => {
    await h.createUser('inv_held');
    await h.createUser('inv_giver');
    await h.fund('inv_held', MAX_AMOUNT);
    await h.fund('inv_giver', 5_000);
    const w = await h.request('POST', h.appPath('/withdrawals'), { body: { user: 'inv_held', amount: 1000, channel: 'alipay', order_no: 'invheldw1', extra: seedExtra('alipay') } });
    expect(w.status, w.body).toBe(200);
    const before = await h.snapshot();
    // Available is MAX − 1000 now, but the 1,000 held comes back on a cancel: no credit fits.
    for (const [path, body] of [
      ['/balance_bonuses', { user: 'inv_held', amount: 1, order_no: 'inv_held_b' }],
      ['/balance_settlements', { user: 'inv_held', amount: 1, order_no: 'inv_held_s' }],
      ['/balance_transfers', { user: 'inv_giver', recipient: 'inv_held', amount: 1, order_no: 'inv_held_t' }],
    ] as const) {
      const res = await h.request('POST', h.appPath(path), { body });
      expect(res.status, `${path}: ${res.body}`).toBe(400);
      expect(res.json.error).toMatchObject({ code: 'balance_limit_exceeded', param: 'amount' });
    }
    expect(await h.snapshot()).toEqual(before);
    expect((await h.request('PUT', h.appPath(`/withdrawals/${w.json.id}`), { body: { status: 'canceled' } })).status).toBe(200);
    expect((await h.request('GET', h.appPath('/users/inv_held'))).json.available_balance).toBe(MAX_AMOUNT);
    // With nothing held the room is exact again: none left.
    expect((await h.request('POST', h.appPath('/balance_bonuses'), { body: { user: 'inv_held', amount: 1, order_no: 'inv_held_b2' } })).status).toBe(400);
  });

  it('never answers 5xx to NUL characters or out-of-range numbers in paths and query strings', async () => {
    // PostgreSQL text cannot hold U+0000 and bigint stops at 2^63−1; these must be refused (or
    // match nothing), not reach the database as a 500.
    const urls = [
      '/users/a%00b',
      '/balance_bonuses/%00',
      '/balance_settlements/6700%00',
      '/balance_transactions/%00',
      '/balance_transactions?user=inv_alice%00',
      '/balance_transactions?type=%00',
      '/balance_bonuses?user=%00',
      '/users?limit=1&starting_after=%00',
      '/users?created=99999999999999999999',
      '/balance_transactions?created%5Blte%5D=1e30',
      // `type` filters balance_transactions only; elsewhere it is an unknown parameter.
      '/balance_bonuses?type=receipts_extra',
      '/balance_settlements?type=credited',
    ];
    const before = await h.snapshot();
    for (const u of urls) {
      const res = await h.request('GET', h.appPath(u));
      expect(res.status, `${u}: ${res.body.slice(0, 200)}`).toBeLessThan(500);
      if (res.status >= 400) expect(errorShapeProblems(res), u).toEqual([]);
    }
    const put = await h.request('PUT', h.appPath('/users/inv_alice%00'), { body: { name: 'x' } });
    expect(put.status, put.body).toBeLessThan(500);
    const app = await h.request('GET', '/v1/apps/app_%00/users');
    expect([400, 404], app.body).toContain(app.status);
    expect(errorShapeProblems(app)).toEqual([]);
    expect(app.json.error.param).toBe('app');
    expect(await h.snapshot()).toEqual(before);
  });

  describe('fuzz: nothing a client can send gets a 5xx', () => {
    const FUZZ_RUNS = 120;
    const contentTypes = ['application/json', 'application/json; charset=UTF-8', 'text/plain', 'application/x-www-form-urlencoded', ''];

    // Values: sometimes plausible, often anything at all. Characters that have broken servers
    // (U+0000, which PostgreSQL text cannot hold; lone surrogates; quotes) come up often.
    const char = fc.oneof(
      { arbitrary: fc.constantFrom('\u0000', '\ud800', '\u202e', '"', '\\', '%', "'"), weight: 1 },
      { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 4 },
    );
    const text = (maxLength: number) => fc.string({ unit: char, maxLength });
    const anything = fc.oneof(
      fc.jsonValue(),
      text(80),
      fc.constantFrom(0, -1, 1.5, MAX_AMOUNT, MAX_AMOUNT + 1, 1e21, true, null, 'fz_user', 'inv_off', '0', 'o'.repeat(65)),
      fc.dictionary(text(45), fc.oneof(text(600), fc.jsonValue()), { maxKeys: 55 }),
    );

    /**
     * A valid body for the route with up to three fields replaced, deleted or added: every run
     * gets past JSON parsing and most get to validation, the service and the database.
     */
    let fuzzCount = 0;
    const mutated = (base: () => Record<string, unknown>, fields: string[]) =>
      fc
        .array(fc.record({ key: fc.oneof({ arbitrary: fc.constantFrom(...fields), weight: 4 }, { arbitrary: text(12), weight: 1 }), value: fc.option(anything, { nil: undefined, freq: 4 }) }), { maxLength: 3 })
        .map((mutations) => {
          const b = base();
          for (const m of mutations) {
            if (m.value === undefined) delete b[m.key];
            else b[m.key] = m.value;
          }
          return { text: JSON.stringify(b), contentType: 'application/json; charset=UTF-8' };
        });
    const garbage = fc.oneof(
      fc.record({ text: fc.jsonValue().map((v) => JSON.stringify(v) ?? ''), contentType: fc.constantFrom(...contentTypes) }),
      fc.record({ text: text(200), contentType: fc.constantFrom(...contentTypes) }),
      fc.record({ bytes: fc.uint8Array({ maxLength: 200 }), contentType: fc.constantFrom(...contentTypes) }),
    );
    const credit = () => ({ user: 'fz_user', amount: 1, order_no: `fz_${++fuzzCount}`, description: 'd', metadata: { a: '1' } });
    const creditFields = ['user', 'amount', 'order_no', 'description', 'metadata'];
    const profileFields = ['name', 'email', 'gender', 'mobile', 'address', 'avatar', 'metadata', 'parent_user_id', 'disabled', 'id'];

    const routes: [string, 'POST' | 'PUT', string, fc.Arbitrary<{ text: string; contentType: string } | { bytes: Uint8Array; contentType: string }>][] = [
      ['create user', 'POST', '/users', mutated(() => ({ id: `fz_u${++fuzzCount}`, name: 'n', metadata: { a: '1' } }), profileFields)],
      ['update user', 'PUT', '/users/fz_update', mutated(() => ({ name: 'n', gender: 'MALE' }), profileFields)],
      ['update unknown user', 'PUT', '/users/fz_nobody', mutated(() => ({ name: 'n' }), profileFields)],
      ['create balance_bonus', 'POST', '/balance_bonuses', mutated(credit, creditFields)],
      ['create balance_settlement', 'POST', '/balance_settlements', mutated(credit, creditFields)],
    ];

    beforeAll(async () => {
      await h.createUser('fz_user');
      await h.createUser('fz_update');
    });

    it.each(routes)('%s: random bodies', async (_name, method, path, valid) => {
      await fc.assert(
        fc.asyncProperty(fc.oneof({ arbitrary: valid, weight: 3 }, { arbitrary: garbage, weight: 1 }), async (b) => {
          const rawBody = 'bytes' in b ? Buffer.from(b.bytes) : b.text;
          const headers: Record<string, string> = b.contentType ? { 'content-type': b.contentType } : {};
          const res = await h.request(method, h.appPath(path), { rawBody, headers });
          expect(res.status, res.body.slice(0, 300)).toBeLessThan(500);
          if (res.status >= 400) expect(errorShapeProblems(res), res.body.slice(0, 300)).toEqual([]);
          else expect(res.json.object, res.body.slice(0, 300)).toMatch(/^(user|balance_bonus|balance_settlement)$/);
        }),
        { numRuns: FUZZ_RUNS, interruptAfterTimeLimit: 30_000 },
      );
    });

    it('random query strings on every list', async () => {
      const lists = ['/users', '/balance_bonuses', '/balance_settlements', '/balance_transactions'];
      const names = ['page', 'per_page', 'limit', 'starting_after', 'ending_before', 'user', 'type', 'created', 'created[gte]', 'created[lt]'];
      const value = fc.oneof(fc.integer().map(String), text(40), fc.constantFrom('1e309', '99999999999999999999', '-0', '0x10'));
      const query = fc.dictionary(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 10 })), value, { maxKeys: 5 });
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...lists), query, async (list, q) => {
          const qs = Object.entries(q).map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
          const res = await h.request('GET', h.appPath(`${list}?${qs}`));
          expect(res.status, `${list}?${qs}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) expect(errorShapeProblems(res), res.body.slice(0, 300)).toEqual([]);
          else expect(res.json.object).toBe('list');
        }),
        { numRuns: FUZZ_RUNS * 2, interruptAfterTimeLimit: 30_000 },
      );
    });

    it('random path segments, also percent-encoding bytes that are not UTF-8', async () => {
      const segment = fc.oneof(text(80).map(pct), fc.uint8Array({ maxLength: 40 }).map((b) => pctBytes(Buffer.from(b))));
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('/users/', '/balance_bonuses/', '/balance_settlements/', '/balance_transactions/'), segment, async (prefix, id) => {
          const res = await h.request('GET', h.appPath(prefix + id));
          expect(res.status, `${prefix}${id}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) expect(errorShapeProblems(res), res.body.slice(0, 300)).toEqual([]);
        }),
        { numRuns: FUZZ_RUNS, interruptAfterTimeLimit: 30_000 },
      );
    });

    it('leaves the ledger consistent', async () => {
      const report = await h.verify();
      expect(report.drift).toEqual([]);
      expect(report.ok).toBe(true);
    });
  });

  it('the ledger verifies clean at the end', async () => {
    const report = await h.verify();
    expect(report.drift).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
