import type { BalanceBonus } from '../types.ts';
import type { BalanceBonusCreateParams, BalanceBonusListParams } from '../params.ts';
import { OrderedCollection } from './base.ts';

/** /v1/apps/{APP_ID}/balance_bonuses — 余额赠送 (§10): spendable, not withdrawable. */
export class BalanceBonuses extends OrderedCollection<BalanceBonus, BalanceBonusCreateParams, BalanceBonusListParams> {
  protected readonly collection = 'balance_bonuses';
}
