import { MemoryEngine } from '@streamcast/engine';
import { parseCursor } from '@streamcast/protocol';
import { MemorySink, waitFor } from '@streamcast/testing';
import { Hub } from './hub';
import { DELIVERY_BUCKETS_S, DurationHistogram } from './latency';

/** A sink whose writes block the event loop for `slowMs` (a write that stalls the process). */
class SlowSink extends MemorySink {
  slowMs = 0;
  override write(chunk: Buffer | string): void {
    const until = Date.now() + this.slowMs;
    while (Date.now() < until) {
      // busy: the fan-out loop is held here, as by a slow syscall or a long GC pause
    }
    super.write(chunk);
  }
}

/** Observations at or below `le` seconds. */
function atOrBelow(h: DurationHistogram, le: number): number {
  let n = 0;
  h.bounds.forEach((bound, i) => {
    if (bound <= le) n += h.counts[i] as number;
  });
  return n;
}

describe('hub timings (sse_delivery_latency_seconds and friends)', () => {
  let engine: MemoryEngine;
  let hub: Hub;

  beforeEach(async () => {
    engine = new MemoryEngine();
    hub = new Hub(engine);
    await hub.start();
  });
  afterEach(async () => {
    await hub.close();
    await engine.close();
  });

  it('counts every delivery, live and catching up, exactly as sse_events_delivered_total', async () => {
    // 150 single-topic streams (more than one chunk of counting) and 3 multi-topic ones.
    const solo = Array.from({ length: 150 }, () => new MemorySink());
    const multi = Array.from({ length: 3 }, () => new MemorySink());
    await Promise.all(solo.map((s) => hub.subscribe(s, ['a'])));
    await Promise.all(multi.map((s) => hub.subscribe(s, ['a', 'b'])));
    for (let i = 0; i < 5; i++) await hub.publish('a', 'e', String(i));
    await hub.publish('b', 'e', '"b"');
    await Promise.all(solo.map((s) => s.waitForEvents(5)));
    await Promise.all(multi.map((s) => s.waitForEvents(6)));
    const live = hub.timings.live;
    expect(live.count).toBe(150 * 5 + 3 * 6);
    expect(live.count).toBe(hub.stats.delivered);
    expect(Array.from(live.counts).reduce((a, b) => a + b, 0)).toBe(live.count);

    // A stream resuming from the first event catches up on the other four from history.
    const first = solo[0]?.events[0]?.id as string;
    const resumed = new MemorySink();
    await hub.subscribe(resumed, ['a'], parseCursor(first));
    await resumed.waitForEvents(4);
    expect(hub.timings.catchup.count).toBe(4);
    expect(live.count + hub.timings.catchup.count).toBe(hub.stats.delivered);

    // Each event crossed pub/sub once and was stored by one publish.
    expect(hub.timings.pubsub.count).toBe(6);
    expect(hub.timings.publish.count).toBe(6);
    expect(hub.timings.read.count).toBeGreaterThan(0);
  });

  it('moves deliveries into higher buckets when writes stall the fan-out', async () => {
    const sinks = Array.from({ length: 4 }, () => new SlowSink());
    await Promise.all(sinks.map((s) => hub.subscribe(s, ['slow'])));
    await hub.publish('slow', 'e', '0');
    await Promise.all(sinks.map((s) => s.waitForEvents(1)));
    const live = hub.timings.live;
    // Unstalled, the four deliveries took well under 25 ms.
    expect(atOrBelow(live, 0.025)).toBe(4);

    for (const s of sinks) s.slowMs = 60;
    await hub.publish('slow', 'e', '1');
    await Promise.all(sinks.map((s) => s.waitForEvents(2)));
    expect(live.count).toBe(8);
    // Each write holds the loop 60 ms, so the last of them is handed over ≥ 240 ms after the
    // event was stored, and counted in a bucket past 0.1 s.
    expect(atOrBelow(live, 0.025)).toBe(4);
    expect(live.count - atOrBelow(live, 0.1)).toBeGreaterThanOrEqual(1);
    expect(live.sum).toBeGreaterThan(0.2);
  });

  it('counts closes by reason and queued bytes', async () => {
    const gone = new MemorySink();
    const stuck = new MemorySink();
    await hub.subscribe(gone, ['c']);
    await hub.subscribe(stuck, ['c']);
    stuck.stuckBytes = 1000;
    expect(hub.queuedBytes()).toBe(1000);
    // Past the bound (1 MiB by default), the next event drops the stream as too slow.
    stuck.stuckBytes = 2 * 1024 * 1024;
    await hub.publish('c', 'e', '1');
    await gone.waitForEvents(1);
    expect(hub.stats.closes.slow).toBe(1);
    expect(stuck.destroyed).toBe(true);
    const again = new MemorySink();
    await hub.subscribe(again, ['c']);
    gone.close();
    await waitFor(() => hub.stats.closes.client === 1, 'client close counted');
    await hub.drain(0);
    expect(hub.stats.closes.drain).toBe(1);
    expect(hub.stats.connectionsOpened).toBe(3);
    expect(hub.stats.closes.client + hub.stats.closes.slow + hub.stats.closes.drain).toBe(3);
    expect(hub.connectionCount).toBe(0);
  });

  it('clamps a negative duration (the gateway clock behind the store) to zero', () => {
    const h = new DurationHistogram(DELIVERY_BUCKETS_S);
    h.observe(-5, 3);
    expect(h.counts[0]).toBe(3);
    expect(h.sum).toBe(0);
  });
});
