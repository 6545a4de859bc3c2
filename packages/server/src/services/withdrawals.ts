import { hasCredentials } from '../channels/credentials.ts';
import type { PayeeConfirmation } from '../channels/driver.ts';
import { awaitsPayeeConfirmation, cancelWaitingWechatBill } from '../channels/wechat-cancel.ts';
import { sql } from 'kysely';
import { Ajv } from 'ajv';
import type { Metadata, Withdrawal, WithdrawalChannel, WithdrawalList, WithdrawalStatus } from '@tixian/sdk';
import type { Runtime } from '../runtime.ts';
import type { Db } from '../store/db.ts';
import type { WithdrawalRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { numericId } from '../domain/ids.ts';
import {
  channelForSettleAccount,
  EXTRA_SCHEMAS,
  extraFromSettleAccount,
  missingExtraKey,
  normaliseExtra,
  ORDER_NO_RULES,
  livePayoutAmountError,
  paysOutsideTixian,
} from '../domain/channels.ts';
import { applyMovement, debitActiveUser, InsufficientFunds, type AppAccount } from '../ledger/ledger.ts';
import { insertRows } from '../store/prepared.ts';
import { listPage, saturatedSum, whereCreated, type AnyQuery, type ListParams } from '../store/paging.ts';
import { validationError, paramName } from '../domain/validation-errors.ts';
import { emitEvent } from '../webhooks/outbox.ts';
import { moveWithdrawalTotals, withdrawalTotal, type WithdrawalMove } from '../store/withdrawal_totals.ts';
import { activeUser, createOnce, metadataText, mode, parseJsonObject, requestHash, type Scope, type WriteOptions } from './common.ts';
import { usableSettleAccount } from './settle_accounts.ts';
import { maskSettleAccountExtra } from './settle_accounts_view.ts';
import { onBatchItemFinished } from './batch_withdrawals.ts';
import { observeWithdrawalTransition } from '../observability/metrics.ts';
import { createWithdrawalPg } from '../store/pg/withdrawal_create.ts';

export interface WithdrawalCreateParams {
  user: string;
  amount: number;
  user_fee?: number | undefined;
  channel?: WithdrawalChannel | null | undefined;
  order_no: string;
  description?: string | null | undefined;
  extra?: Record<string, unknown> | null | undefined;
  settle_account?: string | null | undefined;
  metadata?: Metadata | null | undefined;
}

export interface WithdrawalListParams extends ListParams {
  status?: WithdrawalStatus;
  user?: string;
  channel?: WithdrawalChannel;
}

export function withdrawalToWire(row: WithdrawalRow): Withdrawal {
  return wireObject(row, parseJsonObject(row.extra), parseJsonObject<Metadata>(row.metadata));
}

/** The wire object of a row whose `extra` and `metadata` the caller already holds as objects. */
function wireObject(row: WithdrawalRow, extra: Record<string, unknown>, metadata: Metadata): Withdrawal {
  return {
    id: row.id,
    object: 'withdrawal',
    app: row.app,
    amount: row.amount,
    asset_transaction: null,
    balance_transaction: row.balance_transaction,
    channel: row.channel as WithdrawalChannel,
    created: row.created,
    description: row.description,
    // A settle account's recipient is shown masked wherever it appears (API objects and events).
    extra: row.settle_account ? maskSettleAccountExtra(extra) : extra,
    failure_msg: row.failure_msg,
    fee: row.fee,
    livemode: row.livemode === 1,
    metadata,
    operation_url: null,
    order_no: row.order_no,
    source: row.source,
    status: row.status as WithdrawalStatus,
    time_canceled: row.time_canceled,
    time_succeeded: row.time_succeeded,
    user: row.user,
    user_fee: row.user_fee,
    settle_account: row.settle_account,
  };
}

const extraAjv = new Ajv({ allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false, strict: false });
// Compiled on first use per channel, to keep start-up short.
const extraValidators = new Map<WithdrawalChannel, ReturnType<typeof extraAjv.compile>>();
function extraValidator(channel: WithdrawalChannel): ReturnType<typeof extraAjv.compile> {
  let validate = extraValidators.get(channel);
  if (!validate) extraValidators.set(channel, (validate = extraAjv.compile(EXTRA_SCHEMAS[channel])));
  return validate;
}

/** Per-channel `extra` check: schema, then the required keys (with aliases), then normalisation. */
function validatedExtra(channel: WithdrawalChannel, raw: Record<string, unknown>): Record<string, unknown> {
  // SDK examples send explicit nulls for keys they do not use: null means "not sent".
  const extra = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== null));
  const validate = extraValidator(channel);
  if (!validate(extra)) {
    throw validationError(validate.errors?.map((e) => ({ ...e, instancePath: '/extra' + e.instancePath })));
  }
  const missing = missingExtraKey(channel, extra);
  if (missing) throw errors.missingParam(paramName('/extra', missing));
  return normaliseExtra(channel, extra);
}

