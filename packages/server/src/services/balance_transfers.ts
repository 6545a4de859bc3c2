import type { Runtime } from '../runtime.ts';
import type { BalanceTransfer, Metadata } from '@tixian/sdk';
import type { BalanceTransferRow } from '../store/schema.ts';
import { errors } from '../domain/errors.ts';
import { numericId } from '../domain/ids.ts';
import { applyMovement, assertMoney } from '../ledger/ledger.ts';
import { listPage, type ListParams } from '../store/paging.ts';
import { MAX_AMOUNT } from '../domain/money.ts';
import { activeUser, createOnce, metadataText, mode, parseJsonObject, requestHash, type Scope, type WriteOptions } from './common.ts';
import { retrieveScoped } from './credits.ts';

export interface BalanceTransferParams {
  user: string;
  recipient: string;
  amount: number;
  user_fee?: number;
  order_no: string;
  description?: string | null;
  metadata?: Metadata | null;
}

export function balanceTransferToWire(row: BalanceTransferRow): BalanceTransfer {
  return {
    id: row.id,
    object: 'balance_transfer',
    app: row.app,
    created: row.created,
    livemode: row.livemode === 1,
    status: 'succeeded',
    amount: row.amount,
    order_no: row.order_no,
    user: row.user,
    recipient: row.recipient,
    user_fee: row.user_fee,
    user_balance_transaction: row.user_balance_transaction,
    recipient_balance_transaction: row.recipient_balance_transaction,
    description: row.description,
    metadata: parseJsonObject(row.metadata),
  };
}

/**
 * 余额转账 (§11): the sender pays `amount + user_fee` from their withdrawable balance, the
 * recipient receives `amount` as withdrawable money, and the fee goes to the app's fee_income.
 * One journal entry, two `transfer` lines (sender negative, recipient positive), synchronous
 * `succeeded`. Keyed by order_no like every create (a retried identical request returns the
 * first transfer; other parameters under the same order_no are a 400).
 */
export async function createBalanceTransfer(rt: Runtime, scope: Scope, p: BalanceTransferParams, options: WriteOptions = {}): Promise<BalanceTransfer> {
  const userFee = p.user_fee ?? 0;
  // The system user "0" is the platform: money leaves it only through the merchant's own tools.
  if (p.user === '0') throw errors.invalidParam('user', 'the system user "0" cannot send a balance_transfer', '系统用户 "0" 不能发起转账');
  if (p.recipient === p.user) throw errors.invalidParam('recipient', 'must differ from user', '不能与 user 相同');
  // Java and C# read amounts as 32-bit ints, and the sender's line shows amount + user_fee.
  if (p.amount + userFee > MAX_AMOUNT) {
    throw errors.invalidParam('user_fee', `amount + user_fee must be at most ${MAX_AMOUNT}`, `amount 与 user_fee 之和不能超过 ${MAX_AMOUNT}`);
  }
  // An omitted user_fee and an explicit 0 are the same request (Go omits it when 0).
  const hash = requestHash({ ...p, user_fee: userFee });

  const row = await createOnce<BalanceTransferRow>(rt.store.db, 'balance_transfers', scope, p.order_no, hash, () =>
    rt.store.transaction(async (trx) => {
      const sender = await activeUser(trx, scope, p.user, 'user');
      const recipient = await activeUser(trx, scope, p.recipient, 'recipient');
      const nowMs = rt.clock.nowMs();
      const created = Math.floor(nowMs / 1000);
      const id = numericId('balance_transfer', nowMs);
      const line = { type: 'transfer' as const, description: p.description ?? null };
      const [senderLine, recipientLine] = await applyMovement(trx, {
        app: scope.app, livemode: scope.livemode, createdS: created, nowMs, type: 'balance_transfer', source: id,
        users: [
          { userPk: sender.pk, userId: sender.id, bucket: 'withdrawable', amount: -(p.amount + userFee), line },
          { userPk: recipient.pk, userId: recipient.id, bucket: 'withdrawable', amount: p.amount, capped: true, line },
        ],
        // A zero posting is not allowed, so a fee-free transfer has no fee_income posting.
        apps: userFee > 0 ? [{ account: 'fee_income', amount: userFee }] : [],
      });
      assertMoney(senderLine !== undefined && recipientLine !== undefined, `balance_transfer ${id} got no balance_transactions`);
      const row: BalanceTransferRow = {
        id, app: scope.app, livemode: mode(scope), order_no: p.order_no, request_hash: hash,
        description: p.description ?? null, metadata: metadataText(p.metadata), created,
        status: 'succeeded', amount: p.amount, user_fee: userFee, user: sender.id, recipient: recipient.id,
        user_balance_transaction: senderLine, recipient_balance_transaction: recipientLine,
      };
      await trx.insertInto('balance_transfers').values(row).execute();
      return row;
    }, options),
  );
  return balanceTransferToWire(row);
}

export async function retrieveBalanceTransfer(rt: Runtime, scope: Scope, id: string): Promise<BalanceTransfer> {
  return balanceTransferToWire(await retrieveScoped<BalanceTransferRow>(rt, scope, 'balance_transfers', 'balance_transfer', id));
}

/**
 * `user` matches transfers the user sent **or** received (Ping++ does not document the filter;
 * a wallet's "my transfers" page wants both directions). `recipient` narrows to one receiver.
 */
export async function listBalanceTransfers(rt: Runtime, scope: Scope, p: ListParams & { user?: string; recipient?: string }) {
  const { rows, hasMore } = await listPage<BalanceTransferRow>(
    rt.store.db,
    'balance_transfers',
    (qb) => {
      qb = qb.where('app', '=', scope.app).where('livemode', '=', mode(scope));
      const user = p.user;
      if (user !== undefined) qb = qb.where((eb) => eb.or([eb('user', '=', user), eb('recipient', '=', user)]));
      if (p.recipient !== undefined) qb = qb.where('recipient', '=', p.recipient);
      return qb;
    },
    p,
  );
  return { data: rows.map(balanceTransferToWire), hasMore };
}
