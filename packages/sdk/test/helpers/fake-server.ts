import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  /** The request-target exactly as it arrived. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Handler = (req: Seen, res: ServerResponse) => void | Promise<void>;

/**
 * A scriptable HTTP server for transport tests (timeouts, retries, status mapping, signing):
 * things a real tixian server will not do on demand.
 */
export class FakeServer {
  readonly seen: Seen[] = [];
  handler: Handler = (_req, res) => json(res, 200, {});
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeServer> {
    const ref: { self?: FakeServer } = {};
    const server = createServer(async (req, res) => {
      const self = ref.self!;
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      self.seen.push(seen);
      try {
        await self.handler(seen, res);
      } catch (err) {
        if (!res.headersSent) json(res, 599, { error: { type: 'api_error', message: String(err) } });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    ref.self = new FakeServer(server, `http://127.0.0.1:${port}`);
    return ref.self;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
}
