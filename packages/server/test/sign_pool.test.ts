import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { MAX_AHEAD_PER_THREAD, SignPool, TurnQueue } from '../src/security/sign-pool.ts';

/** Response and webhook signatures made by worker threads are the same bytes the event loop would make. */
describe('SignPool', () => {
  const a = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const b = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pool = new SignPool(2);
  afterAll(async () => pool.close());

  it('signs in worker threads exactly as crypto.sign does, with several keys', async () => {
    expect(pool.threads).toBe(2);
    const bodies = Array.from({ length: 40 }, (_, i) => Buffer.from(JSON.stringify({ id: i, object: 'withdrawal', description: '提现' })));
    const signatures = await Promise.all(bodies.map((body, i) => pool.sign((i % 2 ? a : b).privateKey, body)));
    bodies.forEach((body, i) => {
      const key = i % 2 ? a : b;
      // PKCS#1 v1.5 is deterministic: the thread's signature equals the inline one byte for byte.
      expect(signatures[i]).toBe(sign('sha256', body, key.privateKey).toString('base64'));
      expect(verify('sha256', body, key.publicKey, Buffer.from(signatures[i]!, 'base64'))).toBe(true);
    });
  });

  it('a thread holds a bounded number of keys: past it, it forgets them and is sent again what it next uses', async () => {
    const c = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const small = new SignPool(1, 2);
    try {
      const keys = [a, b, c, a, b, c, c, a];
      const bodies = keys.map((_, i) => Buffer.from(`body ${i}`));
      // All at once: the thread is told to forget between signatures already on their way to it.
      const signatures = await Promise.all(bodies.map((body, i) => small.sign(keys[i]!.privateKey, body)));
      bodies.forEach((body, i) => expect(signatures[i]).toBe(sign('sha256', body, keys[i]!.privateKey).toString('base64')));
      expect(small.keysHeld[0]).toBeLessThanOrEqual(2);
      expect(small.keysHeld[0]).toBeGreaterThan(0);
    } finally {
      await small.close();
    }
  });

  it('leaves the event loop free while it signs', async () => {
    let settled = 0;
    // ~50 ms of RSA work. Inline, every one would be done before the event loop turned once.
    const started = Array.from({ length: 200 }, (_, i) => pool.sign(a.privateKey, Buffer.from(`body ${i}`)).then((s) => (settled++, s)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBeLessThan(200);
    expect(await Promise.all(started)).toHaveLength(200);
    expect(settled).toBe(200);
  });

  it('a signing thread that dies takes no more work, and what it had is signed on the event loop', async () => {
    const fragile = new SignPool(1);
    try {
      await fragile.sign(a.privateKey, Buffer.from('warm'));
      // ~50 ms of signing queued in the one thread: the later ones are surely still waiting when it stops.
      const bodies = Array.from({ length: 200 }, (_, i) => Buffer.from(`in flight ${i}`));
      const waiting = bodies.map((body) => fragile.sign(a.privateKey, body));
      await fragile.workers[0]!.terminate();
      expect(fragile.workers).toHaveLength(0);
      // Every one settles (none is left waiting forever), with the signature the thread would have made.
      const signatures = await Promise.all(waiting);
      signatures.forEach((s, i) => expect(s).toBe(sign('sha256', bodies[i]!, a.privateKey).toString('base64')));
      const body = Buffer.from('after');
      expect(await fragile.sign(a.privateKey, body)).toBe(sign('sha256', body, a.privateKey).toString('base64'));
    } finally {
      await fragile.close();
    }
  });

  it('a dying thread does not fail the signatures queued in the other, healthy thread', async () => {
    const pair = new SignPool(2);
    try {
      // Both threads warm, so each already has the key.
      await Promise.all([0, 1, 2, 3].map((i) => pair.sign(a.privateKey, Buffer.from(`warm ${i}`))));
      const [w0, w1] = pair.workers;
      expect(w1).toBeDefined();
      // ~100 ms of signing split over both threads (the pool gives each the one with fewer in flight).
      const bodies = Array.from({ length: 400 }, (_, i) => Buffer.from(`body ${i}`));
      const settled = bodies.map((body) => pair.sign(a.privateKey, body).then((s) => ({ s }), (e: unknown) => ({ e })));
      await w0!.terminate();
      expect(pair.workers).toEqual([w1]);
      // Thread 1 signs what it was given; thread 0's share is signed on the event loop. None fails.
      const results = await Promise.all(settled);
      results.forEach((r, i) => expect(r).toEqual({ s: sign('sha256', bodies[i]!, a.privateKey).toString('base64') }));
    } finally {
      await pair.close();
    }
  });

  it('closing fails the signatures still waiting in the threads', async () => {
    const closing = new SignPool(1);
    await closing.sign(a.privateKey, Buffer.from('warm'));
    const settling = Promise.allSettled(Array.from({ length: 200 }, (_, i) => closing.sign(a.privateKey, Buffer.from(`closing ${i}`))));
    await closing.close();
    const settled = await settling;
    const failed = settled.filter((r) => r.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) expect(String((r as PromiseRejectedResult).reason)).toMatch(/signing pool is closed/);
  });

  /** Asks for `n` signatures ahead (the pool's promises), recording in `order` the order in which they settle. */
  const aheadOf = (p: SignPool, n: number, order: string[]) => {
    const asked = Array.from({ length: n }, (_, i) => p.sign(a.privateKey, Buffer.from(`ahead ${i}`), { ahead: true }));
    asked.forEach((signed, i) => signed.then(() => order.push(`ahead ${i}`), () => undefined));
    return asked;
  };
  /** Runs `use` with a pool of one thread that already holds key a, and closes it after. */
  const withOneThread = async (use: (one: SignPool) => Promise<void>) => {
    const one = new SignPool(1);
    try {
      await one.sign(a.privateKey, Buffer.from('warm'));
      await use(one);
    } finally {
      await one.close();
    }
  };

  it('keeps signatures asked for ahead out of a busy thread: one needed now waits behind at most MAX_AHEAD_PER_THREAD of them', () =>
    withOneThread(async (one) => {
      const order: string[] = [];
      const ahead = aheadOf(one, 32, order);
      expect(one.queued).toBe(32 - MAX_AHEAD_PER_THREAD);
      const now = one.sign(a.privateKey, Buffer.from('an answer')).then((s) => (order.push('an answer'), s));
      await Promise.all([...ahead, now]);
      expect(order.indexOf('an answer')).toBeLessThanOrEqual(MAX_AHEAD_PER_THREAD);
      // The ones ahead still come in the order asked, and each is the signature crypto.sign makes.
      expect(order.filter((o) => o !== 'an answer')).toEqual(Array.from({ length: 32 }, (_, i) => `ahead ${i}`));
      expect(await ahead[31]).toBe(sign('sha256', Buffer.from('ahead 31'), a.privateKey).toString('base64'));
      expect(one.queued).toBe(0);
    }));

  it('hurries a signature asked for ahead to a thread when it is needed now, and only once', () =>
    withOneThread(async (one) => {
      const order: string[] = [];
      const ahead = aheadOf(one, 32, order);
      expect(one.hurry(ahead[20]!)).toBe(true);
      expect(one.hurry(ahead[20]!)).toBe(false); // already with the thread
      expect(one.hurry(ahead[0]!)).toBe(false); // sent at once: the thread had room
      expect(one.hurry(Promise.resolve('not the pool\'s'))).toBe(false);
      await Promise.all(ahead);
      expect(order.indexOf('ahead 20')).toBeLessThanOrEqual(MAX_AHEAD_PER_THREAD);
      expect(await ahead[20]).toBe(sign('sha256', Buffer.from('ahead 20'), a.privateKey).toString('base64'));
      expect(order).toHaveLength(32); // signed once each: the hurried one is not sent again from the queue
    }));

  it('signs on the event loop what waited in its queue when its last thread dies, and fails it on close', async () => {
    const fragile = new SignPool(1);
    await fragile.sign(a.privateKey, Buffer.from('warm'));
    const ahead = aheadOf(fragile, 24, []);
    await fragile.workers[0]!.terminate();
    const signatures = await Promise.all(ahead);
    signatures.forEach((s, i) => expect(s).toBe(sign('sha256', Buffer.from(`ahead ${i}`), a.privateKey).toString('base64')));
    await fragile.close();

    const closing = new SignPool(1);
    await closing.sign(a.privateKey, Buffer.from('warm'));
    const queued = Promise.allSettled(aheadOf(closing, 24, []));
    await closing.close();
    const settled = await queued;
    expect(settled.filter((r) => r.status === 'rejected').length).toBeGreaterThanOrEqual(24 - MAX_AHEAD_PER_THREAD);
  });

  it('without a spare core it signs inline (no threads)', async () => {
    const inline = new SignPool(0);
    try {
      expect(inline.threads).toBe(0);
      const body = Buffer.from('{"ok":true}');
      expect(await inline.sign(a.privateKey, body)).toBe(sign('sha256', body, a.privateKey).toString('base64'));
    } finally {
      await inline.close();
    }
  });
});

/**
 * libuv accepts one connection per event-loop turn: signatures made on the event loop run a
 * bounded share per turn, so a burst of them does not keep new connections waiting until all are done.
 */
describe('TurnQueue (signatures on the event loop)', () => {
  it('runs jobs in order, a bounded share per turn, and new connections are accepted between turns', async () => {
    // ~5 ms a turn: two of the 3 ms jobs below.
    const turns = new TurnQueue(5);
    const server = createServer((socket) => {
      events.push('accepted');
      socket.destroy();
    });
    const events: string[] = [];
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const clients = Array.from({ length: 5 }, () => connect(port, '127.0.0.1').on('error', () => {}));
      // Every client is in the accept queue before the jobs start.
      await Promise.all(clients.map((c) => new Promise((resolve) => c.once('connect', resolve))));
      const done = new Promise<void>((resolve) => {
        for (let i = 0; i < 20; i++) {
          turns.push(() => {
            const until = performance.now() + 3; // ~ one RSA signature of work
            while (performance.now() < until);
            events.push(`job ${i}`);
            if (i === 19) resolve();
          });
        }
      });
      expect(turns.size).toBe(20);
      await done;
      expect(events.filter((e) => e.startsWith('job'))).toEqual(Array.from({ length: 20 }, (_, i) => `job ${i}`));
      // All five connections were taken in long before the last job (all at the end, had the jobs run in one turn).
      const lastAccept = events.lastIndexOf('accepted');
      expect(events.filter((e) => e === 'accepted')).toHaveLength(5);
      expect(lastAccept).toBeLessThan(events.indexOf('job 15'));
      expect(turns.size).toBe(0);
      clients.forEach((c) => c.destroy());
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("runs what a turn's jobs return after the turn's last job, in order (answers go out after the turn's signatures)", async () => {
    // ~10 ms a turn, 1 ms jobs: several turns of several jobs each (how many per turn depends on the machine's pace).
    const turns = new TurnQueue(10);
    const events: { kind: 'sign' | 'send'; i: number }[] = [];
    const n = 30;
    await new Promise<void>((resolve) => {
      for (let i = 0; i < n; i++) {
        turns.push(() => {
          const until = performance.now() + 1;
          while (performance.now() < until);
          events.push({ kind: 'sign', i });
          return () => {
            events.push({ kind: 'send', i });
            if (i === n - 1) resolve();
          };
        });
      }
    });
    // The events are runs of signatures, each followed by the sends of exactly those, in order.
    const runs: { kind: string; ids: number[] }[] = [];
    for (const e of events) {
      const last = runs[runs.length - 1];
      if (last?.kind === e.kind) last.ids.push(e.i);
      else runs.push({ kind: e.kind, ids: [e.i] });
    }
    const signs = runs.filter((r) => r.kind === 'sign');
    const sends = runs.filter((r) => r.kind === 'send');
    expect(runs.map((r) => r.kind)).toEqual(signs.flatMap(() => ['sign', 'send']));
    expect(sends.map((r) => r.ids)).toEqual(signs.map((r) => r.ids));
    expect(signs.flatMap((r) => r.ids)).toEqual(Array.from({ length: n }, (_, i) => i));
    // Back to back: a turn signs several before it sends any, and the budget still splits them into turns.
    expect(Math.max(...signs.map((r) => r.ids.length))).toBeGreaterThan(1);
    expect(signs.length).toBeGreaterThan(1);
  });
});