/**
 * 提现申请: records the user's intent (status `created`) and holds `amount` at once: it leaves the
 * user's withdrawable (and available) balance for the app's withdrawal_hold account in the same
 * transaction (a negative `withdrawal` line). No payout happens until the merchant confirms.
 */
export async function createWithdrawal(
  rt: Runtime,
  scope: Scope,
  p: WithdrawalCreateParams,
  options: WriteOptions = {},
): Promise<Withdrawal> {
  const userFee = p.user_fee ?? 0;
  if (userFee >= p.amount) throw errors.invalidParam('user_fee', 'must be less than amount', '必须小于 amount');
  if (p.user === '0') throw errors.invalidParam('user', 'the system user "0" cannot withdraw', '系统用户 "0" 不能提现');

  // custom has no payee details (§6.3): its `extra` may be left out, and then it is `{}`.
  const rawExtra = p.extra ?? (p.channel && paysOutsideTixian(p.channel) ? {} : null);
  // With channel and extra, settle_account is ignored (Ping++ SDK comments: "同时填写时，结算账号不生效").
  const useSettleAccount = !(p.channel && rawExtra) && typeof p.settle_account === 'string' && p.settle_account !== '';
  let channel: WithdrawalChannel | null = p.channel ?? null;
  let extra: Record<string, unknown> | null = null;
  if (!useSettleAccount) {
    if (!channel) throw errors.missingParam('channel');
    if (!rawExtra) throw errors.missingParam('extra');
    extra = validatedExtra(channel, rawExtra);
  }
  if (channel) checkOrderNo(channel, p.order_no);
  if (channel) checkLiveAmount(scope, channel, p.amount - userFee);

  // user_fee omitted and user_fee 0 are one request (as for transfers), so a retry that adds or
  // drops a 0 replays. Rows written before hashed the body as sent: that hash still replays them.
  const hash = requestHash({ ...p, user_fee: userFee });
  // On PostgreSQL the common case (channel + extra) is one statement, one round trip (store/pg/withdrawal_create.ts).
  const onePgStatement = rt.store.engine === 'postgres' && !useSettleAccount;
  const row = await createOnce<WithdrawalRow>(rt.store.db, 'withdrawals', scope, p.order_no, hash, () =>
    onePgStatement
      ? createWithdrawalPg(rt.store.db, () => rt.clock.nowMs(), {
        app: scope.app, livemode: scope.livemode, requestId: scope.requestId, user: p.user, amount: p.amount, userFee,
        channel: channel!, extra: extra!, orderNo: p.order_no, requestHash: hash, description: p.description ?? null, metadata: metadataText(p.metadata),
      })
      : rt.store.transaction(async (trx) => {
        let user: { pk: string; id: string };
        let availableAfter: number | undefined;
        let settleAccountId: string | null = null;
        if (useSettleAccount) {
          user = await activeUser(trx, scope, p.user);
          const account = await usableSettleAccount(trx, scope, user.pk, p.settle_account!);
          const payingChannel = channelForSettleAccount(account.channel);
          if (!payingChannel || (channel && channel !== payingChannel)) {
            throw errors.invalidParam('channel', `does not match settle account channel ${account.channel}`, `与结算账户渠道 ${account.channel} 不符`);
          }
          channel = payingChannel;
          checkOrderNo(channel, p.order_no);
          checkLiveAmount(scope, channel, p.amount - userFee);
          extra = normaliseExtra(channel, extraFromSettleAccount(channel, account.recipient));
          settleAccountId = account.id;
        } else {
          // One UPDATE finds the user and holds the amount (applyMovement would read the user,
          // then update it by pk); the user is read only when it matched nothing, to say why.
          const debit = await debitActiveUser(trx, { app: scope.app, livemode: scope.livemode, userId: p.user, amount: p.amount });
          if (!debit) {
            await activeUser(trx, scope, p.user);
            throw new InsufficientFunds(p.user);
          }
          user = { pk: debit.userPk, id: p.user };
          availableAfter = debit.availableAfter;
        }
        const nowMs = rt.clock.nowMs();
        const created = Math.floor(nowMs / 1000);
        const id = numericId('withdrawal', nowMs);
        const [line] = await applyMovement(trx, {
          app: scope.app, livemode: scope.livemode, createdS: created, nowMs, type: 'withdrawal', source: id,
          users: [{
            userPk: user.pk, userId: user.id, bucket: 'withdrawable', amount: -p.amount,
            line: { type: 'withdrawal', description: p.description ?? null }, availableAfter,
          }],
          apps: [{ account: 'withdrawal_hold', amount: p.amount }],
        });
        const row: WithdrawalRow = {
          id, app: scope.app, livemode: mode(scope), order_no: p.order_no, request_hash: hash,
          description: p.description ?? null, metadata: metadataText(p.metadata), created,
          user: user.id, user_pk: user.pk, amount: p.amount, user_fee: userFee, fee: 0,
          channel: channel!, extra: JSON.stringify(extra ?? {}), status: 'created', failure_msg: null, source: null,
          balance_transaction: line!, settle_account: settleAccountId, batch_withdrawal: null,
          time_canceled: null, time_succeeded: null, request_id: scope.requestId,
          payout_due_ms: null, payout_lease_ms: null, payout_phase: null, payout_tries: 0, payout_round: 0,
        };
        await insertRows(trx, 'withdrawals', [row]);
        await moveWithdrawalTotals(trx, statusMoves([row], null, 'created'));
        return row;
      }, options),
    () => [requestHash(p)],
  );
  if (row.request_id !== scope.requestId) return withdrawalToWire(row); // an idempotent replay: the first create's row
  observeWithdrawalTransition(row.channel, 'none', 'created');
  // This create wrote the row: its extra and metadata are the objects just serialised into it.
  return wireObject(row, extra ?? {}, p.metadata ?? {});
}

