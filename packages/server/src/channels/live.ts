import type { WithdrawalChannel } from '@tixian/sdk';
import type { Logger } from 'pino';
import type { Store } from '../store/db.ts';
import type { SecretBox } from '../security/secrets.ts';
import { AlipayDriver } from './alipay.ts';
import { hasCredentials } from './credentials.ts';
import type { ChannelCall, ChannelDriver, DriverRegistry, PayoutOrder, PayoutOutcome } from './driver.ts';

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
  readonly alipay: AlipayDriver;
  constructor(private readonly deps: { store: Store; box: SecretBox; log: Logger }) {
    this.alipay = new AlipayDriver(deps);
  }
  driverFor(channel: WithdrawalChannel): ChannelDriver | null {
    return channel === 'alipay' ? this.alipay : null;
  }

  /**
   * Test mode on a real channel's own sandbox: an app with test-mode credentials for the channel
   * (`tixian channels set --mode test`, e.g. Alipay's sandbox endpoint) pays through that channel's
   * driver; every other app stays on the built-in sandbox. The choice is made per call, so
   * setting or removing test credentials while a test payout is in flight may leave that payout to
   * be asked about at the other one (no real money moves in test mode either way).
   */
  testMode(sandbox: ChannelDriver): ChannelDriver {
    const pick = async (order: PayoutOrder): Promise<ChannelDriver> => {
      const real = this.driverFor(order.channel);
      return real && (await hasCredentials(this.deps, order.app, false, order.channel)) ? real : sandbox;
    };
    return {
      name: sandbox.name,
      submit: async (order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> => (await pick(order)).submit(order, call),
      query: async (order: PayoutOrder, call: ChannelCall): Promise<PayoutOutcome> => (await pick(order)).query(order, call),
    };
  }
}
