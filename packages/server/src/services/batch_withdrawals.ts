import { sql } from 'kysely';
import type { BatchWithdrawal, Metadata } from '@tixian/sdk';
import type { Runtime } from '../runtime.ts';
import type { Db } from '../store/db.ts';
import type { BatchWithdrawalRow, WithdrawalRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { numericId } from '../domain/ids.ts';
import { listPage, listObject, saturatedSum, type ListParams } from '../store/paging.ts';
import { metadataText, mode, parseJsonObject, requestHash, type Scope } from './common.ts';
import { canPayOut, markCanceled, markManyPaidOutside, markManyPending, requireLiveCredentials, settleSucceeded, statusMoves, withdrawalToWire } from './withdrawals.ts';
import { paysOutsideTixian } from '../domain/channels.ts';
import { observeWithdrawalTransition } from '../observability/metrics.ts';
import { moveWithdrawalTotals } from '../store/withdrawal_totals.ts';

export const MAX_BATCH_SIZE = 200;

export interface BatchWithdrawalCreateParams {
  withdrawals: string[];
  status?: 'pending' | 'canceled';
  metadata?: Metadata | null;
}

type BatchStatus = BatchWithdrawal['status'];

/**
 * 批量提现: confirm or cancel up to 200 `created` withdrawals at once, all or nothing: an unknown,
 * duplicated, foreign or non-`created` id rejects the whole batch (400 naming it) and nothing changes.
 * Counters and amounts are computed from the items, so they always agree with them; the batch's
 * status and `time_finished` are set when its last item reaches a final state.
 */
export async function createBatchWithdrawal(rt: Runtime, scope: Scope, p: BatchWithdrawalCreateParams): Promise<BatchWithdrawal> {
  const ids = p.withdrawals;
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    if (seen.has(id)) throw errors.invalidParam(`withdrawals[${i}]`, `withdrawal ${id} is listed twice`, `提现 ${id} 重复出现`);
    seen.add(id);
  });
  const status = p.status ?? 'pending';
  // The order of the ids and an empty metadata object are not part of what was asked.
  const hash = requestHash({ withdrawals: [...ids].sort(), status, metadata: p.metadata ?? {} });
  const rows = await batchItems(rt.store.db, scope, ids);
  const earlier = await batchMadeBy(rt.store.db, scope, rows, ids.length, hash);
  if (earlier) return earlier;
  const byId = new Map(rows.map((r) => [r.id, r]));
  ids.forEach((id, i) => {
    const row = byId.get(id);
    if (!row) throw errors.invalidParam(`withdrawals[${i}]`, `no such withdrawal: ${id}`, `未找到 withdrawal : ${id}`);
    // Answers early with the error the transaction would give; the UPDATE itself decides.
    const refused = itemError(i, id, row);
    if (refused) throw refused;
    if (status === 'pending' && !canPayOut(rt, row.channel, scope.livemode)) throw errors.channelNotConfigured(row.channel);
  });
  if (status === 'pending' && scope.livemode) {
    for (const channel of new Set(rows.map((r) => r.channel))) await requireLiveCredentials(rt, scope.app, channel);
  }

  const nowMs = rt.clock.nowMs();
  const created = Math.floor(nowMs / 1000);
  const batch: BatchWithdrawalRow = {
    id: numericId('batch_withdrawal', nowMs), app: scope.app, livemode: mode(scope),
    status: status === 'pending' ? 'pending' : 'canceled', metadata: metadataText(p.metadata), created,
    time_finished: status === 'pending' ? null : created, request_hash: hash,
  };
  try {
    await applyBatch(rt, scope, batch, ids, byId, nowMs);
  } catch (err) {
    // The same request sent twice at once: the other one made the batch while this one checked.
    // A look that fails too (the database away) leaves the first error to be reported.
    const made = await batchItems(rt.store.db, scope, ids).then((items) => batchMadeBy(rt.store.db, scope, items, ids.length, hash)).catch(() => null);
    if (made) return made;
    throw err;
  }
  const paidOutside = status === 'pending' && rows.some((r) => paysOutsideTixian(r.channel));
  if (status === 'pending') rt.bus.emit('payout');
  if (paidOutside) rt.bus.emit('webhook');
  for (const id of ids) {
    const channel = byId.get(id)!.channel;
    observeWithdrawalTransition(channel, 'created', status === 'pending' && paysOutsideTixian(channel) ? 'succeeded' : status);
  }
  if (!paidOutside) return batchToWire(rt.store.db, batch);
  // Its custom items succeeded in its transaction: a batch of only those is finished already.
  const stored = await rt.store.db.selectFrom('batch_withdrawals').selectAll().where('id', '=', batch.id).executeTakeFirstOrThrow();
  return batchToWire(rt.store.db, stored);
}

type Item = Pick<WithdrawalRow, 'id' | 'status' | 'channel' | 'user_pk' | 'batch_withdrawal'>;

function batchItems(db: Db, scope: Scope, ids: string[]): Promise<Item[]> {
  return db.selectFrom('withdrawals').select(['id', 'status', 'channel', 'user_pk', 'batch_withdrawal'])
    .where('id', 'in', ids).where('app', '=', scope.app).where('livemode', '=', mode(scope)).execute();
}

