import type { BalanceTransfer } from '../types.ts';
import type { BalanceTransferCreateParams, BalanceTransferListParams } from '../params.ts';
import { OrderedCollection } from './base.ts';

/** /v1/apps/{APP_ID}/balance_transfers — 余额转账 (§11): user to user. */
export class BalanceTransfers extends OrderedCollection<BalanceTransfer, BalanceTransferCreateParams, BalanceTransferListParams> {
  protected readonly collection = 'balance_transfers';
}
