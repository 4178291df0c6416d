import { createBroadcaster } from '@streamcast/broadcaster';
import { RedisProcess, SseClient, startGatewayProcess, testPrefix } from '@streamcast/testing';

/**
 * Redis refusing the credentials is a configuration error, not an outage: retrying cannot fix
 * it, so processes fail at start with Redis's own message instead of waiting for ever.
 */
describe('a Redis with a password', () => {
  const password = 'single-secret';
  let redis: RedisProcess;
  const prefix = testPrefix();

  beforeAll(async () => {
    redis = await RedisProcess.start({ args: ['--requirepass', password] });
  });

  afterAll(async () => {
    await redis?.stop();
  });

  const at = (auth: string) => `redis://${auth}127.0.0.1:${redis.port}`;

  it('the broadcaster rejects at once without the password or with a wrong one', async () => {
    const started = Date.now();
    await expect(createBroadcaster({ redisUrl: at(''), keyPrefix: prefix })).rejects.toThrow(
      /^NOAUTH/,
    );
    await expect(createBroadcaster({ redisUrl: at(':wrong@'), keyPrefix: prefix })).rejects.toThrow(
      /^WRONGPASS/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a gateway with a wrong password exits 1 naming WRONGPASS; with the right one it serves', async () => {
    await expect(
      startGatewayProcess({ REDIS_URL: at(':wrong@'), REDIS_PREFIX: prefix, PUBLIC_TOPICS: '*' }),
    ).rejects.toThrow(/exited with 1[\s\S]*WRONGPASS/);
    const gateway = await startGatewayProcess({
      REDIS_URL: at(`:${password}@`),
      REDIS_PREFIX: prefix,
      PUBLIC_TOPICS: '*',
    });
    const broadcaster = await createBroadcaster({
      redisUrl: at(`:${password}@`),
      keyPrefix: prefix,
    });
    try {
      const sse = await SseClient.open(`${gateway.url}/events?topic=pw`);
      try {
        expect(sse.status).toBe(200);
        await broadcaster.publish('pw', 'note', { n: 1 });
        const [event] = await sse.waitForEvents(1, 10_000, 'note');
        expect(JSON.parse(event!.data)).toEqual({ n: 1 });
      } finally {
        sse.close();
      }
    } finally {
      await broadcaster.close();
      await gateway.stop();
    }
  }, 60_000);
});
