import type { Scenario } from '../scenario.ts';
import { withdrawalCreate } from './withdrawal.ts';

/**
 * What observability costs on the create path: withdrawal_create (the bench's server defaults:
 * metrics on, log level warn) side by side with metrics off, and with log level info (the level at
 * which a server writes its per-request access line, when it has one). Same requests, same setup;
 * only the server's settings differ, so the comparison line is the per-request cost of the switch.
 */

/** TIXIAN_METRICS=0: no onResponse counter/histogram update and no /metrics. Compared with metrics on. */
export const withdrawalCreateNoMetrics: Scenario<string[]> = {
  ...withdrawalCreate,
  name: 'withdrawal_create_no_metrics',
  description: 'withdrawal_create with metrics off (TIXIAN_METRICS=0)',
  baseline: 'withdrawal_create',
  serveEnv: { TIXIAN_METRICS: '0' },
};

/** --log-level info (the bench's servers run at warn): request logging, where the server has it. */
export const withdrawalCreateLogInfo: Scenario<string[]> = {
  ...withdrawalCreate,
  name: 'withdrawal_create_log_info',
  description: 'withdrawal_create at log level info (request logging on)',
  baseline: 'withdrawal_create',
  serveArgs: ['--log-level', 'info'],
};