function checkOrderNo(channel: WithdrawalChannel, orderNo: string): void {
  const rule = ORDER_NO_RULES[channel];
  if (!rule.pattern.test(orderNo)) throw errors.invalidParam('order_no', rule.rule, rule.ruleZh);
}

async function findWithdrawal(db: Db, scope: Scope, id: string): Promise<WithdrawalRow> {
  const row = await db.selectFrom('withdrawals').selectAll()
    .where('id', '=', id).where('app', '=', scope.app).where('livemode', '=', mode(scope)).executeTakeFirst();
  if (!row) throw errors.notFound('withdrawal', id);
  return row;
}

export async function retrieveWithdrawal(rt: Runtime, scope: Scope, id: string): Promise<Withdrawal> {
  return withdrawalToWire(await findWithdrawal(rt.store.db, scope, id));
}

/** The `created` filters as one half-open range [fromS, untilS) of Unix seconds. */
function createdRange(p: ListParams): { fromS?: number; untilS?: number } {
  const lows = [p.created, p['created[gte]'], p['created[gt]'] === undefined ? undefined : p['created[gt]'] + 1].filter((v) => v !== undefined);
  const highs = [p.created === undefined ? undefined : p.created + 1, p['created[lt]'], p['created[lte]'] === undefined ? undefined : p['created[lte]'] + 1].filter(
    (v) => v !== undefined,
  );
  return { ...(lows.length ? { fromS: Math.max(...lows) } : {}), ...(highs.length ? { untilS: Math.min(...highs) } : {}) };
}

