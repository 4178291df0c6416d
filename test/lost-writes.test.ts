import { RedisEngine, redisClientOptions, topicKeys } from '@streamcast/engine-redis';
import { Hub } from '@streamcast/hub';
import { parseCursor, singleTopicCursor } from '@streamcast/protocol';
import {
  MemorySink,
  expectContiguousOrReset,
  sleep,
  testPrefix,
  testRedisUrl,
} from '@streamcast/testing';
import Redis from 'ioredis';

/**
 * Writes that Redis acknowledged and then lost: a failover to a replica that had not received
 * them, or a crash with `appendfsync everysec`. The topic keeps its epoch, but its history forks
 * before the newest entries some clients already have. Simulated here on one Redis by rewriting
 * the stream as the surviving side would have it, then publishing on.
 */
describe('history that lost acknowledged writes', () => {
  const prefix = testPrefix();
  let redis: Redis;
  let client: Redis;
  let engine: RedisEngine;
  let hub: Hub;
  const sinks: MemorySink[] = [];

  beforeEach(async () => {
    redis = new Redis(testRedisUrl());
    client = new Redis(testRedisUrl(), redisClientOptions());
    engine = new RedisEngine({ client, keyPrefix: prefix });
    hub = new Hub(engine, { heartbeatMs: 60_000, pageSize: 50 });
    await hub.start();
  });

  afterEach(async () => {
    for (const sink of sinks.splice(0)) sink.close();
    await hub.close();
    await engine.close();
    client.disconnect();
    redis.disconnect();
  });

  async function subscribe(topics: string[], cursor?: string): Promise<MemorySink> {
    const sink = new MemorySink();
    sinks.push(sink);
    await hub.subscribe(sink, [...topics].sort(), cursor ? parseCursor(cursor) : undefined);
    return sink;
  }

  const publish = (topic: string, seq: number) => hub.publish(topic, 'n', JSON.stringify({ seq }));

  /**
   * The stream as the surviving side has it: entries up to `keep`, nothing after, last = keep.
   * `rewind`: its id counter goes back to `keep` too, so new ids may sort before the lost ones
   * (a new master whose clock is behind); otherwise new ids come after them.
   */
  async function loseWritesAfter(topic: string, keep: string, rewind = false): Promise<void> {
    const keys = topicKeys(prefix, topic);
    const multi = redis.multi();
    if (rewind) {
      const survivors = (await redis.xrange(keys.log, '-', keep)) as Array<[string, string[]]>;
      multi.del(keys.log);
      for (const [id, fields] of survivors) multi.xadd(keys.log, id, ...fields);
    } else {
      const lost = (await redis.xrange(keys.log, `(${keep}`, '+')) as Array<[string, string[]]>;
      multi.xdel(keys.log, ...lost.map(([id]) => id));
    }
    await multi.hset(keys.meta, 'last', keep).exec();
  }

  async function streamIds(topic: string): Promise<string[]> {
    const entries = (await redis.xrange(topicKeys(prefix, topic).log, '-', '+')) as Array<
      [string, string[]]
    >;
    return entries.map(([id]) => id);
  }

  it('resets connected and resuming clients that saw lost writes; after the reset, only what is published after it', async () => {
    const live = await subscribe(['fork']);
    const multi = await subscribe(['fork', 'calm']);
    const cursors: string[] = [];
    for (let seq = 0; seq < 5; seq++) cursors.push(await publish('fork', seq));
    await hub.publish('calm', 'c', '"calm"');
    await live.waitForEvents(5);
    await multi.waitForEvents(6);
    const [, , id2] = await streamIds('fork');
    // Seq 3 and 4 were acknowledged, delivered, and then lost.
    await loseWritesAfter('fork', id2 as string);
    // The new master's ids come after the lost ones (clocks in step): 5 chains on 2, and its
    // live message shows the fork.
    const cursor5 = await publish('fork', 5);
    await live.waitForEvents(6);
    await multi.waitForEvents(7);
    for (const seq of [6, 7]) await publish('fork', seq);
    await live.waitForEvents(8);
    await multi.waitForEvents(9);
    await sleep(50);
    for (const sink of [live, multi]) {
      const report = expectContiguousOrReset(sink, { firstSeq: 0 });
      // 5 came in live after the fork: the reset covers what was lost (3, 4), then 5 follows.
      expect(report.seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(sink.resets()).toEqual([{ topics: ['fork'], reason: 'history-lost' }]);
    }
    // The reset puts the single-topic client at the fork: 2, the last entry both sides have.
    expect(live.events[5]).toMatchObject({ event: 'reset', id: cursors[2] });
    expect(live.events[6]).toMatchObject({ id: cursor5 });

    // Resuming: from a lost position, reset and then only what is published after it; from
    // before the fork, no reset and nothing missing.
    const fromLost = await subscribe(['fork'], cursors[4]);
    const fromBefore = await subscribe(['fork'], cursors[1]);
    const fromReset = await subscribe(['fork'], live.events[5]?.id);
    await publish('fork', 8);
    await fromLost.waitForEvents(2);
    await fromBefore.waitForEvents(5);
    await fromReset.waitForEvents(4);
    await sleep(50);
    expect(fromLost.resets()).toEqual([{ topics: ['fork'], reason: 'history-lost' }]);
    expect(fromLost.data()).toEqual([{ seq: 8 }]);
    expect(fromBefore.resets()).toEqual([]);
    expect(fromBefore.data()).toEqual([{ seq: 2 }, { seq: 5 }, { seq: 6 }, { seq: 7 }, { seq: 8 }]);
    // The reset's id places: a reconnect with it resets nothing.
    expect(fromReset.resets()).toEqual([]);
    expect(fromReset.data()).toEqual([{ seq: 5 }, { seq: 6 }, { seq: 7 }, { seq: 8 }]);
  });

  it('never delivers an entry twice or skips one silently when the new ids sort before the lost ones', async () => {
    const live = await subscribe(['skew']);
    for (let seq = 0; seq < 3; seq++) await publish('skew', seq);
    await live.waitForEvents(3);
    const keys = topicKeys(prefix, 'skew');
    const [epoch, id2] = (await redis.hmget(keys.meta, 'epoch', 'last')) as [string, string];
    // Seq 3 and 4 stored by a master whose clock was an hour ahead, delivered, then lost.
    let prev = id2;
    const lostCursors: string[] = [];
    for (const seq of [3, 4]) {
      const id = `${Date.now() + 3_600_000}-${seq}`;
      const data = JSON.stringify({ seq });
      await redis
        .multi()
        .xadd(keys.log, id, 'e', 'n', 'd', data, 'p', prev)
        .hset(keys.meta, 'last', id)
        .publish(keys.live, `${id}\n${prev}\n${epoch}\nn\n${data}`)
        .exec();
      lostCursors.push(singleTopicCursor('skew', { epoch, id }));
      prev = id;
    }
    await live.waitForEvents(5);
    await loseWritesAfter('skew', id2, true);
    // The survivor's clock is behind the lost ids: 5, 6, 7 get ids below them. 5's live message
    // shows it; after the reset, exactly what is published after it follows, in order, once.
    await publish('skew', 5);
    await live.waitForEvents(6);
    for (const seq of [6, 7]) await publish('skew', seq);
    await live.waitForEvents(8);
    await sleep(100);
    const report = expectContiguousOrReset(live, { firstSeq: 0 });
    expect(live.resets().map((r) => r.reason)).toEqual(['history-lost']);
    expect(report.seqs).toEqual([0, 1, 2, 3, 4, 6, 7]);

    const resumed = await subscribe(['skew'], lostCursors[1]);
    await resumed.waitForEvents(1);
    await publish('skew', 8);
    await resumed.waitForEvents(2);
    expect(resumed.resets()).toHaveLength(1);
    expect(resumed.data()).toEqual([{ seq: 8 }]);
  });
});
