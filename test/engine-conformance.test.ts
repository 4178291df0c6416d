import { MemoryEngine, type Engine, type RetentionOptions } from '@streamcast/engine';
import {
  RedisClusterEngine,
  RedisEngine,
  redisClientOptions,
  redisClusterOptions,
} from '@streamcast/engine-redis';
import { Hub, type HubOptions, type Tracing } from '@streamcast/hub';
import { normalizePrivate, parseCursor } from '@streamcast/protocol';
import {
  MemorySink,
  TestRedisCluster,
  collidingTopics,
  expectExactlyAfterResets,
  legacyCursor,
  sleep,
  storedSeqs,
  testPrefix,
  testRedisUrl,
  waitFor,
  withEpoch,
} from '@streamcast/testing';
import Redis, { Cluster } from 'ioredis';

/**
 * The delivery guarantees of API.md, checked the same way against every engine: the hub gives
 * them once, on top of each engine's publish / read / listen.
 */
interface EngineKind {
  name: string;
  make(retention: RetentionOptions): Promise<{ engine: Engine; close(): Promise<void> }>;
}

/** One real Redis Cluster (3 masters, 3 replicas) for the cluster engine, started on first use. */
let redisCluster: Promise<TestRedisCluster> | undefined;
afterAll(async () => {
  if (redisCluster) await (await redisCluster).stop();
}, 30_000);

const kinds: EngineKind[] = [
  {
    name: 'memory',
    make: async (retention) => {
      const engine = new MemoryEngine(retention);
      return { engine, close: () => engine.close() };
    },
  },
  {
    name: 'redis',
    make: async (retention) => {
      const client = new Redis(testRedisUrl(), redisClientOptions());
      const engine = new RedisEngine({ client, keyPrefix: testPrefix(), retention });
      return {
        engine,
        close: async () => {
          await engine.close();
          client.disconnect();
        },
      };
    },
  },
  {
    name: 'redis-cluster',
    make: async (retention) => {
      const cluster = await (redisCluster ??= TestRedisCluster.start());
      const client = new Cluster(cluster.startupNodes, redisClusterOptions());
      const engine = new RedisClusterEngine({ client, keyPrefix: testPrefix(), retention });
      return {
        engine,
        close: async () => {
          await engine.close();
          client.disconnect();
        },
      };
    },
  },
];

