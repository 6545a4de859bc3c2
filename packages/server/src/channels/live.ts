import type { WithdrawalChannel } from '@tixian/sdk';
import type { Logger } from 'pino';
import type { Store } from '../store/db.ts';
import type { SecretBox } from '../security/secrets.ts';
import { AlipayDriver } from './alipay.ts';
import type { ChannelDriver, DriverRegistry } from './driver.ts';

/**
 * The live-mode drivers. A driver pays with the credentials of the withdrawal's own app
 * (`tixian channels set`); whether an app has them is checked at confirm (services/withdrawals.ts).
 *
 * Channels without a driver: unionpay (ChinaPay ORA 代付), allinpay (通联 TLT) and jdpay have no
 * maintained library and publish their payout specs only to contracted merchants. A driver for one
 * implements ChannelDriver (driver.ts): a request signer in the provider's key format, a response
 * verifier, the status mapping of spec/channels.md §4, a stable per-key order number in the
 * provider's format, query by that number, an HTTP timeout below the call's, and a fake gateway.
 */
export const LIVE_DRIVER_CHANNELS: readonly WithdrawalChannel[] = ['alipay'];

export class LiveDrivers implements DriverRegistry {
  private readonly alipay: AlipayDriver;
  constructor(deps: { store: Store; box: SecretBox; log: Logger }) {
    this.alipay = new AlipayDriver(deps);
  }
  driverFor(channel: WithdrawalChannel): ChannelDriver | null {
    return channel === 'alipay' ? this.alipay : null;
  }
}
