import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { EventEmitter, once } from 'node:events';

/** A fresh 2048-bit RSA key pair in PEM (PKCS#8 private, SPKI public). */
export function rsaKeyPair(): { privateKey: string; publicKey: string } {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

/**
 * What the fake payout gateways share: a node:http server on 127.0.0.1 (a free port) whose open
 * connections close() cuts, and the debits counted per order, so tests can prove "paid once".
 */
export abstract class FakeGateway extends EventEmitter {
  /** Debits per order: a value above 1 means an order was paid twice. */
  readonly debits = new Map<string, number>();
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return this;
  }

  /** `http://127.0.0.1:<port>` (after start). */
  protected get origin(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The orders paid more than once (must always be empty). */
  doublePaid(): string[] {
    return [...this.debits].filter(([, n]) => n > 1).map(([k]) => k);
  }
}