describe.each(kinds)('$name engine', (kind) => {
  let hub: Hub;
  let engine: Engine;
  let closeEngine: () => Promise<void>;
  const sinks: MemorySink[] = [];

  async function setUp(
    retention: RetentionOptions = { maxLen: 1000, maxAgeS: 86400 },
    options: Partial<HubOptions> = {},
  ) {
    const made = await kind.make(retention);
    engine = made.engine;
    closeEngine = made.close;
    hub = new Hub(engine, {
      heartbeatMs: 60_000,
      maxQueueBytes: 256 * 1024,
      pageSize: 50,
      ...options,
    });
    await hub.start();
  }

  async function subscribe(topics: string[], cursor?: string): Promise<MemorySink> {
    const sink = new MemorySink();
    sinks.push(sink);
    await hub.subscribe(
      sink,
      [...new Set(topics)].sort(),
      cursor ? parseCursor(cursor) : undefined,
    );
    return sink;
  }

  const publish = (topic: string, data: unknown, event = 'message') =>
    hub.publish(topic, event, JSON.stringify(data));

  afterEach(async () => {
    for (const sink of sinks.splice(0)) sink.close();
    await hub.close();
    await closeEngine();
  });

  it('delivers live events in publish order with the ids that publish returned', async () => {
    await setUp();
    const sink = await subscribe(['prices']);
    expect(sink.begun).toBe(true);
    expect(sink.retries).toEqual([3000]);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await publish('prices', { i }, 'tick'));
    await sink.waitForEvents(20);
    expect(sink.data()).toEqual([...Array(20).keys()].map((i) => ({ i })));
    expect(sink.events.map((e) => e.event)).toEqual(Array(20).fill('tick'));
    expect(sink.events.map((e) => e.id)).toEqual(ids);
  });

  it('resumes after a cursor with every later event exactly once, then continues live', async () => {
    await setUp();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await publish('feed', { i }));
    const sink = await subscribe(['feed'], ids[3]);
    await sink.waitForEvents(6);
    await publish('feed', { i: 10 });
    await sink.waitForEvents(7);
    await sleep(50);
    expect(sink.data()).toEqual([4, 5, 6, 7, 8, 9, 10].map((i) => ({ i })));
    expect(sink.resets()).toEqual([]);
  });

  it('hands over from history to live without gap or duplicate under continuous publishing', async () => {
    await setUp();
    let stop = false;
    let published = 0;
    const ids: string[] = [];
    const publisher = (async () => {
      while (!stop) {
        ids.push(await publish('busy', { seq: published }));
        published++;
        if (published % 20 === 0) await sleep(1);
      }
    })();
    await waitFor(() => published >= 100, '100 events published');
    const starts = [10, 40, 80];
    const resumed = await Promise.all(starts.map((n) => subscribe(['busy'], ids[n])));
    await sleep(200);
    stop = true;
    await publisher;
    for (const [k, sink] of resumed.entries()) {
      const first = (starts[k] as number) + 1;
      await sink.waitForEvents(published - first);
      await sleep(20);
      const seqs = sink.data<{ seq: number }>().map((d) => d.seq);
      expect(seqs).toEqual([...Array(published - first).keys()].map((i) => i + first));
    }
  });

  it('keeps per-topic order on a multi-topic stream and resumes every topic from one id', async () => {
    await setUp();
    const sink = await subscribe(['b', 'a']);
    for (let i = 0; i < 5; i++) {
      await publish('a', { t: 'a', i });
      await publish('b', { t: 'b', i });
    }
    await sink.waitForEvents(10);
    const cursor = sink.lastId as string;
    sink.close();
    for (let i = 5; i < 8; i++) {
      await publish('b', { t: 'b', i });
      await publish('a', { t: 'a', i });
    }
    const resumed = await subscribe(['a', 'b'], cursor);
    await resumed.waitForEvents(6);
    await sleep(50);
    const got = resumed.data<{ t: string; i: number }>();
    expect(got.filter((d) => d.t === 'a').map((d) => d.i)).toEqual([5, 6, 7]);
    expect(got.filter((d) => d.t === 'b').map((d) => d.i)).toEqual([5, 6, 7]);
    expect(resumed.resets()).toEqual([]);
  });

  it('starts topics the cursor does not cover live, and resumes the covered one', async () => {
    await setUp();
    const first = await publish('a', { n: 1 });
    await publish('a', { n: 2 });
    await publish('z', { n: 'old' });
    // A single-topic id names 'a': 'z' starts live, with no reset and no replay.
    const sink = await subscribe(['a', 'z'], first);
    await sink.waitForEvents(1);
    await publish('z', { n: 'new' });
    await sink.waitForEvents(2);
    await sleep(50);
    expect(sink.data()).toEqual([{ n: 2 }, { n: 'new' }]);
    expect(sink.resets()).toEqual([]);
  });

  describe('a cursor used on another topic set', () => {
    /** Three events on each of x, y, z; then the cursor of a connection to x and y. */
    async function cursorOfXY(): Promise<string> {
      for (let i = 0; i < 3; i++) for (const t of ['x', 'y', 'z']) await publish(t, { t, i }, 'n');
      const xy = await subscribe(['x', 'y']);
      await publish('x', { t: 'x', i: 3 }, 'n');
      await publish('y', { t: 'y', i: 3 }, 'n');
      await xy.waitForEvents(2);
      xy.close();
      return xy.lastId as string;
    }

    const byTopic = (sink: MemorySink) => {
      const out: Record<string, number[]> = {};
      for (const d of sink.data<{ t: string; i: number }>('n')) (out[d.t] ??= []).push(d.i);
      return out;
    };

    it.each<[string[], Record<string, number[]>]>([
      // x and y resume after 3 (4 from history, then 5 live); z, not covered, starts live: 5.
      [['x', 'z'], { x: [4, 5], z: [5] }],
      [['x'], { x: [4, 5] }],
      [['z'], { z: [5] }],
      [['x', 'y', 'z'], { x: [4, 5], y: [4, 5], z: [5] }],
      [['z', 'y', 'x'], { x: [4, 5], y: [4, 5], z: [5] }],
    ])('applies each position only to its own topic: on %j', async (topics, expected) => {
      await setUp();
      const cursor = await cursorOfXY();
      for (const t of ['x', 'y', 'z']) await publish(t, { t, i: 4 }, 'n');
      const sink = await subscribe(topics, cursor);
      for (const t of ['x', 'y', 'z']) await publish(t, { t, i: 5 }, 'n');
      const count = Object.values(expected).reduce((n, seqs) => n + seqs.length, 0);
      await sink.waitForEvents(count, undefined, 'n');
      await sleep(50);
      expect(byTopic(sink)).toEqual(expected);
      expect(sink.resets()).toEqual([]);
    });

    it('resets, rather than misplaces, topics whose fingerprints collide', async () => {
      await setUp();
      const [a, b] = collidingTopics('collide/');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(await publish(a, { t: a, i }, 'n'));
      for (let i = 0; i < 3; i++) await publish(b, { t: b, i }, 'n');
      // a's cursor cannot say whether it is a's or b's: both reset, then only what follows.
      const sink = await subscribe([a, b], ids[0]);
      await sink.waitForEvents(1);
      expect(sink.resets()).toEqual([{ topics: [a, b].sort(), reason: 'cursor-unknown' }]);
      await publish(a, { t: a, i: 3 }, 'n');
      await publish(b, { t: b, i: 3 }, 'n');
      await sink.waitForEvents(3);
      await sleep(50);
      expect(byTopic(sink)).toEqual({ [a]: [3], [b]: [3] });
      // On its own topic alone, the same cursor resumes exactly.
      const alone = await subscribe([a], ids[0]);
      await alone.waitForEvents(3);
      expect(alone.data()).toEqual([1, 2, 3].map((i) => ({ t: a, i })));
      expect(alone.resets()).toEqual([]);
    });

    it('places cursors of the previous format where they are unambiguous, and resets the rest', async () => {
      await setUp();
      const xy = await cursorOfXY();
      for (const t of ['x', 'y']) await publish(t, { t, i: 4 }, 'n');
      const single = await subscribe(['x'], legacyCursor(xy, ['x']));
      const same = await subscribe(['y', 'x'], legacyCursor(xy, ['x', 'y']));
      const more = await subscribe(['x', 'y', 'z'], legacyCursor(xy, ['x', 'y']));
      const fewer = await subscribe(['x'], legacyCursor(xy, ['x', 'y']));
      await single.waitForEvents(1);
      await same.waitForEvents(2);
      await more.waitForEvents(1);
      await fewer.waitForEvents(1);
      expect(single.data()).toEqual([{ t: 'x', i: 4 }]);
      expect(byTopic(same)).toEqual({ x: [4], y: [4] });
      expect([single, same].flatMap((s) => s.resets())).toEqual([]);
      expect(more.resets()).toEqual([{ topics: ['x', 'y', 'z'], reason: 'cursor-unknown' }]);
      expect(fewer.resets()).toEqual([{ topics: ['x'], reason: 'cursor-unknown' }]);
      await publish('x', { t: 'x', i: 5 }, 'n');
      await more.waitForEvents(2);
      await fewer.waitForEvents(2);
      await sleep(50);
      expect(more.data()).toEqual([{ t: 'x', i: 5 }]);
      expect(fewer.data()).toEqual([{ t: 'x', i: 5 }]);
    });
  });

  describe('after a reset: live from there, no replay', () => {
    /** Publishes {seq} to `topic` until stopped; the ids, by seq. */
    function keepPublishing(topic: string) {
      let running = true;
      const ids: string[] = [];
      const done = (async () => {
        while (running) {
          ids.push(await publish(topic, { seq: ids.length }, 'n'));
          if (ids.length % 5 === 0) await sleep(1);
        }
      })();
      return {
        ids,
        stop: async () => {
          running = false;
          await done;
          return ids;
        },
      };
    }

    /**
     * While publishing goes on: one reset, then exactly what was stored after it. A reconnection
     * with the reset's id, made while publishing goes on, resets nothing and gets the same events.
     */
    async function expectResetThenExactlyLater(topic: string, cursor: string, reason: string) {
      const producer = keepPublishing(topic);
      const published = (n: number) =>
        waitFor(() => producer.ids.length >= n, `${n} events published`);
      await published(20);
      const sink = await subscribe([topic], cursor);
      await published(producer.ids.length + 30);
      const again = await subscribe([topic], sink.events[0]?.id);
      await published(producer.ids.length + 30);
      const ids = await producer.stop();
      const last = (s: MemorySink) => s.data<{ seq: number }>('n').at(-1)?.seq;
      await waitFor(
        () => last(sink) === ids.length - 1 && last(again) === ids.length - 1,
        'the last event on both',
      );
      await sleep(50);
      expect(sink.events[0]?.event).toBe('reset');
      expect(sink.resets()).toEqual([{ topics: [topic], reason }]);
      expect(expectExactlyAfterResets(sink.events, topic, storedSeqs(ids, topic))).toBe(1);
      expect(again.resets()).toEqual([]);
      expect(again.data('n')).toEqual(sink.data('n'));
    }

    it('for a cursor older than what history keeps (trimmed)', async () => {
      await setUp({ maxLen: 200, maxAgeS: 0 });
      const first = await publish('trimmed', { seq: -1 }, 'n');
      for (let i = 0; i < 500; i++) await publish('trimmed', { seq: -1 }, 'n');
      await expectResetThenExactlyLater('trimmed', first, 'history-trimmed');
    });

    it('for a cursor of another deployment (its epoch unknown here)', async () => {
      await setUp();
      const real = await publish('foreign', { seq: -1 }, 'n');
      await expectResetThenExactlyLater('foreign', withEpoch(real), 'history-lost');
    });

    it('for a position ahead of the stream', async () => {
      await setUp();
      const real = await publish('ahead2', { seq: -1 }, 'n');
      await expectResetThenExactlyLater(
        'ahead2',
        real.replace(/\.[0-9a-z]+\.[0-9a-z]+$/, '.zzzzzzzz.0'),
        'cursor-unknown',
      );
    });
  });
  it('sends reset history-trimmed when the cursor is older than what history keeps', async () => {
    await setUp({ maxLen: 5, maxAgeS: 0 });
    const first = await publish('trim', { i: 0 });
    for (let i = 1; i < 400; i++) await publish('trim', { i });
    const sink = await subscribe(['trim'], first);
    await sink.waitForEvents(1);
    expect(sink.resets()).toEqual([{ topics: ['trim'], reason: 'history-trimmed' }]);
    // No partial replay: only what comes after the reset.
    await publish('trim', { i: 400 });
    await sink.waitForEvents(2);
    await sleep(50);
    expect(sink.data()).toEqual([{ i: 400 }]);
    // The reset's id is the connection's cursor: resuming from it does not reset again.
    const again = await subscribe(['trim'], sink.events[0]?.id);
    await again.waitForEvents(1);
    expect(again.resets()).toEqual([]);
    expect(again.data()).toEqual([{ i: 400 }]);
  });

  it('keeps exactly HISTORY_MAX_LEN events: a cursor just inside resumes, one just outside resets', async () => {
    await setUp({ maxLen: 5, maxAgeS: 0 });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push(await publish('bound', { i }));
    // Kept: events 2 to 6. After event 1, all of them; after event 0, event 1 is gone.
    const inside = await subscribe(['bound'], ids[1]);
    await inside.waitForEvents(5);
    await sleep(50);
    expect(inside.resets()).toEqual([]);
    expect(inside.data()).toEqual([2, 3, 4, 5, 6].map((i) => ({ i })));
    const outside = await subscribe(['bound'], ids[0]);
    await outside.waitForEvents(1);
    await sleep(50);
    expect(outside.resets()).toEqual([{ topics: ['bound'], reason: 'history-trimmed' }]);
    expect(outside.events).toHaveLength(1);
  });

  it('keeps no event older than HISTORY_MAX_AGE_S, even on a topic nobody publishes to since', async () => {
    await setUp({ maxLen: 1000, maxAgeS: 1 });
    const first = await publish('aging', { i: 0 });
    const second = await publish('aging', { i: 1 });
    await sleep(1200);
    // Both aged out: resuming after the first resets; after the second, nothing is owed.
    const late = await subscribe(['aging'], first);
    await late.waitForEvents(1);
    expect(late.resets()).toEqual([{ topics: ['aging'], reason: 'history-trimmed' }]);
    const current = await subscribe(['aging'], second);
    await publish('aging', { i: 2 });
    await current.waitForEvents(1);
    await sleep(50);
    expect(current.resets()).toEqual([]);
    expect(current.data()).toEqual([{ i: 2 }]);
  });

  it('sends reset cursor-unknown for a position ahead of the stream or another format', async () => {
    await setUp();
    const id = await publish('ahead', { i: 0 });
    const ahead = id.replace(/\.[0-9a-z]+\.[0-9a-z]+$/, '.zzzzzzzz.0');
    const sink = await subscribe(['ahead'], ahead);
    const other = await subscribe(['ahead'], '9~whatever');
    await sink.waitForEvents(1);
    await other.waitForEvents(1);
    expect(sink.resets()).toEqual([{ topics: ['ahead'], reason: 'cursor-unknown' }]);
    expect(other.resets()).toEqual([{ topics: ['ahead'], reason: 'cursor-unknown' }]);
    await publish('ahead', { i: 1 });
    await sink.waitForEvents(2);
    expect(sink.data()).toEqual([{ i: 1 }]);
  });

  it("carries a publish's trace context to its live delivery and into history", async () => {
    const traceparent = `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`;
    const linked: Array<[string, string, unknown]> = [];
    const tracing: Tracing = {
      // Every other publish traced, as with a sampler: the untraced ones carry nothing.
      inSpan: (_name, attributes, work) =>
        work(String(attributes['streamcast.event']) === 'traced' ? traceparent : undefined),
      linked: (name, tp, attributes) => {
        linked.push([name, tp, attributes['streamcast.streams']]);
      },
    };
    await setUp(undefined, { tracing });
    const sinks = [await subscribe(['traced']), await subscribe(['traced', 'other'])];
    await publish('traced', { n: 1 }, 'traced');
    await publish('traced', { n: 2 }, 'plain');
    await publish('traced', { n: 3 }, 'traced');
    // Private fields and a trace context together (both travel in the live message).
    const data = { n: 4, secret: 's' };
    const privateFields = normalizePrivate({ fields: ['secret'], claim: 'staff' }, data);
    await hub.publish('traced', 'traced', JSON.stringify(data), privateFields);
    await Promise.all(sinks.map((s) => s.waitForEvents(4)));
    // One delivery span per traced event (for both streams), linked to the publish.
    expect(linked).toEqual(Array(3).fill(['streamcast.deliver', traceparent, 2]));
    const page = await engine.read('traced', '0-0', 10);
    expect(page.entries.map((e) => [e.event, e.trace, e.private])).toEqual([
      ['traced', traceparent, undefined],
      ['plain', undefined, undefined],
      ['traced', traceparent, undefined],
      ['traced', traceparent, privateFields],
    ]);
    expect(sinks[0]?.data()).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
  });

  it('carries data with newlines and unicode unchanged', async () => {
    await setUp();
    const sink = await subscribe(['text']);
    const data = {
      text: 'line one\nline two\r\nline three\rend',
      emoji: '😀 ünïcödé 中文',
      nul: '\u0000',
    };
    await publish('text', data);
    await publish('text', 'plain string');
    await publish('text', null);
    await sink.waitForEvents(3);
    expect(sink.data()).toEqual([data, 'plain string', null]);
  });

  it('leaves nothing behind after 1,000 connect/disconnect cycles', async () => {
    await setUp();
    for (let round = 0; round < 100; round++) {
      const batch = await Promise.all(
        [...Array(10).keys()].map((i) => subscribe([`churn-${i % 3}`, 'churn-shared'])),
      );
      if (round % 10 === 0) await publish('churn-shared', { round });
      for (const sink of batch) sink.close();
      sinks.length = 0;
    }
    await waitFor(() => hub.connectionCount === 0 && hub.channelCount === 0, 'hub to be empty');
    if (engine instanceof RedisEngine || engine instanceof RedisClusterEngine) {
      expect(engine.listenedCount).toBe(0);
    }
  });

  it('cuts off a consumer that stops reading, and leaves the others alone', async () => {
    await setUp();
    const slow = await subscribe(['firehose']);
    const fast = await subscribe(['firehose']);
    await publish('firehose', { i: -1 });
    await slow.waitForEvents(1);
    slow.stuckBytes = 1; // from now on nothing it is sent leaves its queue
    const big = 'x'.repeat(4096);
    for (let i = 0; i < 100; i++) await publish('firehose', { i, big });
    await fast.waitForEvents(101);
    expect(slow.destroyed).toBe(true);
    expect(hub.stats.slowDisconnects).toBe(1);
    expect(hub.connectionCount).toBe(1);
    // It resumes losslessly from the last id it did receive.
    const resumed = await subscribe(['firehose'], slow.lastId);
    await resumed.waitForEvents(100);
    expect(resumed.data<{ i: number }>().map((d) => d.i)).toEqual([...Array(100).keys()]);
  });
});