/**
 * List plus `total_withdrawals_amount`: the sum over every matching withdrawal, not just this page,
 * saturated at 2^31−1 (an app's withdrawals pass ¥21.5M in time; see saturatedSum).
 */
export async function listWithdrawals(rt: Runtime, scope: Scope, p: WithdrawalListParams): Promise<Omit<WithdrawalList, 'url' | 'object'>> {
  const scoped = (qb: AnyQuery) => qb.where('app', '=', scope.app).where('livemode', '=', mode(scope));
  // The filters use the (app, livemode, status|user|channel, created, id) indexes. They narrow the
  // page but not the cursor look-up: a merchant confirms the rows of a `status=created` page and
  // then asks for the next one after a cursor that is no longer `created`.
  // A filter that is present filters, even when empty: `user=` matches no withdrawal, as it
  // matches nothing in every other list (no user has an empty id).
  const filtered = (qb: AnyQuery) => {
    if (p.status !== undefined) qb = qb.where('status', '=', p.status);
    if (p.user !== undefined) qb = qb.where('user', '=', p.user);
    if (p.channel !== undefined) qb = qb.where('channel', '=', p.channel);
    return qb;
  };
  const { rows, hasMore } = await listPage<WithdrawalRow>(rt.store.db, 'withdrawals', scoped, p, 'id', filtered);
  const total = await totalAmount(rt.store.db, scope, p, (qb) => filtered(scoped(qb)));
  return { has_more: hasMore, data: rows.map(withdrawalToWire), total_withdrawals_amount: saturatedSum(total) };
}

/**
 * From the kept totals, except with a `user` filter: one user's withdrawals are few, and summing
 * them through the (app, livemode, user, created) index costs what their pages cost.
 */
async function totalAmount(db: Db, scope: Scope, p: WithdrawalListParams, matching: (qb: AnyQuery) => AnyQuery): Promise<number> {
  if (p.user !== undefined) {
    const total = (await whereCreated(matching(db.selectFrom('withdrawals')), p)
      .select(sql<number>`coalesce(sum(amount), 0)`.as('total'))
      .executeTakeFirstOrThrow()) as { total: number };
    return Number(total.total);
  }
  return withdrawalTotal(db, { app: scope.app, livemode: mode(scope), status: p.status, channel: p.channel, ...createdRange(p) });
}

export interface TransitionOptions extends WriteOptions {
  /** Runs in the transaction of the change (the console writes its audit line here: both commit or neither). */
  within?: (trx: Db, row: WithdrawalRow) => Promise<void>;
}

/**
 * Confirm (`status: pending`): hands the withdrawal to the payout worker. Only from `created`;
 * a live withdrawal without a configured channel driver is refused before anything changes.
 * A `custom` withdrawal (paid by the merchant itself) succeeds in this request instead.
 */
export async function confirmWithdrawal(rt: Runtime, scope: Scope, id: string, options: TransitionOptions = {}): Promise<Withdrawal> {
  const current = await findWithdrawal(rt.store.db, scope, id);
  if (paysOutsideTixian(current.channel)) return confirmPaidOutside(rt, scope, id, options);
  if (!canPayOut(rt, current.channel, scope.livemode)) throw errors.channelNotConfigured(current.channel);
  if (scope.livemode) await requireLiveCredentials(rt, scope.app, current.channel);
  const row = await rt.store.transaction(async (trx) => {
    const updated = await markPending(trx, scope, id, rt.clock.nowMs());
    if (!updated) throw errors.statusCannotBeUpdated('withdrawal', id, (await findWithdrawal(trx, scope, id)).status);
    await options.within?.(trx, updated);
    await moveWithdrawalTotals(trx, statusMoves([updated], 'created', 'pending'));
    return updated;
  }, options);
  // The payout worker claims it in a statement of its own and acts on that claim only once it is
  // durable, and with it this commit, made before it.
  rt.bus.emit('payout');
  observeWithdrawalTransition(row.channel, 'created', 'pending');
  return withdrawalToWire(row);
}

/**
 * Confirm of a withdrawal the merchant pays outside tixian (`custom`): `created → succeeded` in one
 * transaction, with what a channel success does (see settleSucceeded). No driver, no credentials,
 * in either mode; the payout worker never sees it (it is never `pending`).
 */
