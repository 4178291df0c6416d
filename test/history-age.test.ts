import { RedisEngine, redisClientOptions, topicKeys } from '@streamcast/engine-redis';
import { sleep, testPrefix, testRedisUrl } from '@streamcast/testing';
import Redis from 'ioredis';

/**
 * HISTORY_MAX_AGE_S on a real Redis: the publish script trims a topic's history by age on the
 * first event of each second (publish-3.lua), from the new entry's time. MINID ~ removes whole
 * stream nodes (100 entries by default) once all their entries are older than the bound.
 */
describe('history trimmed by age (Redis)', () => {
  let client: Redis;
  let engine: RedisEngine;
  const prefix = testPrefix();

  beforeAll(async () => {
    client = new Redis(testRedisUrl(), redisClientOptions());
    engine = new RedisEngine({
      client,
      keyPrefix: prefix,
      retention: { maxLen: 100_000, maxAgeS: 1 },
    });
    await engine.start();
  });

  afterAll(async () => {
    await engine.close();
    client.disconnect();
  });

  it('drops the entries older than the bound, never the newest', async () => {
    const topic = 'aged';
    const { log } = topicKeys(prefix, topic);
    for (let i = 0; i < 150; i++) await engine.publish(topic, 'n', JSON.stringify({ i }));
    expect(await client.xlen(log)).toBe(150);
    // Older than the bound by the time of the next second's first event.
    await sleep(2100);
    const { id } = await engine.publish(topic, 'n', JSON.stringify({ i: 150 }));
    const left = await client.xrange(log, '-', '+');
    // The first node (entries 0-99) is gone; the rest, with the newest, is there.
    expect(left.length).toBe(51);
    expect(left.map(([, fields]) => JSON.parse(fields[3] as string).i)).toEqual(
      Array.from({ length: 51 }, (_, k) => 100 + k),
    );
    expect(left[left.length - 1]?.[0]).toBe(id);
  });
});
