import type { WithdrawalChannel } from '@tixian/sdk';
import type { Logger } from 'pino';
import type { Store } from '../store/db.ts';
import type { SecretBox } from '../security/secrets.ts';
import { hasCredentials, loadCredentials } from './credentials.ts';
import type { ChannelCall, ChannelDriver, DriverRegistry, PayoutOrder, PayoutOutcome } from './driver.ts';
import { loadAlipayDriver } from './alipay-load.ts';

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
export const LIVE_DRIVER_CHANNELS: readonly WithdrawalChannel[] = ['alipay', 'wx', 'wx_pub', 'wx_lite'];

/** The notify URL WeChat Pay POSTs a bill's notification to (http/routes/channel_notify.ts); none without `--public-url`. */
export function wechatNotifyUrl(publicUrl: string | undefined, app: string, livemode: boolean): string | undefined {
  return publicUrl ? `${publicUrl}/channels/wechat/notify/${encodeURIComponent(app)}/${livemode ? 'live' : 'test'}` : undefined;
}

/**
 * A driver whose module (and its SDK: alipay-sdk with urllib/undici, wechatpay-axios-plugin with
 * axios) is imported at its first call, not at start-up: a server that pays nothing live never
 * loads them, and one that does answers its first request before they load.
 */
function lazyDriver(name: string, load: () => Promise<ChannelDriver>): ChannelDriver {
  let driver: Promise<ChannelDriver> | null = null;
  const get = () => (driver ??= load().catch((err: unknown) => {
    driver = null; // a failed import is tried again at the next call
    throw err;
  }));
  return {
    name,
    submit: async (order, call) => (await get()).submit(order, call),
    query: async (order, call) => (await get()).query(order, call),
  };
}

export class LiveDrivers implements DriverRegistry {
  readonly alipay: ChannelDriver;
  readonly wechat: ChannelDriver;
  constructor(private readonly deps: { store: Store; box: SecretBox; log: Logger; publicUrl?: string | undefined }) {
    this.alipay = lazyDriver('alipay', async () => new (await loadAlipayDriver()).AlipayDriver(deps));
    this.wechat = lazyDriver('wechat', async () => new (await import('./wechat.ts')).WechatDriver(async (order) => {
      const loaded = await loadCredentials(deps, order.app, order.livemode, 'wechat');
      return loaded?.credentials.channel === 'wechat' ? loaded.credentials : null;
    }, deps.log, (order) => wechatNotifyUrl(deps.publicUrl, order.app, order.livemode)));
  }
  driverFor(channel: WithdrawalChannel): ChannelDriver | null {
    if (channel === 'alipay') return this.alipay;
    if (channel === 'wx' || channel === 'wx_pub' || channel === 'wx_lite') return this.wechat;
    return null;
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
