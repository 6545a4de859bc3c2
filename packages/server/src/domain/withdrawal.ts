import type { WithdrawalStatus } from '@tixian/sdk';

/**
 * The withdrawal state machine (§6.6). The database enforces each transition with a conditional
 * UPDATE on the current status; this table is the single statement of which transitions exist.
 *
 *   created ──confirm──> pending ──channel ok────────> succeeded
 *      │                    ├──────user's fault──────> failed      (hold returned)
 *      │                    └──merchant's fault──────> created     (may be confirmed again)
 *      └────cancel───────> canceled                                 (hold returned)
 */
export const TRANSITIONS: Record<WithdrawalStatus, readonly WithdrawalStatus[]> = {
  created: ['pending', 'canceled'],
  pending: ['succeeded', 'failed', 'created'],
  succeeded: [],
  failed: [],
  canceled: [],
};

export function canTransition(from: WithdrawalStatus, to: WithdrawalStatus): boolean {
  return TRANSITIONS[from].includes(to);
}
