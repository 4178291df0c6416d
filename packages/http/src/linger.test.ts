import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { lingerOnClose } from './linger';

/** A server that refuses every request on its headers, as a body over the limit is. */
function refusingServer(lingerMs: number): Server {
  return createServer((req, res) => {
    lingerOnClose(req.socket, lingerMs);
    res.writeHead(413, { connection: 'close', 'content-length': '2' });
    res.end('no');
  });
}

describe('lingerOnClose', () => {
  let server: Server;
  let client: Socket;

  afterEach(async () => {
    client?.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('reads what a client still sends after the answer, then closes after lingerMs', async () => {
    server = refusingServer(300);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const closed = new Promise<number>((resolve) =>
      server.once('connection', (socket: Socket) =>
        socket.once('close', () => resolve(Date.now())),
      ),
    );
    client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let answer = '';
    let failure: Error | undefined;
    client.setEncoding('latin1');
    client.on('data', (chunk: string) => (answer += chunk));
    client.on('error', (err) => (failure = err));
    const ended = new Promise<number>((resolve) => client.once('end', () => resolve(Date.now())));
    client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n');
    const endedAt = await ended;
    // The answer and the server's FIN are in; the client goes on sending, and is not reset.
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 64; i++) {
      await new Promise<void>((resolve, reject) =>
        client.write(chunk, (err) => (err ? reject(err) : resolve())),
      );
    }
    // Then it stops without closing its side: the server closes once lingerMs have passed.
    const closedAt = await closed;
    expect(failure).toBeUndefined();
    expect(answer).toMatch(/^HTTP\/1\.1 413 [^]*\r\n\r\nno$/);
    // Not at once (without lingering it closes within a few ms), and not for ever.
    expect(closedAt - endedAt).toBeGreaterThanOrEqual(100);
    expect(closedAt - endedAt).toBeLessThan(5000);
  });
});
