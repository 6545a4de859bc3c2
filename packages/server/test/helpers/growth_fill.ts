import type { Db } from '../../src/store/db.ts';
import type { Database } from '../../src/store/schema.ts';
import { moveWithdrawalTotals, type WithdrawalMove } from '../../src/store/withdrawal_totals.ts';
import { WITHDRAWAL_CHANNELS } from '../../src/domain/channels.ts';

/**
 * Fills one app (test mode) with list history in bulk, straight into the tables (not through
 * HTTP): users, withdrawals (with their kept totals), balance_transactions, events with one
 * delivery each, batch withdrawals, bonuses, settlements and transfers. Rows are spread evenly
 * over `spanS` seconds before `endS`, so a bigger fill means more rows per day, like an older,
 * busier app. Money rows carry no journal: balances stay 0 and balance lines have amount 0, so the
 * ledger checks still balance; withdrawals are final (no hold), so verify stays clean.
 * For the growth benchmark and the query-plan tests; never for production data.
 */
export interface GrowthFill {
  app: string;
  accountId: string;
  /** withdrawals, balance_transactions and events each get this many rows; the rest a tenth */
  rows: number;
  endS: number;
  spanS: number;
  /** default rows/100 (at least 100): each user has about 100 withdrawals and 10 transfers at any size */
  users?: number;
  /** 1 in `undeliveredEvery` events has a delivery not (yet) succeeded */
  undeliveredEvery?: number;
}

/** Rows per INSERT: ≤ 29 columns × 500 stays under SQLite's 32,766 parameters. */
const CHUNK = 500;
const STATUSES = ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'canceled'];
const BTX_TYPES = ['withdrawal', 'withdrawal_revoked', 'withdrawal_failed', 'recharge', 'transfer', 'receipts', 'settlement', 'bonus'];
const EVENT_TYPES = ['balance.withdrawal.succeeded', 'balance.withdrawal.failed', 'balance.recharge.succeeded', 'order.succeeded'];

/** 19-digit, time-ordered ids, distinct per (time, n) like the server's Snowflake ids. */
const idAt = (createdS: number, n: number) => String(BigInt(createdS) * 1_000_000_000n + BigInt(n)).padStart(19, '1');

