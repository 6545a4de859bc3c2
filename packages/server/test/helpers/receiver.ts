import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createVerify } from 'node:crypto';
import type { EventType } from '@tixian/sdk';
import type { Runtime } from '../../src/runtime.ts';
import { emitEvent } from '../../src/webhooks/outbox.ts';

/**
 * A real webhook receiver for tests: node:http on 127.0.0.1, port 0. It keeps every request's raw
 * body bytes (signatures are over those, never over re-serialised JSON) and answers as a behaviour
 * says: a status, a hang (never answer), or a dropped connection.
 */

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /** 1-based count of requests to this path so far, this one included. */
  nth: number;
  receivedAtMs: number;
  /** The parsed event (null when the body was not JSON). */
  event: { id: string; type: string; [k: string]: unknown } | null;
}

export type Reply =
  | { status: number; body?: string; headers?: Record<string, string>; delayMs?: number }
  | 'hang'
  | 'destroy';

export type Behaviour = (req: ReceivedRequest) => Reply;

export const ok: Behaviour = () => ({ status: 200, body: 'ok' });

/** Per path: answer 500 to the first `n` requests, then 200. */
export const failFirst =
  (n: number): Behaviour =>
  (req) =>
    req.nth <= n ? { status: 500, body: `fail ${req.nth}` } : { status: 200, body: 'ok' };

const MAX_BODY_BYTES = 1024 * 1024;

export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly perPath = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private readonly hanging = new Map<ServerResponse, ReceivedRequest>();
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    public behaviour: Behaviour,
  ) {}

  static async start(behaviour: Behaviour = ok): Promise<Receiver> {
    // The handler needs the receiver and the receiver needs the server's port: tie them after listen.
    const ref: { receiver?: Receiver } = {};
    const server = createServer((req, res) => ref.receiver!.handle(req.method ?? '', req.url ?? '/', req.headers, req, res));
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('receiver has no port');
    const receiver = new Receiver(server, `http://127.0.0.1:${address.port}`, behaviour);
    ref.receiver = receiver;
    server.on('connection', (s) => {
      receiver.sockets.add(s);
      s.on('close', () => receiver.sockets.delete(s));
    });
    return receiver;
  }

  urlFor(path: string): string {
    return this.url + path;
  }

  /** Requests answered with hang that are still open. */
  get openCount(): number {
    return this.hanging.size;
  }

  get openRequests(): ReceivedRequest[] {
    return [...this.hanging.values()];
  }

  to(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Resolves once `done(requests)` holds; rejects after timeoutMs (a bound, not a sleep). */
  waitFor(done: (requests: ReceivedRequest[]) => boolean, timeoutMs = 10_000): Promise<void> {
    if (done(this.requests)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done(this.requests)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`receiver: condition not met within ${timeoutMs} ms (${this.requests.length} requests)`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Drops the requests answered with hang that are still open: their senders see the connection go. */
  dropOpen(): void {
    for (const res of this.hanging.keys()) res.destroy();
  }

  async close(): Promise<void> {
    this.dropOpen();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(method: string, path: string, headers: IncomingHttpHeaders, req: NodeJS.ReadableStream, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      const nth = (this.perPath.get(path) ?? 0) + 1;
      this.perPath.set(path, nth);
      let event: ReceivedRequest['event'] = null;
      try {
        event = JSON.parse(rawBody.toString('utf8')) as ReceivedRequest['event'];
      } catch {
        event = null;
      }
      const received: ReceivedRequest = { method, path, headers, rawBody, nth, receivedAtMs: Date.now(), event };
      this.requests.push(received);
      const reply = this.behaviour(received);
      if (reply === 'hang') {
        this.hanging.set(res, received);
        res.on('close', () => this.hanging.delete(res));
      } else if (reply === 'destroy') {
        res.socket?.destroy();
      } else {
        const answer = () => {
          res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
          res.end(reply.body ?? '');
        };
        if (reply.delayMs) setTimeout(answer, reply.delayMs);
        else answer();
      }
      for (const w of [...this.waiters]) w();
    });
  }
}

/** A port nothing listens on (for "connection refused"). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/** Exactly what pingpp-nodejs `example/webhooks_verify.js` does, with the raw body bytes. */
export function verifyPingppSignature(rawBody: Buffer, signature: string, publicKeyPem: string): boolean {
  return createVerify('RSA-SHA256').update(rawBody).verify(publicKeyPem, signature, 'base64');
}

export interface TestEvent {
  app: string;
  accountId: string;
  livemode?: boolean;
  type?: EventType;
  object?: Record<string, unknown>;
  request?: string | null;
}

/**
 * Emits an event through the transactional outbox, as the withdrawal code does. The default object
 * looks like a withdrawal; the end-to-end test with a sandbox withdrawal will not need this.
 */
export async function emitTestEvent(rt: Runtime, e: TestEvent): Promise<string> {
  return rt.store.transaction((trx) => emitEvent(trx, testEventInput(rt, e)));
}

/** Many events in one transaction (fast set-up for the crash test). */
export async function emitTestEvents(rt: Runtime, e: TestEvent, count: number): Promise<string[]> {
  return rt.store.transaction(async (trx) => {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(await emitEvent(trx, testEventInput(rt, { ...e, object: { ...sampleWithdrawal(e.app), order_no: `o${i}` } })));
    return ids;
  });
}

function testEventInput(rt: Runtime, e: TestEvent) {
  return {
    app: e.app,
    accountId: e.accountId,
    livemode: e.livemode ?? false,
    type: e.type ?? 'balance.withdrawal.succeeded',
    object: e.object ?? sampleWithdrawal(e.app),
    request: e.request ?? null,
    nowMs: rt.clock.nowMs(),
  };
}

export function sampleWithdrawal(app: string): Record<string, unknown> {
  return {
    id: '1701709011052380697', object: 'withdrawal', app, amount: 100, asset_transaction: null,
    balance_transaction: '601170921711000000000', channel: 'wx_pub', created: 1505992661, description: '用户提现',
    extra: { open_id: 'openid' }, failure_msg: null, fee: 0, livemode: false, metadata: {}, operation_url: null,
    order_no: '12345678', source: 'tr_Puxxxxxxxxxx', status: 'succeeded', time_canceled: null, time_succeeded: 1505992666,
    user: 'user_001', user_fee: 0, settle_account: null,
  };
}
