import type { Store } from './db.ts';

/**
 * Retention for what is only history (`tixian prune --before DATE`). Tables that only grow and
 * that nothing reads once their work is done:
 * - events created before the date whose every webhook delivery is final (succeeded; failed
 *   after the whole Ping++ retry schedule or when its endpoint was auto-disabled; canceled by the
 *   endpoint's removal), with those deliveries and their attempts. An event
 *   with a delivery still pending (or re-queued by `events resend` while this runs) is kept whole.
 * - the sandbox channel's memory of payouts (sandbox_payouts) submitted before the date whose
 *   withdrawal is final (succeeded, failed, canceled): nothing asks the channel about them again;
 *   an open withdrawal's payout record is what makes a retried submit idempotent, so it stays.
 * Never touched: the journal, postings, balance transactions, withdrawals and every other business
 * object (the ledger and the API's objects are kept for good), nor the kept withdrawal totals.
 *
 * Deletes in bounded batches, one transaction each, so a prune of a year never holds the write
 * lock for long; every delete re-checks its condition, so a row that became needed since it was
 * picked is left alone. The events list's `delivery_success` filter is unaffected for what stays.
 */
export interface PruneReport {
  events: number;
  webhook_deliveries: number;
  webhook_attempts: number;
  sandbox_payouts: number;
}

// `canceled` is final too: its endpoint was removed, and nothing re-queues a removed endpoint's
// deliveries (events.ts requeue). Left out, every event that ever had a delivery to a removed
// endpoint (a dead receiver's whole backlog, typically) was kept for good.
const FINAL_DELIVERY = ['succeeded', 'failed', 'canceled'];
const FINAL_WITHDRAWAL = ['succeeded', 'failed', 'canceled'];
/** Rows picked per transaction. */
export const PRUNE_BATCH = 1_000;
/** Batches per run: 1,000 × 1,000 events; a bigger backlog takes another run (the report says so). */
const MAX_BATCHES = 1_000;

export async function pruneHistory(store: Store, beforeMs: number, batch = PRUNE_BATCH): Promise<PruneReport & { complete: boolean }> {
  const report: PruneReport = { events: 0, webhook_deliveries: 0, webhook_attempts: 0, sandbox_payouts: 0 };
  const beforeS = Math.floor(beforeMs / 1000);
  let complete = false;
  // Walks events once in id order (ids grow with time), so kept events are not read again.
  let afterId = '';
  for (let n = 0; n < MAX_BATCHES; n++) {
    const picked = await store.db
      .selectFrom('events')
      .select('id')
      .where('id', '>', afterId)
      .where('created', '<', beforeS)
      .where((eb) =>
        eb.not(eb.exists(eb.selectFrom('webhook_deliveries as d').select('d.id').whereRef('d.event_id', '=', 'events.id').where('d.status', 'not in', FINAL_DELIVERY))),
      )
      .orderBy('id')
      .limit(batch)
      .execute();
    if (picked.length === 0) {
      complete = true;
      break;
    }
    const ids = picked.map((r) => r.id);
    afterId = ids[ids.length - 1]!;
    await store.transaction(async (trx) => {
      const finals = (qb: ReturnType<typeof trx.selectFrom<'webhook_deliveries'>>) =>
        qb.select('id').where('event_id', 'in', ids).where('status', 'in', FINAL_DELIVERY);
      const attempts = await trx.deleteFrom('webhook_attempts').where('delivery_id', 'in', finals(trx.selectFrom('webhook_deliveries'))).executeTakeFirst();
      const deliveries = await trx.deleteFrom('webhook_deliveries').where('event_id', 'in', ids).where('status', 'in', FINAL_DELIVERY).executeTakeFirst();
      // An event whose delivery was re-queued meanwhile still has it: the event stays.
      const events = await trx
        .deleteFrom('events')
        .where('id', 'in', ids)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('webhook_deliveries as d').select('d.id').whereRef('d.event_id', '=', 'events.id'))))
        .executeTakeFirst();
      report.webhook_attempts += Number(attempts.numDeletedRows);
      report.webhook_deliveries += Number(deliveries.numDeletedRows);
      report.events += Number(events.numDeletedRows);
    });
    if (picked.length < batch) {
      complete = true;
      break;
    }
  }

  for (let n = 0; n < MAX_BATCHES; n++) {
    const r = await store.transaction(async (trx) =>
      trx
        .deleteFrom('sandbox_payouts')
        .where('key', 'in', (eb) =>
          eb
            .selectFrom('sandbox_payouts as p')
            .select('p.key')
            .where('p.submitted_ms', '<', beforeMs)
            .where((w) =>
              w.exists(w.selectFrom('withdrawals as w').select('w.id').whereRef('w.id', '=', 'p.withdrawal_id').where('w.status', 'in', FINAL_WITHDRAWAL)),
            )
            .limit(batch),
        )
        .executeTakeFirst(),
    );
    report.sandbox_payouts += Number(r.numDeletedRows);
    if (Number(r.numDeletedRows) < batch) break;
    if (n === MAX_BATCHES - 1) complete = false;
  }
  return { ...report, complete };
}
