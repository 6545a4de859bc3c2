import { createApp, type CreatedApp } from '../../src/services/accounts.ts';
import { removeEndpoint } from '../../src/webhooks/endpoints.ts';
import { WebhookDispatcher } from '../../src/webhooks/dispatcher.ts';
import { Harness, type Engine, type HarnessOptions } from './harness.ts';
import { Receiver, type Behaviour } from './receiver.ts';

export type DispatcherOptions = ConstructorParameters<typeof WebhookDispatcher>[1];

/**
 * What the webhook suites share: one in-process server (a Harness) and one webhook receiver per
 * file, the dispatchers a test starts, and a way to leave nothing behind for the next test.
 */
export class WebhookRig {
  private readonly dispatchers: WebhookDispatcher[] = [];
  private shared: WebhookDispatcher | undefined;

  private constructor(
    readonly h: Harness,
    readonly receiver: Receiver,
  ) {}

  static async start(engine: Engine, options: HarnessOptions = {}): Promise<WebhookRig> {
    const h = await Harness.start(engine, options);
    try {
      return new WebhookRig(h, await Receiver.start());
    } catch (err) {
      await h.close();
      throw err;
    }
  }

  /** A dispatcher on the server's runtime, stopped by stopDispatchers() (and so by reset()). */
  dispatcher(options: DispatcherOptions = {}): WebhookDispatcher {
    const d = new WebhookDispatcher(this.h.rt, options);
    this.dispatchers.push(d);
    return d;
  }

  /** One dispatcher (default options) for the whole file, for suites that drain() it by hand: reset() leaves it running, close() stops it. */
  fileDispatcher(): WebhookDispatcher {
    return (this.shared ??= new WebhookDispatcher(this.h.rt));
  }

  async stopDispatchers(): Promise<void> {
    for (const d of this.dispatchers.splice(0)) await d.stop();
  }

  /** An app in an account of its own, so its event lists and endpoints hold only what the test made. */
  newMerchant(name: string): Promise<CreatedApp> {
    return createApp(this.h.rt, { name, account: `${name}-${Math.random().toString(36).slice(2, 8)}` });
  }

  /** newMerchant, as emitTestEvent takes it. */
  async freshApp(name: string): Promise<{ app: string; accountId: string }> {
    const app = await this.newMerchant(name);
    return { app: app.id, accountId: app.account };
  }

  /**
   * After each test: gives the receiver `behaviour` (when one is given), stops the dispatchers the
   * test started and removes its endpoints. Their waiting deliveries are canceled with them, so no
   * later test (which may move the clock on) sees another's retries.
   */
  async reset(options: { behaviour?: Behaviour } = {}): Promise<void> {
    if (options.behaviour) this.receiver.behaviour = options.behaviour;
    await this.stopDispatchers();
    const endpoints = await this.h.rt.store.db.selectFrom('webhook_endpoints').select(['id', 'app']).where('disabled', '=', 0).execute();
    for (const ep of endpoints) await removeEndpoint(this.h.rt, ep.app, ep.id);
  }

  async close(): Promise<void> {
    await this.shared?.stop();
    await this.receiver.close();
    await this.h.close();
  }
}
