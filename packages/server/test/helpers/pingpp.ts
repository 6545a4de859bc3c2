import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Harness } from './harness.ts';

// pingpp ships no types (PingPlusPlus/pingpp-nodejs #4): the resources the tests call, loosely typed.
/* eslint-disable @typescript-eslint/no-explicit-any */
type SdkCall = (...args: any[]) => Promise<any>;
type Resource = Record<'create' | 'retrieve' | 'list' | 'update' | 'delete' | 'confirm' | 'cancel', SdkCall>;
export interface PingppClient {
  setHost(host: string, port: number, protocol: 'http' | 'https'): void;
  setPrivateKey(pem: string): void;
  users: Resource;
  withdrawals: Resource;
  batchWithdrawals: Resource;
  settleAccounts: Resource;
  balanceBonuses: Resource;
  balanceTransfers: Resource;
  balanceTransactions: Resource;
  events: Resource;
}

const require = createRequire(import.meta.url);
const Pingpp = require('pingpp') as (key: string) => PingppClient;

/**
 * The official Ping++ Node SDK, unchanged, pointed at the harness's server the way a merchant
 * points it at tixian (`setHost(host, port, 'http')`). Starts listening on a free port first.
 */
export async function officialSdk(h: Harness, key: string = h.testKey): Promise<PingppClient> {
  if (!h.app.server.listening) await h.app.listen({ port: 0, host: '127.0.0.1' });
  const client = Pingpp(key);
  client.setHost('127.0.0.1', (h.app.server.address() as AddressInfo).port, 'http');
  return client;
}