async function confirmPaidOutside(rt: Runtime, scope: Scope, id: string, options: TransitionOptions): Promise<Withdrawal> {
  const nowMs = rt.clock.nowMs();
  const row = await rt.store.transaction(async (trx) => {
    const [updated] = await markManyPaidOutside(trx, scope, [id], nowMs, null);
    if (!updated) throw errors.statusCannotBeUpdated('withdrawal', id, (await findWithdrawal(trx, scope, id)).status);
    await options.within?.(trx, updated);
    await settleSucceeded(trx, updated, nowMs, scope.accountId);
    if (updated.batch_withdrawal) await onBatchItemFinished(trx, updated.batch_withdrawal, Math.floor(nowMs / 1000));
    await moveWithdrawalTotals(trx, statusMoves([updated], 'created', 'succeeded'));
    return updated;
  }, options);
  rt.bus.emit('webhook');
  observeWithdrawalTransition(row.channel, 'created', 'succeeded');
  return withdrawalToWire(row);
}

/**
 * `created → succeeded` for withdrawals paid outside tixian (`custom` only), in one statement; the
 * caller settles each row (settleSucceeded) and moves the kept totals in the same transaction.
 * Like markManyPending: only rows still `created`, and with a batch only rows in no batch yet.
 */
export async function markManyPaidOutside(trx: Db, scope: Scope, ids: string[], nowMs: number, batchId: string | null): Promise<WithdrawalRow[]> {
  return confirmable(trx, scope, ids, batchId)
    .set({
      status: 'succeeded',
      time_succeeded: Math.floor(nowMs / 1000),
      failure_msg: null,
      request_id: scope.requestId,
      confirmed_ms: nowMs,
      ...(batchId ? { batch_withdrawal: batchId } : {}),
    })
    .where('channel', '=', 'custom')
    .returningAll()
    .execute();
}

/**
 * The UPDATE of a confirm (single or batch), before its SET: these withdrawals of the scope that
 * are still `created`, and with a batch only those in no batch yet. A withdrawal joins one batch
 * for life, checked in the statement that moves it: a check before the transaction could be
 * overtaken by another batch taking it in between.
 */
function confirmable(trx: Db, scope: Scope, ids: string[], batchId: string | null) {
  return trx
    .updateTable('withdrawals')
    .where('id', 'in', ids)
    .where('app', '=', scope.app)
    .where('livemode', '=', mode(scope))
    .where('status', '=', 'created')
    .$if(batchId !== null, (qb) => qb.where('batch_withdrawal', 'is', null));
}

/**
 * The kept totals' side of a status change (see store/withdrawal_totals.ts). The mark* functions
 * leave it to their caller, who calls it once, as the last write of its transaction.
 */
export function statusMoves(rows: readonly WithdrawalRow[], from: WithdrawalStatus | null, to: string): WithdrawalMove[] {
  return rows.map((r) => ({ app: r.app, livemode: r.livemode, channel: r.channel, user: r.user, created: r.created, amount: r.amount, from, to }));
}

/** The `created → pending` transition; returns the updated row, or undefined when not `created`. */
export async function markPending(trx: Db, scope: Scope, id: string, nowMs: number): Promise<WithdrawalRow | undefined> {
  const [row] = await markManyPending(trx, scope, [id], nowMs, null);
  return row;
}

/**
 * `created → pending` for many withdrawals in one statement (a batch confirm of 200 is one
 * UPDATE, not 200). Each confirm starts a new payout round; the payout's `source` (`tr_…`) and the
 * channel's idempotency key are derived from the withdrawal id and the round, so they are the
 * same however often the worker retries, and new when a withdrawal is confirmed again.
 */
export async function markManyPending(trx: Db, scope: Scope, ids: string[], nowMs: number, batchId: string | null): Promise<WithdrawalRow[]> {
  return confirmable(trx, scope, ids, batchId)
    .set((eb) => ({
      status: 'pending',
      source: sql<string>`'tr_' || id || '_' || (payout_round + 1)`,
      failure_msg: null,
      request_id: scope.requestId,
      payout_phase: 'submit',
      payout_due_ms: nowMs,
      payout_lease_ms: null,
      payout_tries: 0,
      payout_round: eb('payout_round', '+', 1),
      confirmed_ms: nowMs,
      payout_answer: null,
      payout_answer_ms: null,
      ...(batchId ? { batch_withdrawal: batchId } : {}),
    }))
    .returningAll()
    .execute();
}

