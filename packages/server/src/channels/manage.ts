import type { Runtime } from '../runtime.ts';
import { observeChannelCheck } from '../observability/metrics.ts';
import { CredentialsError, loadCredentials, setCredentials, validateCredentials, type ChannelCredentials, type CredentialInfo } from './credentials.ts';
import { loadAlipayDriver } from './alipay-load.ts';

/**
 * What `tixian channels set|check` and the console's Developers page share: checking a credential
 * set before it is sealed, and the signed, harmless call that proves it works.
 */
export const CHECK_TIMEOUT_MS = 10_000;

/**
 * Validates a credential set and builds what the driver will build at payout time (certificates
 * parse, SNs compute). The drivers (and their SDKs) load here, at first use, not at start-up.
 */
export async function prepareCredentials(c: ChannelCredentials): Promise<void> {
  validateCredentials(c);
  if (c.channel === 'alipay') {
    const { sdkFor } = await loadAlipayDriver();
    try {
      sdkFor(c, CHECK_TIMEOUT_MS);
    } catch {
      // Never the SDK's message: it may quote the key or certificate.
      throw new CredentialsError('alipay-sdk could not load these keys or certificates');
    }
  }
}

/** Validates and seals; `previous` is the fingerprint of the set it replaced, if any. */
export async function saveCredentials(rt: Runtime, app: string, livemode: boolean, c: ChannelCredentials): Promise<CredentialInfo & { previous: string | null }> {
  await prepareCredentials(c);
  const before = await rt.store.db.selectFrom('channel_credentials').select('fingerprint')
    .where('app', '=', app).where('livemode', '=', livemode ? 1 : 0).where('channel', '=', c.channel).executeTakeFirst();
  const info = await setCredentials(rt, app, livemode, c);
  return { ...info, previous: before?.fingerprint ?? null };
}

export interface CheckResult {
  fingerprint: string;
  ok: boolean;
  message: string;
}

/** The signed, harmless call (a query of an order that cannot exist); null when the app has no such credentials. */
export async function checkCredentials(rt: Pick<Runtime, 'store' | 'box'>, app: string, livemode: boolean, channel: string, timeoutMs = CHECK_TIMEOUT_MS): Promise<CheckResult | null> {
  const loaded = await loadCredentials(rt, app, livemode, channel);
  if (!loaded) return null;
  const c = loaded.credentials;
  const r = await (c.channel === 'wechat'
    ? (await import('./wechat.ts')).WechatDriver.check(c, timeoutMs)
    : (await loadAlipayDriver()).AlipayDriver.check(c, timeoutMs));
  observeChannelCheck(c.channel, r.ok);
  return { fingerprint: loaded.fingerprint, ok: r.ok, message: r.message };
}