/**
 * The batch an identical earlier request made, when every withdrawal asked for belongs to it: a
 * retry whose first answer was lost (pingpp-java sends a POST again after a connection error or
 * any 5xx) gets that batch as it is now, as a repeated order_no gets its object. The hash covers
 * the sorted ids, so a batch with more or fewer items never matches. Anything else (other
 * metadata, the other status, a batch made before 0013) is refused as before, and so is the same
 * request once an item is back at `created` (a merchant-side payout failure): a 200 would read as
 * "confirmed" while it waits to be confirmed again, on its own ("already belongs to batch").
 */
async function batchMadeBy(db: Db, scope: Scope, rows: readonly Item[], asked: number, hash: string): Promise<BatchWithdrawal | null> {
  const batchId = rows[0]?.batch_withdrawal;
  if (!batchId || rows.length !== asked || rows.some((r) => r.batch_withdrawal !== batchId || r.status === 'created')) return null;
  const batch = await db.selectFrom('batch_withdrawals').selectAll()
    .where('id', '=', batchId).where('app', '=', scope.app).where('livemode', '=', mode(scope)).where('request_hash', '=', hash).executeTakeFirst();
  return batch ? batchToWire(db, batch) : null;
}

/** The batch's one transaction: its row and every item's transition, all or nothing. */
async function applyBatch(rt: Runtime, scope: Scope, batch: BatchWithdrawalRow, ids: string[], byId: Map<string, Item>, nowMs: number): Promise<void> {
  await rt.store.transaction(async (trx) => {
    await trx.insertInto('batch_withdrawals').values(batch).execute();
    if (batch.status === 'pending') {
      // Items paid outside tixian (custom) succeed here, as their own confirm would make them; the rest go to the payout worker.
      const outside = ids.filter((id) => paysOutsideTixian(byId.get(id)!.channel));
      const viaChannel = outside.length ? ids.filter((id) => !paysOutsideTixian(byId.get(id)!.channel)) : ids;
      const updated = viaChannel.length ? await markManyPending(trx, scope, viaChannel, nowMs, batch.id) : [];
      const succeeded = outside.length ? await markManyPaidOutside(trx, scope, outside, nowMs, batch.id) : [];
      if (updated.length + succeeded.length !== ids.length) await raceError(trx, scope, ids, new Set([...updated, ...succeeded].map((r) => r.id)));
      for (const row of succeeded) await settleSucceeded(trx, row, nowMs, scope.accountId);
      if (succeeded.length) await onBatchItemFinished(trx, batch.id, Math.floor(nowMs / 1000));
      await moveWithdrawalTotals(trx, [...statusMoves(updated, 'created', 'pending'), ...statusMoves(succeeded, 'created', 'succeeded')]);
    } else {
      // Each cancel locks its user's row: take them in user order, the order every movement uses,
      // so a batch cancel and concurrent transfers cannot deadlock on PostgreSQL.
      const order = ids.map((id, i) => ({ id, i, userPk: byId.get(id)!.user_pk })).sort((a, b) => (a.userPk < b.userPk ? -1 : a.userPk > b.userPk ? 1 : 0));
      const canceled: WithdrawalRow[] = [];
      for (const { id, i } of order) {
        const row = await markCanceled(trx, scope, id, nowMs, batch);
        if (!row) await raceError(trx, scope, [id], new Set(), i);
        else canceled.push(row);
      }
      // After every user's row: the shared total rows are locked last (store/withdrawal_totals.ts).
      await moveWithdrawalTotals(trx, statusMoves(canceled, 'created', 'canceled'));
    }
  });
}

function batchStateError(index: number, id: string, status: string) {
  const e = errors.statusCannotBeUpdated('withdrawal', id, status);
  return Object.assign(e, { param: `withdrawals[${index}]` });
}

/** Why an item cannot join a new batch, or null when it can. */
function itemError(index: number, id: string, row: { status: string; batch_withdrawal: string | null }) {
  if (row.status !== 'created') return batchStateError(index, id, row.status);
  // A withdrawal belongs to one batch for life: moving it would rewrite the first batch's
  // history and leave it pending forever. One that came back to `created` is confirmed on its own.
  if (row.batch_withdrawal) {
    return errors.invalidParam(
      `withdrawals[${index}]`,
      `withdrawal ${id} already belongs to batch ${row.batch_withdrawal}; confirm or cancel it on its own`,
      `提现 ${id} 已属于批量提现 ${row.batch_withdrawal}，请单独确认或取消`,
    );
  }
  return null;
}

/**
 * Another request changed an item between our check and our update (its status, or it joined
 * another batch): name it and roll back.
 */
async function raceError(trx: Db, scope: Scope, ids: string[], updated: Set<string>, offset = 0): Promise<never> {
  const culprit = ids.findIndex((id) => !updated.has(id));
  const id = ids[culprit]!;
  const row = await trx.selectFrom('withdrawals').select(['status', 'batch_withdrawal']).where('id', '=', id).where('app', '=', scope.app).executeTakeFirst();
  throw itemError(culprit + offset, id, row ?? { status: 'unknown', batch_withdrawal: null }) ?? batchStateError(culprit + offset, id, row?.status ?? 'unknown');
}

