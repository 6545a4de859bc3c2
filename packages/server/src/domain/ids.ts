import { randomBytes, randomInt } from 'node:crypto';

/**
 * Object ids. Numeric ids have Ping++'s length: 19 digits (`1701611150302360654`), so merchants
 * that keep Ping++ ids in BIGINT columns can keep ours there too. Base62 ids keep Ping++'s
 * prefixes (`iar_`, `app_`); internal keys keep theirs (`u` + a numeric id).
 * Generated ids only use [0-9A-Za-z_], which every SDK puts into a path unescaped.
 */
export type NumericIdKind =
  | 'withdrawal'
  | 'batch_withdrawal'
  | 'balance_transaction'
  | 'settle_account'
  | 'balance_bonus'
  | 'balance_transfer'
  | 'balance_settlement'
  | 'journal_entry'
  | 'user';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

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

/**
 * Snowflake layout of a numeric id, as a 64-bit signed integer:
 *
 *   10^18 + (ms since ID_EPOCH_MS << 22) + (node << 12) + sequence
 *
 * - The 10^18 offset makes every id exactly 19 digits from the first millisecond of the epoch on;
 *   the largest id, at ID_MAX_MS, stays below 2^63 (BIGINT). That is 62 years: 2020 to 2082.
 * - node: 10 bits drawn at random once per process (and per worker thread: each has its own
 *   module). Nothing to configure or coordinate; two processes share a node with probability
 *   about n²/2048 for n processes, and even then the random start of each millisecond's
 *   sequence keeps their ids apart unless both also draw the same start in the same millisecond.
 * - sequence: 12 bits. Each millisecond starts at a random value below 1024, so a process makes at
 *   least 3072 ids in one millisecond before it borrows the next one.
 *
 * A numeric prefix per kind (Ping++'s `170…`) does not fit: it leaves 16 digits (53 bits), too few
 * for a millisecond clock plus enough node and sequence bits to stay unique without coordination.
 * Ids are opaque to every SDK (pingpp-api.md §5.4), so only the length is kept.
 */
export const ID_EPOCH_MS = Date.UTC(2020, 0, 1);
const OFFSET = 10n ** 18n;
const NODE_BITS = 10;
const SEQUENCE_BITS = 12;
const MAX_SEQUENCE = 2 ** SEQUENCE_BITS - 1;
const SEQUENCE_START_LIMIT = 1024;
const MAX_ID = 2n ** 63n - 1n;
/** The last millisecond (since ID_EPOCH_MS) whose ids stay below 2^63. */
export const ID_MAX_MS = Number((MAX_ID - OFFSET - BigInt(2 ** (NODE_BITS + SEQUENCE_BITS) - 1)) >> BigInt(NODE_BITS + SEQUENCE_BITS));

export interface SnowflakeOptions {
  /** 0..1023; random when not given. */
  node?: number;
  /** Start of each millisecond's sequence, 0..1023; random when not given. */
  sequenceStart?: () => number;
}

/**
 * Makes strictly increasing 19-digit ids from the clock it is given. Never waits and never goes
 * back: when the clock goes backwards it keeps counting in the last millisecond it used, and when
 * a millisecond's sequence runs out it moves on to the next millisecond before the clock does
 * (a clock injected in tests may never move on its own). Either way the ids stay ordered and
 * unique, and the clock catches up with them.
 */
export class SnowflakeIds {
  readonly node: number;
  private readonly sequenceStart: () => number;
  private lastMs = -1;
  private sequence = 0;

  constructor(options: SnowflakeOptions = {}) {
    this.node = options.node ?? randomInt(0, 2 ** NODE_BITS);
    if (!Number.isInteger(this.node) || this.node < 0 || this.node >= 2 ** NODE_BITS) throw new RangeError(`id node must be 0..${2 ** NODE_BITS - 1}`);
    this.sequenceStart = options.sequenceStart ?? (() => randomInt(0, SEQUENCE_START_LIMIT));
  }

