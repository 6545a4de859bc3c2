import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postOnce } from '../src/webhooks/post.ts';
import { closedPort } from './helpers/receiver.ts';

/**
 * One webhook POST (webhooks/post.ts): the status decides, the answer's first bytes are kept, a
 * long answer is drained up to a bound and beyond it the connection is closed, and the timeout or
 * an abort (a stop) ends the try with its reason, before or after the headers.
 */
describe('postOnce', () => {
  const KEEP = 16;
  const DRAIN = 1024;
  let server: http.Server;
  let base: string;
  const sockets = new Set<Socket>();
  const urls: string[] = [];
  /** Per path: what the receiver does with the request. */
  const routes: Record<string, (res: http.ServerResponse) => void> = {
    '/ok': (res) => res.writeHead(200).end('fine, thanks'),
    '/nul': (res) => res.writeHead(200).end('a\u0000b'),
    '/within-drain': (res) => res.writeHead(200).end('y'.repeat(KEEP + DRAIN - 100)),
    '/too-long': (res) => {
      res.writeHead(200);
      // Far more than the bound, written as the client reads it: it must give up and close.
      const chunk = 'z'.repeat(16 * 1024);
      let left = 256;
      const more = () => {
        while (left-- > 0) if (!res.write(chunk)) return void res.once('drain', more);
        res.end();
      };
      more();
    },
    '/stall-after-headers': (res) => {
      res.writeHead(202);
      res.write('partial');
    },
    '/hang': () => {},
    '/redirect': (res) => res.writeHead(302, { location: '/ok' }).end(),
  };
  const agent = new Agent({ keepAliveTimeout: 10_000 });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      urls.push(req.url ?? '');
      req.resume();
      req.on('end', () => routes[req.url ?? '']!(res));
    });
    server.on('connection', (s) => sockets.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await agent.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const start = (path: string, timeoutMs = 10_000, to = base) =>
    postOnce(agent, new URL(to + path), { 'content-type': 'application/json' }, '{"id":"evt_1"}', { timeoutMs, keepBytes: KEEP, drainBytes: DRAIN });
  const post = (path: string, timeoutMs?: number, to?: string) => start(path, timeoutMs, to).answer;

  it('answers with the status, the first bytes of the body and no error', async () => {
    expect(await post('/ok')).toEqual({ statusCode: 200, body: 'fine, thanks'.slice(0, KEEP), error: null });
    expect(await post('/nul')).toEqual({ statusCode: 200, body: 'a\uFFFDb', error: null });
  });

  it('does not follow a redirect: a 3xx is the answer', async () => {
    expect(await post('/redirect')).toMatchObject({ statusCode: 302, error: null });
  });

  it('reads an answer within the drain bound to its end and reuses the connection; beyond it, closes the connection', async () => {
    await post('/ok');
    const before = sockets.size;
    expect(await post('/within-drain')).toEqual({ statusCode: 200, body: 'y'.repeat(KEEP), error: null });
    expect(await post('/ok')).toMatchObject({ statusCode: 200 });
    expect(sockets.size).toBe(before); // the same kept-alive connection throughout

    expect(await post('/too-long')).toEqual({ statusCode: 200, body: 'z'.repeat(KEEP), error: null });
    expect(await post('/ok')).toMatchObject({ statusCode: 200 });
    expect(sockets.size).toBe(before + 1); // the long answer's connection was closed, not drained
  });

  it('a timeout before the headers gives no status; after them, the status with the error', async () => {
    const hung = await post('/hang', 200);
    expect(hung).toMatchObject({ statusCode: null, body: null });
    expect((hung.error as Error).name).toBe('TimeoutError');
    const stalled = await post('/stall-after-headers', 200);
    expect(stalled).toMatchObject({ statusCode: 202, body: null });
    expect((stalled.error as Error).name).toBe('TimeoutError');
  });

  it('an abort ends the try with its reason, and a refused connection is reported', async () => {
    const stopping = new Error('stopping');
    const hung = start('/hang');
    await vi.waitFor(() => expect(urls.at(-1)).toBe('/hang'));
    hung.abort(stopping);
    expect(await hung.answer).toEqual({ statusCode: null, body: null, error: stopping });
    const refused = await post('/hook', undefined, `http://127.0.0.1:${await closedPort()}`);
    expect(refused).toMatchObject({ statusCode: null, body: null });
    expect(String((refused.error as { code?: string }).code)).toBe('ECONNREFUSED');
  });

});
