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
    let turned = false;
    setImmediate(() => (turned = true));
    const started = Array.from({ length: 16 }, (_, i) => pool.sign(a.privateKey, Buffer.from(`body ${i}`)));
    // Inline, all 16 signatures (~4 ms of CPU) would be done before the event loop turned once.
    await started[0];
    const last = await Promise.all(started);
    expect(turned).toBe(true);
    expect(last).toHaveLength(16);
  });

  it('a signing thread that dies fails what it had and takes no more work', async () => {
    const fragile = new SignPool(1);
    try {
      await fragile.sign(a.privateKey, Buffer.from('warm'));
      const waiting = fragile.sign(a.privateKey, Buffer.from('in flight'));
      await fragile.workers[0]!.terminate();
      expect(fragile.workers).toHaveLength(0);
      await expect(waiting).rejects.toThrow(/signing thread exited|closed/);
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
