import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { provideRedis, type TestRedis } from '@streamcast/testing';
import Redis from 'ioredis';
import { quitRedis } from './quit-redis';

describe('quitRedis: how a stopping gateway closes its Redis client', () => {
  let redis: TestRedis;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    redis = await provideRedis();
    // A proxy to that Redis that hangs up on QUIT without passing it on: the race a drained
    // gateway met once (its QUIT still in flight as the connection closed).
    server = createServer((socket) => {
      const upstream = connect(redis.port, '127.0.0.1');
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      upstream.on('data', (data) => socket.write(data));
      socket.on('data', (data) => {
        if (data.toString('latin1').toUpperCase().includes('QUIT')) {
          socket.destroy();
          upstream.destroy();
        } else {
          upstream.write(data);
        }
      });
      socket.on('close', () => upstream.destroy());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await redis.stop();
  });

  function connectToPeer(): Promise<Redis> {
    const client = new Redis({ port, host: '127.0.0.1' });
    client.on('error', () => {});
    return once(client, 'ready').then(() => client);
  }

  it('quits a real Redis, and a client already ended is left as it is', async () => {
    const client = new Redis(redis.url);
    await client.ping();
    const ended = once(client, 'end');
    await quitRedis(client);
    await ended; // QUIT answers OK, then Redis hangs up
    expect(client.status).toBe('end');
    await expect(quitRedis(client)).resolves.toBeUndefined();
  });

  it('takes a connection closed before QUIT was answered as closed, where quit() rejects', async () => {
    const bare = await connectToPeer();
    await expect(bare.quit()).rejects.toThrow('Connection is closed.');
    expect(bare.status).toBe('end');

    const client = await connectToPeer();
    await expect(quitRedis(client)).resolves.toBeUndefined();
    expect(client.status).toBe('end');
  });

  it('still fails on any other error', async () => {
    const failing = {
      status: 'ready',
      quit: () => Promise.reject(new Error('NOAUTH Authentication required.')),
    };
    await expect(quitRedis(failing)).rejects.toThrow('NOAUTH');
  });
});
