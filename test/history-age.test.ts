import { RedisEngine, redisClientOptions, topicKeys } from '@streamcast/engine-redis';
import { sleep, testPrefix, testRedisUrl } from '@streamcast/testing';
import Redis from 'ioredis';

/**
 * HISTORY_MAX_AGE_S on a real Redis: the publish script trims a topic's history by age on the
 * first event of each second (publish-3.lua), from the new entry's time, and the read script
 * trims it before it reads (read-3.lua), so a topic nobody publishes to keeps nothing older.
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
    // Every older entry is gone; the newest is there.
    expect(await client.xrange(log, '-', '+')).toEqual([[id, expect.any(Array)]]);
  });

  it('keeps nothing older than the bound for a reader of a topic nobody publishes to', async () => {
    const topic = 'quiet';
    const { log } = topicKeys(prefix, topic);
    const first = await engine.publish(topic, 'n', JSON.stringify({ i: 0 }));
    const second = await engine.publish(topic, 'n', JSON.stringify({ i: 1 }));
    expect((await engine.read(topic, first.id, 10)).entries.map((e) => e.id)).toEqual([second.id]);
    await sleep(1100);
    // Aged out with no publish since: the reader finds none, and the head still says where
    // the topic is (so a cursor at `first` is judged trimmed, one at `second` caught up).
    const page = await engine.read(topic, first.id, 10);
    expect(page.entries).toEqual([]);
    expect(page.lastId).toBe(second.id);
    expect(await client.xlen(log)).toBe(0);
  });
});
