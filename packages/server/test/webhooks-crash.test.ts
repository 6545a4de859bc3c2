import { afterAll, beforeAll, expect, it } from 'vitest';
import pino from 'pino';
import { defaults } from '../src/config.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';
import { createApp, type CreatedApp } from '../src/services/accounts.ts';
import { upsertEndpoint } from '../src/webhooks/endpoints.ts';
import { describeEngines, freshStorage } from './helpers/harness.ts';
import { startServer, type ServerProcess } from './helpers/process.ts';
import { emitTestEvents, Receiver, verifyPingppSignature, type ReceivedRequest } from './helpers/receiver.ts';

/**
 * SIGKILL the real server while it delivers 1,000 queued events to a flapping receiver, start it
 * again, and check that none is lost: every event is answered 2xx at least once, and every copy of
 * an event (retries, and re-sends of what was in flight at the kill) carries the same id, bytes and
 * signature. The retry schedule runs 1000× faster (TIXIAN_WEBHOOK_RETRY_SCALE, test-only).
 */
describeEngines('webhook delivery survives SIGKILL', (engine) => {
  let storage: Awaited<ReturnType<typeof freshStorage>>;
  let rt: Runtime;
  let merchant: CreatedApp;
  let receiver: Receiver;
  let server: ServerProcess | undefined;
  const args = () => (storage.databaseUrl ? ['--database-url', storage.databaseUrl] : ['--data-dir', storage.dataDir]);
  const env = (): Record<string, string> => ({
    TIXIAN_DATA_DIR: storage.dataDir, // the master key lives there for both engines
    TIXIAN_WEBHOOK_RETRY_SCALE: '0.001',
    // A hanging try stays open this long: three of them (every 50th event's first try) must be open
    // at once at the kill, which a loaded machine reaches only if the window is not too short.
    TIXIAN_WEBHOOK_TIMEOUT_MS: '3000',
    TIXIAN_WEBHOOK_LEASE_MS: '4000',
    TIXIAN_LOG_LEVEL: 'error',
  });

  /** Per event: how many requests it got, and its index (decides how it flaps). */
  const seen = new Map<string, number>();
  const index = new Map<string, number>();
  const answered2xx = new Set<string>();
  /** Until the kill, some first tries hang (sent, never recorded); afterwards none do. */
  let hangSome = true;

  beforeAll(async () => {
    storage = await freshStorage(engine);
    rt = await openRuntime({ ...defaults, dataDir: storage.dataDir, databaseUrl: storage.databaseUrl, workers: false }, { log: pino({ level: 'silent' }) });
    merchant = await createApp(rt, { name: 'webhook crash' });
    receiver = await Receiver.start((r: ReceivedRequest) => {
      const id = r.event!.id;
      const k = (seen.get(id) ?? 0) + 1;
      seen.set(id, k);
      const i = index.get(id) ?? 0;
      // Some first tries hang until the server dies: sent, never recorded.
      if (hangSome && k === 1 && i % 50 === 7) return 'hang';
      if ((k === 1 && i % 3 === 0) || (k === 2 && i % 9 === 0)) return { status: 500 };
      if (k === 1 && i % 7 === 0) return { status: 302, headers: { location: '/elsewhere' } };
      answered2xx.add(id);
      return { status: 200 };
    });
    await upsertEndpoint(rt, { app: merchant.id, livemode: false, url: receiver.urlFor('/crash') });
  });
  afterAll(async () => {
    await server?.kill();
    await receiver?.close();
    await rt?.close();
    await storage?.drop();
  });

  async function emit(count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let done = 0; done < count; done += 200) ids.push(...(await emitTestEvents(rt, { app: merchant.id, accountId: merchant.account }, Math.min(200, count - done))));
    for (const id of ids) index.set(id, index.size);
    return ids;
  }

  it('loses no event and repeats each one byte for byte', async () => {
    const queued = await emit(1000);

    server = await startServer(args(), env());
    await receiver.waitFor((rs) => rs.length >= 300 && receiver.openCount >= 3, 30_000);
    const inFlightAtKill = receiver.openRequests.map((r) => r.event!.id);
    const receivedAtKill = receiver.requests.length;
    await server.kill('SIGKILL');
    hangSome = false;
    expect(answered2xx.size).toBeLessThan(1000);

    server = await startServer(args(), env());
    const more = await emit(100);
    const all = [...queued, ...more];
    await receiver.waitFor(() => all.every((id) => answered2xx.has(id)), 60_000);
    // A try answered 2xx just before the kill may not have been recorded (records are written in
    // batches): it is sent again when its lease runs out. Wait for the database to agree too.
    const deadline = performance.now() + 60_000;
    const unfinished = () => rt.store.db.selectFrom('webhook_deliveries').select('id').where('status', '=', 'pending').limit(1).execute();
    while ((await unfinished()).length > 0) {
      if (performance.now() > deadline) throw new Error('deliveries still pending 60 s after every event was answered');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // SIGTERM: the dispatcher finishes recording what is in flight before the process exits.
    await server.kill('SIGTERM');
    server = undefined;

    // What was in flight at the kill was sent again after the restart (its lease ran out).
    expect(inFlightAtKill.length).toBeGreaterThanOrEqual(3);
    for (const id of inFlightAtKill) {
      expect(receiver.requests.slice(receivedAtKill).some((r) => r.event!.id === id), `${id} re-sent`).toBe(true);
    }
    // Every copy of an event is the stored bytes, with the same id and signature.
    const bodies = new Map((await rt.store.db.selectFrom('events').select(['id', 'body', 'signature']).execute()).map((e) => [e.id, e]));
    for (const r of receiver.requests) {
      const stored = bodies.get(r.event!.id)!;
      expect(r.rawBody.toString('utf8')).toBe(stored.body);
      expect(r.headers['x-pingplusplus-signature']).toBe(stored.signature);
    }
    const sample = receiver.requests[0]!;
    expect(verifyPingppSignature(sample.rawBody, sample.headers['x-pingplusplus-signature'] as string, rt.platformKey.publicKeyPem)).toBe(true);
    const repeated = [...seen.values()].filter((n) => n > 1).length;
    expect(repeated).toBeGreaterThan(300);

    // The database agrees: every delivery succeeded, nothing is pending.
    const statuses = await rt.store.db
      .selectFrom('webhook_deliveries')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('status')
      .execute();
    expect(statuses.map((s) => [s.status, Number(s.n)])).toEqual([['succeeded', 1100]]);
    const pending = await rt.store.db.selectFrom('events').select('id').where('pending_webhooks', '<>', 0).execute();
    expect(pending).toHaveLength(0);
  });
});
