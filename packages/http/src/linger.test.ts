import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { lingerOnClose } from './linger';

/**
 * A server that refuses every request on its headers, as a body over the limit is; `answered`
 * gets the time its answer was finished, when Node then closes the connection (destroySoon).
 */
function refusingServer(lingerMs: number, answered: (at: number) => void): Server {
  return createServer((req, res) => {
    lingerOnClose(req.socket, lingerMs);
    res.once('finish', () => answered(Date.now()));
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
    let answeredAt = NaN;
    server = refusingServer(300, (at) => (answeredAt = at));
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
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n');
    await ended;
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
    // lingerMs after the answer, measured where the timer runs (without lingering the server
    // closes within a few ms of it); the slack is the event loop's cached clock, not the client.
    expect(closedAt - answeredAt).toBeGreaterThanOrEqual(250);
    expect(closedAt - answeredAt).toBeLessThan(5000);
  });
});