/** The channel's idempotency key for a payout round: the withdrawal id, suffixed after the first round. */
export const payoutKey = (row: Pick<WithdrawalRow, 'id' | 'payout_round'>) => (row.payout_round <= 1 ? row.id : `${row.id}_${row.payout_round}`);

/** Cancel (`status: canceled`): only from `created`; the hold goes back to the user (`withdrawal_revoked`). */
export async function cancelWithdrawal(rt: Runtime, scope: Scope, id: string, options: TransitionOptions = {}): Promise<Withdrawal> {
  const done = await rt.store.transaction(async (trx) => {
    const canceled = await markCanceled(trx, scope, id, rt.clock.nowMs());
    if (!canceled) {
      const current = await findWithdrawal(trx, scope, id);
      // A WeChat bill waiting for the payee is given up at WeChat first (outside the transaction).
      if (!options.within && awaitsPayeeConfirmation(current, payoutKey(current))) return { waiting: current };
      throw errors.statusCannotBeUpdated('withdrawal', id, current.status);
    }
    await options.within?.(trx, canceled);
    await moveWithdrawalTotals(trx, statusMoves([canceled], 'created', 'canceled'));
    return { canceled };
  }, options);
  if (done.waiting) {
    const w = done.waiting;
    // Nothing leaves the process on a read that a power cut could take back (answerAt 'committed').
    await rt.store.committedDurable();
    if (!(await cancelWaitingWechatBill(rt, w, payoutKey(w)))) throw errors.statusCannotBeUpdated('withdrawal', id, w.status);
    return withdrawalToWire(w);
  }
  const row = done.canceled!;
  observeWithdrawalTransition(row.channel, 'created', 'canceled');
  return withdrawalToWire(row);
}

/** The `created → canceled` transition with its ledger entry; undefined when not `created`. */
export async function markCanceled(
  trx: Db,
  scope: Scope,
  id: string,
  nowMs: number,
  batch: { id: string } | null = null,
): Promise<WithdrawalRow | undefined> {
  const created = Math.floor(nowMs / 1000);
  const row = await trx
    .updateTable('withdrawals')
    .set({ status: 'canceled', time_canceled: created, ...(batch ? { batch_withdrawal: batch.id } : {}) })
    .where('id', '=', id)
    .where('app', '=', scope.app)
    .where('livemode', '=', mode(scope))
    .where('status', '=', 'created')
    .$if(batch !== null, (qb) => qb.where('batch_withdrawal', 'is', null))
    .returningAll()
    .executeTakeFirst();
  if (!row) return undefined;
  await returnHold(trx, row, nowMs, 'withdrawal_revoked');
  // A withdrawal of a confirm batch that came back to `created` and is canceled finishes its batch
  // item; a batch cancel settles its own status once, after all items.
  if (!batch && row.batch_withdrawal) await onBatchItemFinished(trx, row.batch_withdrawal, created);
  return row;
}

async function returnHold(trx: Db, row: WithdrawalRow, nowMs: number, lineType: 'withdrawal_revoked' | 'withdrawal_failed'): Promise<void> {
  await applyMovement(trx, {
    app: row.app, livemode: row.livemode === 1, createdS: Math.floor(nowMs / 1000), nowMs, type: lineType, source: row.id,
    users: [{ userPk: row.user_pk, userId: row.user, bucket: 'withdrawable', amount: row.amount, line: { type: lineType, description: row.description } }],
    apps: [{ account: 'withdrawal_hold', amount: -row.amount }],
  });
}

/**
 * The result the payout worker got from the channel, applied in one transaction. `answer`: the
 * channel's last answer as `tixian withdrawals stuck` shows it (bounded, secret-free; see
 * `channelAnswer` in channels/worker.ts); absent when no channel was asked this round.
 */
