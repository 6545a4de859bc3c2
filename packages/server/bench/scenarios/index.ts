import type { Scenario } from '../scenario.ts';
import { bonusCreate, bonusCreatePlain } from './bonus_create.ts';
import { userRetrieve, userRetrievePlain } from './user_retrieve.ts';

/**
 * Every scenario, in the order they run. To add one (withdrawal create, create + confirm, signed
 * vs unsigned creates, webhook delivery …): one file in this folder exporting a `Scenario`, and
 * one line here.
 */
// Each scenario's state type stays inside it; the runner only passes it from setup to requests.
export const scenarios = [bonusCreate, bonusCreatePlain, userRetrieve, userRetrievePlain] as Scenario[];