  next(nowMs: number): string {
    // A clock before the epoch is wrong, not a reason to refuse money movements: clamp it.
    const ms = Math.max(0, Math.floor(nowMs) - ID_EPOCH_MS);
    if (ms > this.lastMs) {
      this.lastMs = ms;
      this.sequence = this.start();
    } else if (this.sequence < MAX_SEQUENCE) {
      this.sequence += 1;
    } else {
      this.lastMs += 1;
      this.sequence = this.start();
    }
    if (this.lastMs > ID_MAX_MS) throw new RangeError('numeric ids ran out of 19-digit values (year 2082)');
    const id = OFFSET + (BigInt(this.lastMs) << BigInt(NODE_BITS + SEQUENCE_BITS)) + (BigInt(this.node) << BigInt(SEQUENCE_BITS)) + BigInt(this.sequence);
    return id.toString();
  }

  private start(): number {
    const s = this.sequenceStart();
    if (!Number.isInteger(s) || s < 0 || s >= SEQUENCE_START_LIMIT) throw new RangeError(`sequence start must be 0..${SEQUENCE_START_LIMIT - 1}`);
    return s;
  }
}

const processIds = new SnowflakeIds();

/** This process's node in numeric ids (tests check that processes drew different ones). */
export const idNode = () => processIds.node;

/**
 * A 19-digit id, strictly increasing within the process and unique across processes. Lists order
 * by (created, id), so ids made by one process sort in creation order even within one second.
 * Every kind draws from one sequence: the kind names the caller's intent, the id does not carry it.
 */
export function numericId(_kind: NumericIdKind, nowMs: number): string {
  return processIds.next(nowMs);
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
  return 'evt_' + msDigits(nowMs) + eventCounter.toString().padStart(3, '0') + randomInt(0, 100_000_000).toString().padStart(8, '0');
}

/** 13 digits of Unix milliseconds: ids that start with them sort in time order. */
const msDigits = (nowMs: number) => Math.max(0, Math.floor(nowMs)).toString().padStart(13, '0').slice(-13);

/**
 * Random base62 characters for ids made on hot paths that are not secrets (request ids, webhook
 * delivery and try rows): their bytes come from a pool refilled 4 KiB at a time (one `randomBytes`
 * call per ~150 request ids instead of one each). Same alphabet and rejection sampling as
 * randomBase62; an id that must not be guessed from others (secret keys, tokens) keeps its own call.
 */
const ID_POOL_BYTES = 4096;
let idPool = Buffer.alloc(0);
let idPoolAt = 0;
function pooledBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    if (idPoolAt >= idPool.length) {
      idPool = randomBytes(ID_POOL_BYTES);
      idPoolAt = 0;
    }
    const byte = idPool[idPoolAt++]!;
    if (byte < 248) out += BASE62[byte % 62];
  }
  return out;
}

/**
 * `<prefix>_` + 13 digits of milliseconds + 7 random base62 characters: webhook delivery and try
 * rows. Rows made together sit together in the primary key index, so the dispatcher's batches
 * (claimed oldest first, recorded together) touch a few index pages instead of one page per row:
 * fewer pages written per commit.
 */
export const newTimeOrderedId = (prefix: string, nowMs: number) => `${prefix}_${msDigits(nowMs)}${pooledBase62(7)}`;
/** Request ids are made for every request (a trace id, not a secret). */
export const newRequestId = () => 'iar_' + pooledBase62(24);
export const newAppId = () => 'app_' + randomBase62(16);
export const newAccountId = () => 'acct_' + randomBase62(16);
export const newInternalId = (prefix: string) => prefix + '_' + randomBase62(20);
/** Internal user key: merchant user ids are not time-ordered, this one is (it orders user lists). */
export const newUserPk = (nowMs: number) => 'u' + numericId('user', nowMs);
export const newSecretKey = (mode: 'test' | 'live') => `sk_${mode}_` + randomBase62(24);