export type PayoutResult = (
  | { kind: 'succeeded' }
  | { kind: 'failed_user'; message: string }
  | { kind: 'failed_merchant'; message: string }
  /**
   * Ask the channel again at dueMs (the order may be there: the next step is always a query).
   * `confirmation`: the payee must confirm in WeChat; shown on the withdrawal as `extra.wx_confirmation`.
   */
  | { kind: 'retry'; dueMs: number; confirmation?: PayeeConfirmation }
) & { answer?: string };

/** The longest channel answer stored on a withdrawal (`payout_answer`). */
export const PAYOUT_ANSWER_MAX = 255;

/** Which claim a payout result belongs to: the withdrawal, its confirm round, and the worker's lease. */
export interface PayoutFence {
  id: string;
  round: number;
  leaseMs: number;
}

/**
 * Applies a channel result to a pending withdrawal of the given confirm round. Guarded by
 * `status = 'pending' AND payout_round = round AND payout_lease_ms = lease`, so a result applies
 * at most once, and only from the worker that still holds the claim, even when two workers (or
 * a worker before and after a crash) race: a payout never settles twice.
 * Returns false when the guard did not match (already applied, or the lease was lost).
 * `options.answerAt: 'committed'` (the payout worker): resolves at its batch's COMMIT on SQLite.
 */
export async function applyPayoutResult(rt: Runtime, fence: PayoutFence, result: PayoutResult, accountId: string, options: WriteOptions = {}): Promise<boolean> {
  const nowMs = rt.clock.nowMs();
  const nowS = Math.floor(nowMs / 1000);
  let settled: WithdrawalRow | undefined; // the row of the attempt that committed (a retried transaction runs again)
  const applied = await rt.store.transaction(async (trx) => {
    const base = trx
      .updateTable('withdrawals')
      .where('id', '=', fence.id)
      .where('status', '=', 'pending')
      .where('payout_round', '=', fence.round)
      .where('payout_lease_ms', '=', fence.leaseMs);
    // The channel's words commit with the result they led to (kept when no channel was asked).
    const answer = result.answer === undefined ? {} : { payout_answer: result.answer.slice(0, PAYOUT_ANSWER_MAX), payout_answer_ms: nowMs };
    const done = { payout_phase: null, payout_due_ms: null, payout_lease_ms: null, ...answer };
    if (result.kind === 'retry') {
      const extraUpdate = result.confirmation ? await withConfirmation(trx, fence.id, result.confirmation) : {};
      const r = await base
        .set((eb) => ({ payout_phase: 'query', payout_due_ms: result.dueMs, payout_lease_ms: null, payout_tries: eb('payout_tries', '+', 1), ...extraUpdate, ...answer }))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1 && extraUpdate.extra !== undefined) {
        // A new confirmation to show: the event commits with it, once per channel order.
        const row = await trx.selectFrom('withdrawals').selectAll().where('id', '=', fence.id).executeTakeFirstOrThrow();
        await emitEvent(trx, {
          app: row.app, accountId, livemode: row.livemode === 1, type: 'balance.withdrawal.pending_confirmation',
          object: withdrawalToWire(row), request: row.request_id, nowMs,
        });
      }
      return Number(r.numUpdatedRows) === 1;
    }
    if (result.kind === 'failed_merchant') {
      // Not the user's fault: back to `created`, the hold stays, the merchant may confirm again.
      const row = await base.set({ ...done, status: 'created', failure_msg: result.message.slice(0, 255) }).returningAll().executeTakeFirst();
      settled = row;
      if (row) await moveWithdrawalTotals(trx, statusMoves([row], 'pending', 'created'));
      return row !== undefined;
    }
    const row =
      result.kind === 'succeeded'
        ? await base.set({ ...done, status: 'succeeded', time_succeeded: nowS, failure_msg: null }).returningAll().executeTakeFirst()
        : await base.set({ ...done, status: 'failed', failure_msg: result.message.slice(0, 255) }).returningAll().executeTakeFirst();
    if (!row) return false;
    settled = row;
    if (result.kind === 'succeeded') {
      await settleSucceeded(trx, row, nowMs, accountId);
    } else {
      await returnHold(trx, row, nowMs, 'withdrawal_failed');
      await emitOutcome(trx, row, nowMs, accountId);
    }
    if (row.batch_withdrawal) await onBatchItemFinished(trx, row.batch_withdrawal, nowS);
    await moveWithdrawalTotals(trx, statusMoves([row], 'pending', row.status));
    return true;
  }, options);
  if (applied && result.kind !== 'retry') rt.bus.emit('webhook');
  if (applied && settled) observeWithdrawalTransition(settled.channel, 'pending', settled.status);
  return applied;
}

