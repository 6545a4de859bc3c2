import { setCredentials, type ChannelCredentials } from '../../src/channels/credentials.ts';
import { PayoutWorker } from '../../src/channels/worker.ts';
import { Harness, type Engine, type HarnessOptions } from './harness.ts';
import { officialSdk, type PingppClient } from './pingpp.ts';

/**
 * A harness whose app pays live withdrawals through a (fake) gateway with these credentials, and a
 * payout worker (10 s lease) that the test runs round by round (`worker.runOnce()`).
 */
export async function startLivePayouts(
  engine: Engine,
  credentials: ChannelCredentials,
  options: HarnessOptions = {},
): Promise<{ h: Harness; worker: PayoutWorker }> {
  const h = await Harness.start(engine, options);
  try {
    await setCredentials(h.rt, h.appId, true, credentials);
  } catch (err) {
    await h.close();
    throw err;
  }
  return { h, worker: new PayoutWorker(h.rt, { leaseMs: 10_000 }) };
}

/** The official Ping++ SDK on the app's live key, and `user` made through it with 1,000,000 to withdraw. */
export async function liveSdkUser(h: Harness, user: string): Promise<PingppClient> {
  const pingpp = await officialSdk(h, h.liveKey);
  await pingpp.users.create(h.appId, { id: user });
  await h.fund(user, 1_000_000, h.liveKey);
  return pingpp;
}
