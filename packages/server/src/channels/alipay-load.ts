import { Socket } from 'node:net';
import type * as AlipayModule from './alipay.ts';

/**
 * Imports the Alipay driver, and with it alipay-sdk. alipay-sdk's HTTP client (urllib 4) replaces
 * `net.Socket.prototype.destroy` for the whole process, at import, with a version that defines a
 * non-configurable property on the error it is given; undici (the webhook dispatcher's client)
 * destroys a socket twice with one error when a request times out or is aborted, and the second
 * definition throws "Cannot redefine property" as an unhandled rejection. The patch only decorates
 * errors, so the original method is put back.
 */
export async function loadAlipayDriver(): Promise<typeof AlipayModule> {
  const destroy = Socket.prototype.destroy;
  try {
    return await import('./alipay.ts');
  } finally {
    Socket.prototype.destroy = destroy;
  }
}
