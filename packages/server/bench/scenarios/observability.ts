import type { Scenario } from '../scenario.ts';
import { withdrawalCreate } from './withdrawal.ts';

/**
 * What observability costs on the create path: withdrawal_create (the server's defaults: metrics
 * on, log level info with its per-request access line) side by side with metrics off, and with log
 * level warn (no access line). Same requests, same setup; only the server's settings differ, so
 * the comparison line is the per-request cost of the switch.
 */

/** TIXIAN_METRICS=0: no onResponse counter/histogram update and no /metrics. Compared with metrics on. */
export const withdrawalCreateNoMetrics: Scenario<string[]> = {
  ...withdrawalCreate,
  name: 'withdrawal_create_no_metrics',
  description: 'withdrawal_create with metrics off (TIXIAN_METRICS=0)',
  baseline: 'withdrawal_create',
  serveEnv: { TIXIAN_METRICS: '0' },
};

/** --log-level warn (the default is info): no access line per request. */
export const withdrawalCreateLogWarn: Scenario<string[]> = {
  ...withdrawalCreate,
  name: 'withdrawal_create_log_warn',
  description: 'withdrawal_create at log level warn (no per-request access line)',
  baseline: 'withdrawal_create',
  serveArgs: ['--log-level', 'warn'],
};