/** Called in the transaction that finished an item: settles the batch once its last item is final. */
export async function onBatchItemFinished(trx: Db, batchId: string, nowS: number): Promise<void> {
  // Lock the batch row before counting its items. Without it, on PostgreSQL the last two items
  // finishing at once would each count the other as still pending (neither has committed) and
  // the batch would never finish. A no-op UPDATE takes the row lock on both engines.
  await trx.updateTable('batch_withdrawals').set({ status: sql`status` }).where('id', '=', batchId).execute();
  const counts = await itemCounts(trx, batchId);
  const open = (counts.pending?.count ?? 0) + (counts.created?.count ?? 0);
  if (open > 0) return;
  await trx
    .updateTable('batch_withdrawals')
    .set({ status: finalStatus(counts), time_finished: nowS })
    .where('id', '=', batchId)
    .where('time_finished', 'is', null)
    .execute();
}

type Counts = Partial<Record<string, { count: number; amount: number; user_fee: number; fee: number }>>;

async function itemCounts(db: Db, batchId: string): Promise<Counts> {
  const rows = await db
    .selectFrom('withdrawals')
    .select([
      'status',
      sql<number>`count(*)`.as('count'),
      sql<number>`sum(amount)`.as('amount'),
      sql<number>`sum(user_fee)`.as('user_fee'),
      sql<number>`sum(fee)`.as('fee'),
    ])
    .where('batch_withdrawal', '=', batchId)
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, { count: Number(r.count), amount: Number(r.amount), user_fee: Number(r.user_fee), fee: Number(r.fee) }]));
}

function finalStatus(c: Counts): BatchStatus {
  const n = (s: string) => c[s]?.count ?? 0;
  const total = n('succeeded') + n('failed') + n('canceled');
  if (n('succeeded') === total) return 'succeeded';
  if (n('failed') === total) return 'failed';
  if (n('canceled') === total) return 'canceled';
  return 'partially_succeeded';
}

export async function batchToWire(db: Db, batch: BatchWithdrawalRow): Promise<BatchWithdrawal> {
  const counts = await itemCounts(db, batch.id);
  const items = await db.selectFrom('withdrawals').selectAll().where('batch_withdrawal', '=', batch.id)
    .orderBy('created', 'desc').orderBy('id', 'desc').limit(MAX_BATCH_SIZE).execute();
  // Up to MAX_BATCH_SIZE amounts of up to 2^31−1 each: the money sums saturate (see saturatedSum);
  // counts stay far below the bound.
  const sum = (k: 'count' | 'amount' | 'user_fee' | 'fee') => saturatedSum(Object.values(counts).reduce((s, c) => s + (c?.[k] ?? 0), 0));
  const of = (s: string, k: 'count' | 'amount') => saturatedSum(counts[s]?.[k] ?? 0);
  return {
    id: batch.id,
    object: 'batch_withdrawal',
    app: batch.app,
    created: batch.created,
    livemode: batch.livemode === 1,
    amount: sum('amount'),
    amount_succeeded: of('succeeded', 'amount'),
    amount_failed: of('failed', 'amount'),
    amount_canceled: of('canceled', 'amount'),
    count: sum('count'),
    count_succeeded: of('succeeded', 'count'),
    count_failed: of('failed', 'count'),
    count_canceled: of('canceled', 'count'),
    fee: sum('fee'),
    metadata: parseJsonObject(batch.metadata),
    operation_url: null,
    source: null,
    status: batch.status as BatchStatus,
    time_finished: batch.time_finished,
    user_fee: sum('user_fee'),
    withdrawals: listObject(null, items.map((r: WithdrawalRow) => withdrawalToWire(r)), false),
  };
}

export async function retrieveBatchWithdrawal(rt: Runtime, scope: Scope, id: string): Promise<BatchWithdrawal> {
  const row = await rt.store.db.selectFrom('batch_withdrawals').selectAll()
    .where('id', '=', id).where('app', '=', scope.app).where('livemode', '=', mode(scope)).executeTakeFirst();
  if (!row) throw errors.notFound('batch_withdrawal', id);
  return batchToWire(rt.store.db, row);
}

export async function listBatchWithdrawals(rt: Runtime, scope: Scope, p: ListParams & { status?: string }) {
  // `status` narrows the page, not the cursor look-up: a batch listed as `pending` finishes before
  // the next page is asked for, and its id must still mark the place to go on from.
  const { rows, hasMore } = await listPage<BatchWithdrawalRow>(
    rt.store.db,
    'batch_withdrawals',
    (qb) => qb.where('app', '=', scope.app).where('livemode', '=', mode(scope)),
    p,
    'id',
    (qb) => (p.status !== undefined ? qb.where('status', '=', p.status) : qb),
  );
  const data: BatchWithdrawal[] = [];
  for (const row of rows) data.push(await batchToWire(rt.store.db, row));
  return { data, hasMore };
}
