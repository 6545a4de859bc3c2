import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { SignPool } from '../src/security/sign-pool.ts';

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

  it('leaves the event loop free while it signs', async () => {
    let settled = 0;
    // ~50 ms of RSA work. Inline, every one would be done before the event loop turned once.
    const started = Array.from({ length: 200 }, (_, i) => pool.sign(a.privateKey, Buffer.from(`body ${i}`)).then((s) => (settled++, s)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBeLessThan(200);
    expect(await Promise.all(started)).toHaveLength(200);
    expect(settled).toBe(200);
  });

  it('a signing thread that dies fails what it had and takes no more work', async () => {
    const fragile = new SignPool(1);
    try {
      await fragile.sign(a.privateKey, Buffer.from('warm'));
      // ~50 ms of signing queued in the one thread: the later ones are surely still waiting when it stops.
      const waiting = Array.from({ length: 200 }, (_, i) => fragile.sign(a.privateKey, Buffer.from(`in flight ${i}`)));
      await fragile.workers[0]!.terminate();
      expect(fragile.workers).toHaveLength(0);
      // Every one settles (none is left waiting forever); those the thread had not finished fail.
      const settled = await Promise.allSettled(waiting);
      const failed = settled.filter((r) => r.status === 'rejected');
      expect(failed.length).toBeGreaterThan(0);
      for (const r of failed) expect(String((r as PromiseRejectedResult).reason)).toMatch(/signing thread exited|closed/);
      const body = Buffer.from('after');
      expect(await fragile.sign(a.privateKey, body)).toBe(sign('sha256', body, a.privateKey).toString('base64'));
    } finally {
      await fragile.close();
    }
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
