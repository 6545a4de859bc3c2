import type { AnyScenario } from '../scenario.ts';
import { bonusCreate, bonusCreatePlain } from './bonus_create.ts';
import { userCreate } from './user_create.ts';
import { userRetrieve, userRetrieveDistinct, userRetrieveDistinctLogWarn, userRetrievePlain } from './user_retrieve.ts';
import { withdrawalCreate, withdrawalCreateConfirm, withdrawalCreateSigned } from './withdrawal.ts';
import { webhookDelivery, webhookDeliveryTwoCores, webhookDeliveryWide } from './webhook_delivery.ts';
import { withdrawalCreateLogWarn, withdrawalCreateNoMetrics } from './observability.ts';
import { withdrawalCreate1k, withdrawalCreate1kOneCommitEach, withdrawalCreate1kPlain, withdrawalCreate1kPool20, withdrawalCreate1kTwoCores, withdrawalCreateHot } from './withdrawal_limits.ts';
import { consoleWithdrawalsList } from './console_list.ts';
import { growth } from './growth.ts';
import { withdrawalCreateProcs1, withdrawalCreateProcs2, withdrawalCreateProcs4 } from './scale.ts';

/**
 * Every scenario, in the order they run. To add one: one file in this folder exporting a
 * `Scenario` (request/response load) or a `CustomScenario` (drives itself), and one line here.
 */
// Each scenario's state type stays inside it; the runner only passes it from setup to requests.
export const scenarios = [
  bonusCreate,
  bonusCreatePlain,
  userCreate,
  userRetrieve,
  userRetrievePlain,
  withdrawalCreate,
  withdrawalCreateSigned,
  withdrawalCreateConfirm,
  webhookDelivery,
  webhookDeliveryWide,
  webhookDeliveryTwoCores,
  withdrawalCreateNoMetrics,
  withdrawalCreateLogWarn,
  withdrawalCreate1k,
  withdrawalCreate1kTwoCores,
  withdrawalCreate1kPlain,
  withdrawalCreate1kPool20,
  withdrawalCreateHot,
  withdrawalCreate1kOneCommitEach,
  userRetrieveDistinct,
  userRetrieveDistinctLogWarn,
  consoleWithdrawalsList,
  growth,
  withdrawalCreateProcs1,
  withdrawalCreateProcs2,
  withdrawalCreateProcs4,
] as AnyScenario[];