export async function fillGrowth(db: Db, f: GrowthFill): Promise<void> {
  const users = f.users ?? Math.max(100, Math.floor(f.rows / 100));
  const createdOf = (i: number, n: number) => f.endS - f.spanS + Math.floor((i * f.spanS) / n);
  const userId = (i: number) => `gu${i % users}`;
  const userPk = (i: number) => `gpk${String(i % users).padStart(9, '0')}`;
  const base = { app: f.app, livemode: 0 };

  await insertChunks(db, 'users', users, (i) => ({
    ...base, pk: userPk(i), id: userId(i), type: 'customer', related_app: null, address: null, avatar: null, email: null, gender: null,
    mobile: null, name: null, parent_user_id: null, metadata: '{}', disabled: 0, identified: 0, available_balance: 0, withdrawable_balance: 0,
    created: createdOf(i, users),
  }));

  const moves: WithdrawalMove[] = [];
  await insertChunks(db, 'withdrawals', f.rows, (i) => {
    const created = createdOf(i, f.rows);
    const status = STATUSES[(i * 7) % STATUSES.length]!;
    const channel = WITHDRAWAL_CHANNELS[i % WITHDRAWAL_CHANNELS.length]!;
    const amount = 100 + (i % 9_900);
    moves.push({ ...base, channel, user: userId(i), created, amount, from: null, to: status });
    return {
      ...base, id: idAt(created, i), order_no: `g${i}`, request_hash: 'x', description: null, metadata: '{}', created,
      user: userId(i), user_pk: userPk(i), amount, user_fee: 0, fee: 0, channel, extra: '{}', status, failure_msg: null,
      source: null, balance_transaction: null, settle_account: null, batch_withdrawal: null,
      time_canceled: status === 'canceled' ? created : null, time_succeeded: status === 'succeeded' ? created : null,
      request_id: null, payout_due_ms: null, payout_lease_ms: null, payout_phase: null, payout_tries: 0, payout_round: 1,
    };
  }, async (trx) => {
    await moveWithdrawalTotals(trx, moves);
    moves.length = 0;
  });

  await insertChunks(db, 'balance_transactions', f.rows, (i) => {
    const created = createdOf(i, f.rows);
    return {
      ...base, id: idAt(created, i), user: userId(i), user_pk: userPk(i), entry_id: `ge${i}`, amount: 0, available_balance: 0,
      type: BTX_TYPES[i % BTX_TYPES.length]!, source: `gs${i}`, description: null, created,
    };
  });

  const undeliveredEvery = f.undeliveredEvery ?? 100;
  await insertChunks(db, 'events', f.rows, (i) => {
    const created = createdOf(i, f.rows);
    return {
      id: `evt_${idAt(created, i)}`, app: f.app, account_id: f.accountId, livemode: 0, type: EVENT_TYPES[i % EVENT_TYPES.length]!, created,
      body: '{}', signature: null, signature_kid: null, request: null, pending_webhooks: 0,
    };
  });
  await insertChunks(db, 'webhook_deliveries', f.rows, (i) => {
    const created = createdOf(i, f.rows);
    const failed = i % undeliveredEvery === undeliveredEvery - 1;
    return {
      id: `gd${i}`, event_id: `evt_${idAt(created, i)}`, endpoint_id: 'gwe', app: f.app, status: failed ? 'failed' : 'succeeded', attempts: 1,
      next_attempt_ms: null, lease_ms: null, created, last_attempt_ms: created * 1000, last_status_code: failed ? 500 : 200,
    };
  });

  const tenth = Math.max(100, Math.floor(f.rows / 10));
  await insertChunks(db, 'batch_withdrawals', tenth, (i) => {
    const created = createdOf(i, tenth);
    return { ...base, id: idAt(created, i), status: i % 5 === 0 ? 'partially_succeeded' : 'succeeded', metadata: '{}', created, time_finished: created, request_hash: null };
  });
  for (const table of ['balance_bonuses', 'balance_settlements'] as const) {
    await insertChunks(db, table, tenth, (i) => {
      const created = createdOf(i, tenth);
      const order = { ...base, id: idAt(created, i), order_no: `g${i}`, request_hash: 'x', description: null, metadata: '{}', created };
      const money = { user: userId(i), user_pk: userPk(i), amount: 100, balance_transaction: `gb${i}` };
      return table === 'balance_bonuses' ? { ...order, ...money, time_paid: created } : { ...order, ...money, time_succeeded: created };
    });
  }
  await insertChunks(db, 'balance_transfers', tenth, (i) => {
    const created = createdOf(i, tenth);
    return {
      ...base, id: idAt(created, i), order_no: `g${i}`, request_hash: 'x', description: null, metadata: '{}', created, status: 'succeeded',
      amount: 100, user_fee: 0, user: userId(i), recipient: userId(i + 1), user_balance_transaction: `gt${i}`, recipient_balance_transaction: `gr${i}`,
    };
  });
}

async function insertChunks<T extends keyof Database>(
  db: Db,
  table: T,
  n: number,
  row: (i: number) => Database[T],
  afterChunk?: (trx: Db) => Promise<void>,
): Promise<void> {
  for (let start = 0; start < n; start += CHUNK * 20) {
    // 20 statements per transaction: one commit per 10,000 rows.
    await db.transaction().execute(async (trx) => {
      for (let s = start; s < Math.min(n, start + CHUNK * 20); s += CHUNK) {
        const rows: Database[T][] = [];
        for (let i = s; i < Math.min(n, s + CHUNK); i++) rows.push(row(i));
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        await trx.insertInto(table).values(rows as any).execute();
        if (afterChunk) await afterChunk(trx);
      }
    });
  }
}
