import { once } from 'node:events';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ResponseSink } from './response-sink';

/**
 * ResponseSink writes event chunks straight to the socket when Node's own response fields
 * (chunkedEncoding, _headerSent, _header, outputData) say it may, and falls back on res.write
 * otherwise. Those fields are Node internals: this test runs on every Node that CI runs (20, 24,
 * 26: scripts/test-all.sh) and says, per version, whether the fast path is still taken.
 */
describe(`ResponseSink on Node ${process.version}`, () => {
  let server: Server;
  let url: string;
  let seen: { direct: boolean[]; headerReleased: boolean; socketWrites: number; resWrites: number };

  beforeAll(async () => {
    server = createServer((_req, res) => serve(res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function serve(res: ServerResponse): void {
    const sink = new ResponseSink(res);
    const socket = res.socket as Socket;
    const internals = sink as unknown as { direct(socket: Socket): boolean };
    seen = { direct: [], headerReleased: false, socketWrites: 0, resWrites: 0 };
    const socketWrite = socket.write.bind(socket);
    socket.write = ((...args: Parameters<Socket['write']>) => {
      seen.socketWrites++;
      return socketWrite(...args);
    }) as Socket['write'];
    const resWrite = res.write.bind(res);
    res.write = ((...args: Parameters<ServerResponse['write']>) => {
      seen.resWrites++;
      return resWrite(...args);
    }) as ServerResponse['write'];
    sink.begin();
    sink.write('retry: 1000\n\n');
    setImmediate(() => {
      seen.headerReleased =
        (res as unknown as { _header: unknown })._header === 'HTTP/1.1 200 OK\r\n\r\n';
      for (const n of [1, 2, 3]) {
        seen.direct.push(internals.direct(socket));
        seen.socketWrites = 0;
        seen.resWrites = 0;
        sink.write(Buffer.from(`id: ${n}\ndata: ${n}\n\n`));
        // One of the two paths took the event, never both.
        seen.direct.push(seen.socketWrites > 0 && seen.resWrites === 0);
      }
      setImmediate(() => sink.end());
    });
  }

  function get(): Promise<string> {
    return new Promise((resolve, reject) => {
      request(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
  }

  it('delivers every event intact, through either path', async () => {
    expect(await get()).toBe(
      'retry: 1000\n\nid: 1\ndata: 1\n\nid: 2\ndata: 2\n\nid: 3\ndata: 3\n\n',
    );
  });

  it(`takes the direct socket path and releases the header text (no fallback on ${process.version})`, async () => {
    await get();
    const fellBack = seen.direct.some((d) => !d) || !seen.headerReleased;
    if (fellBack) {
      // Stated, not hidden: response-sink.ts must be rechecked against this Node's internals.
      throw new Error(
        `ResponseSink falls back to res.write on Node ${process.version} ` +
          `(direct: ${JSON.stringify(seen.direct)}, header released: ${seen.headerReleased})`,
      );
    }
    expect(seen.direct).toEqual([true, true, true, true, true, true]);
    expect(seen.headerReleased).toBe(true);
  });
});
