import { randomBytes, randomInt } from 'node:crypto';

/**
 * Object ids. Ping++ ids are opaque strings to every SDK; we keep Ping++'s visible shape
 * (numeric ids with a type prefix, `evt_`/`iar_`/`app_` base62 ids) but make them longer, so
 * that ids made by many processes never collide and sort by creation time.
 * Generated ids only use [0-9A-Za-z_], which every SDK puts into a path unescaped.
 */
const NUMERIC_PREFIX = {
  withdrawal: '170',
  batch_withdrawal: '190',
  balance_transaction: '600',
  settle_account: '320',
  balance_bonus: '650',
  balance_transfer: '660',
  balance_settlement: '670',
  journal_entry: '900',
  user: '100',
} as const;

export type NumericIdKind = keyof typeof NUMERIC_PREFIX;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomDigits(count: number): string {
  let out = '';
  while (out.length < count) out += randomInt(0, 1_000_000_000).toString().padStart(9, '0');
  return out.slice(0, count);
}

export function randomBase62(length: number): string {
  // 248 = 4 * 62: rejection sampling keeps every character equally likely.
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

/** yymmddhhmmss in UTC+8, the zone Ping++ ids are stamped in. */
function stamp(nowMs: number): string {
  const d = new Date(nowMs + 8 * 3600_000);
  const p = (n: number) => n.toString().padStart(2, '0');
  return (
    p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes()) + p(d.getUTCSeconds())
  );
}

let lastMs = -1;
let counter = 0;

/**
 * prefix + yymmddhhmmss + milliseconds + a 4-digit counter within the millisecond + 9 random
 * digits. Lists order by (created, id), so ids made by one process sort in creation order even
 * within one second; the random tail keeps ids of different processes apart.
 */
export function numericId(kind: NumericIdKind, nowMs: number): string {
  if (nowMs !== lastMs) {
    lastMs = nowMs;
    counter = 0;
  } else {
    counter = (counter + 1) % 10_000;
  }
  const ms = (((nowMs % 1000) + 1000) % 1000).toString().padStart(3, '0');
  return NUMERIC_PREFIX[kind] + stamp(nowMs) + ms + counter.toString().padStart(4, '0') + randomDigits(9);
}

let lastEventMs = -1;
let eventCounter = 0;

/**
 * `evt_` + 24 digits: 13 of milliseconds, a 3-digit counter within the millisecond and 8 random
 * digits. Event lists order by (created, id), newest first; a time-ordered id keeps events of one
 * second in the order they happened. Digits only, because base62 does not sort the same under every
 * PostgreSQL collation. Ping++'s own event ids are 24 digits too (`evt_401180116154930078262236`).
 */
export function newEventId(nowMs: number): string {
  if (nowMs !== lastEventMs) {
    lastEventMs = nowMs;
    eventCounter = 0;
  } else {
    eventCounter = (eventCounter + 1) % 1000;
  }
  const ms = Math.max(0, Math.floor(nowMs)).toString().padStart(13, '0').slice(-13);
  return 'evt_' + ms + eventCounter.toString().padStart(3, '0') + randomInt(0, 100_000_000).toString().padStart(8, '0');
}
export const newRequestId = () => 'iar_' + randomBase62(24);
export const newAppId = () => 'app_' + randomBase62(16);
export const newAccountId = () => 'acct_' + randomBase62(16);
export const newInternalId = (prefix: string) => prefix + '_' + randomBase62(20);
/** Internal user key: merchant user ids are not time-ordered, this one is (it orders user lists). */
export const newUserPk = (nowMs: number) => 'u' + numericId('user', nowMs);
export const newSecretKey = (mode: 'test' | 'live') => `sk_${mode}_` + randomBase62(24);
