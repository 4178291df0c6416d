import { MemoryEngine } from '@streamcast/engine';
import { parseCursor } from '@streamcast/protocol';
import { MemorySink } from '@streamcast/testing';
import { Hub } from './hub';

/**
 * A live channel places new and resuming streams from memory (its recent events), reading
 * history only for positions it does not hold; either way a stream gets the same events.
 */
describe('placing streams from the channel', () => {
  let engine: MemoryEngine;
  let reads: number;
  let hub: Hub;

  beforeEach(async () => {
    engine = new MemoryEngine({ maxLen: 10_000, maxAgeS: 0 });
    const read = engine.read.bind(engine);
    reads = 0;
    engine.read = (...args) => {
      reads++;
      return read(...args);
    };
    hub = new Hub(engine);
    await hub.start();
  });

  afterEach(async () => {
    await hub.close();
  });

  async function publishMany(topic: string, count: number, from = 0): Promise<string[]> {
    const ids: string[] = [];
    for (let i = from; i < from + count; i++)
      ids.push(await hub.publish(topic, 'n', JSON.stringify({ i })));
    return ids;
  }

  it('resumes from recent events without reading history, and from history beyond them', async () => {
    const holder = new MemorySink();
    await hub.subscribe(holder, ['t']);
    const ids = await publishMany('t', 300);
    await holder.waitForEvents(300);

    reads = 0;
    const fresh = new MemorySink();
    await hub.subscribe(fresh, ['t']);
    const near = new MemorySink();
    await hub.subscribe(near, ['t'], parseCursor(ids[250] as string));
    expect(reads).toBe(0);
    expect(near.data()).toEqual(Array.from({ length: 49 }, (_, k) => ({ i: 251 + k })));
    expect(fresh.events.filter((e) => e.event === 'n')).toEqual([]);

    // Older than the 128 events kept: read from history, same result.
    const far = new MemorySink();
    await hub.subscribe(far, ['t'], parseCursor(ids[10] as string));
    expect(reads).toBeGreaterThan(0);
    expect(far.data()).toEqual(Array.from({ length: 289 }, (_, k) => ({ i: 11 + k })));

    // All of them go on live, exactly once.
    await publishMany('t', 2, 300);
    await fresh.waitForEvents(2);
    await far.waitForEvents(291);
    expect(fresh.data()).toEqual([{ i: 300 }, { i: 301 }]);
    expect(near.data().slice(-3)).toEqual([{ i: 299 }, { i: 300 }, { i: 301 }]);
    expect(far.data()).toHaveLength(291);
  });

  it('gives single-topic streams resumed from memory the frames live streams got, byte for byte', async () => {
    const holder = new MemorySink();
    await hub.subscribe(holder, ['t']);
    const before = holder.raw.length;
    const ids = await publishMany('t', 20);
    await holder.waitForEvents(20);
    const live = holder.raw.slice(before);
    reads = 0;

    // Several streams resuming after the same event (one frame per event serves them all), and
    // one after another: each gets the live bytes from there on, and continues from them.
    const tail = live.slice(live.indexOf(`id: ${ids[5] as string}\n`));
    const resumed = [new MemorySink(), new MemorySink()];
    for (const sink of resumed) await hub.subscribe(sink, ['t'], parseCursor(ids[4] as string));
    const later = new MemorySink();
    await hub.subscribe(later, ['t'], parseCursor(ids[14] as string));
    expect(reads).toBe(0);
    for (const sink of resumed) expect(sink.raw.endsWith(tail)).toBe(true);
    expect(later.raw.endsWith(live.slice(live.indexOf(`id: ${ids[15] as string}\n`)))).toBe(true);

    const all = [...resumed, later];
    const counts = all.map((sink) => sink.events.length);
    await publishMany('t', 1, 20);
    for (const [k, sink] of all.entries()) await sink.waitForEvents((counts[k] as number) + 1);
    const last = holder.events[holder.events.length - 1];
    for (const sink of all) {
      expect(sink.events[sink.events.length - 1]).toEqual(last);
    }
  });

  it('learns from history that ends where its memory begins', async () => {
    const ids = await publishMany('u', 50);
    // The channel starts after those events: it holds none of them.
    const first = new MemorySink();
    reads = 0;
    await hub.subscribe(first, ['u'], parseCursor(ids[20] as string));
    const readsForFirst = reads;
    expect(readsForFirst).toBeGreaterThan(0);
    expect(first.data()).toHaveLength(29);
    // The same position again, and a later one: from memory now.
    const second = new MemorySink();
    const third = new MemorySink();
    await hub.subscribe(second, ['u'], parseCursor(ids[20] as string));
    await hub.subscribe(third, ['u'], parseCursor(ids[40] as string));
    expect(reads).toBe(readsForFirst);
    expect(second.data()).toEqual(first.data());
    expect(third.data()).toEqual(first.data().slice(20));
  });

  it('keeps no more than history does: by count and by age', async () => {
    const short = new MemoryEngine({ maxLen: 20, maxAgeS: 1 });
    const small = new Hub(short);
    await small.start();
    try {
      const holder = new MemorySink();
      await small.subscribe(holder, ['v']);
      const ids: string[] = [];
      for (let i = 0; i < 100; i++) ids.push(await small.publish('v', 'n', JSON.stringify({ i })));
      await holder.waitForEvents(100);
      // ids[10] is older than the 20 kept: a reset, as a read of history says.
      const trimmed = new MemorySink();
      await small.subscribe(trimmed, ['v'], parseCursor(ids[10] as string));
      expect(trimmed.resets()).toEqual([{ topics: ['v'], reason: 'history-trimmed' }]);
      const kept = new MemorySink();
      await small.subscribe(kept, ['v'], parseCursor(ids[85] as string));
      expect(kept.resets()).toEqual([]);
      expect(kept.data()).toHaveLength(14);
      // Older than maxAgeS: history dropped them at the next publish, memory too.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await small.publish('v', 'n', JSON.stringify({ i: 100 }));
      await holder.waitForEvents(101);
      const aged = new MemorySink();
      await small.subscribe(aged, ['v'], parseCursor(ids[95] as string));
      expect(aged.resets()).toEqual([{ topics: ['v'], reason: 'history-trimmed' }]);
    } finally {
      await small.close();
    }
  });
});
