import type { BalanceSettlement } from '../types.ts';
import type { BalanceSettlementCreateParams, BalanceSettlementListParams } from '../params.ts';
import { OrderedCollection } from './base.ts';

/** /v1/apps/{APP_ID}/balance_settlements — 余额结算, a tixian extension: credits earnings as withdrawable money. */
export class BalanceSettlements extends OrderedCollection<BalanceSettlement, BalanceSettlementCreateParams, BalanceSettlementListParams> {
  protected readonly collection = 'balance_settlements';
}
