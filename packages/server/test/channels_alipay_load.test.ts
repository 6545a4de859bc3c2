import { Socket } from 'node:net';
import { expect, it } from 'vitest';
import { loadAlipayDriver } from '../src/channels/alipay-load.ts';

// alipay-sdk's urllib patches net.Socket.prototype.destroy process-wide; with the patch, one error
// given to two sockets (as undici does when it aborts a webhook try) throws "Cannot redefine property".
it('loading the Alipay driver leaves net.Socket.prototype.destroy as it was', async () => {
  const before = Socket.prototype.destroy;
  const { AlipayDriver } = await loadAlipayDriver();
  expect(typeof AlipayDriver).toBe('function');
  expect(Socket.prototype.destroy).toBe(before);
  const err = new Error('aborted');
  const [a, b] = [new Socket(), new Socket()];
  for (const s of [a, b]) s.on('error', () => {});
  expect(() => {
    a.destroy(err);
    b.destroy(err);
  }).not.toThrow();
});