/**
 * What a withdrawal's success does besides its own row, in the transaction that made it
 * `succeeded` (by the payout worker, or at confirm for `custom`): the hold leaves for the payee
 * (amount − user_fee) and the merchant's fee income (user_fee), and `balance.withdrawal.succeeded`
 * goes to the outbox. The caller settles the batch (onBatchItemFinished) and moves the kept totals.
 */
export async function settleSucceeded(trx: Db, row: WithdrawalRow, nowMs: number, accountId: string): Promise<void> {
  const apps: { account: AppAccount; amount: number }[] = [
    { account: 'withdrawal_hold', amount: -row.amount },
    { account: 'payout_clearing', amount: row.amount - row.user_fee },
  ];
  if (row.user_fee > 0) apps.push({ account: 'fee_income', amount: row.user_fee });
  await applyMovement(trx, { app: row.app, livemode: row.livemode === 1, createdS: Math.floor(nowMs / 1000), nowMs, type: 'withdrawal_succeeded', source: row.id, users: [], apps });
  await emitOutcome(trx, row, nowMs, accountId);
}

/** The webhook event of a final outcome (`succeeded` or `failed`), committed with it. */
async function emitOutcome(trx: Db, row: WithdrawalRow, nowMs: number, accountId: string): Promise<void> {
  await emitEvent(trx, {
    app: row.app, accountId, livemode: row.livemode === 1,
    type: row.status === 'succeeded' ? 'balance.withdrawal.succeeded' : 'balance.withdrawal.failed',
    object: withdrawalToWire(row), request: row.request_id, nowMs,
  });
}

/** A live channel amount the channel itself would refuse is refused here, before any money is held. */
function checkLiveAmount(scope: Scope, channel: WithdrawalChannel, payoutFen: number): void {
  if (!scope.livemode) return;
  const refused = livePayoutAmountError(channel, payoutFen);
  if (refused) throw errors.invalidParam('amount', refused.en, refused.zh);
}

/**
 * Whether a confirm of `channel` has something to pay it in this mode: a driver (the sandbox in
 * test mode). `custom` needs none: the merchant pays it. With hasLiveCredentials, the one check
 * behind a confirm, a batch confirm and the console's channel page.
 */
export function canPayOut(rt: Runtime, channel: string, livemode: boolean): boolean {
  return paysOutsideTixian(channel) || rt.drivers.driverFor(channel as WithdrawalChannel, livemode) !== null;
}

/** A live confirm needs the app's own channel credentials (`tixian channels set`); `custom` needs none. */
export async function hasLiveCredentials(rt: Runtime, app: string, channel: string): Promise<boolean> {
  return paysOutsideTixian(channel) || hasCredentials(rt, app, true, channel);
}

export async function requireLiveCredentials(rt: Runtime, app: string, channel: string): Promise<void> {
  if (!(await hasLiveCredentials(rt, app, channel))) throw errors.channelCredentialsMissing(channel);
}

/** The `extra` update that shows a payee confirmation on the withdrawal; nothing when it is already shown. */
async function withConfirmation(trx: Db, id: string, confirmation: PayeeConfirmation): Promise<{ extra?: string }> {
  const row = await trx.selectFrom('withdrawals').select('extra').where('id', '=', id).executeTakeFirst();
  if (!row) return {};
  const extra = JSON.parse(row.extra) as Record<string, unknown>;
  const shown = extra.wx_confirmation as PayeeConfirmation | undefined;
  if (shown?.package_info === confirmation.package_info && shown.out_bill_no === confirmation.out_bill_no) return {};
  return { extra: JSON.stringify({ ...extra, wx_confirmation: confirmation }) };
}
