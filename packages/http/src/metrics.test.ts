import { openSync, closeSync } from 'node:fs';
import { MemoryEngine } from '@streamcast/engine';
import { Hub } from '@streamcast/hub';
import { MemorySink } from '@streamcast/testing';
import { createMetrics } from './metrics';

describe('/metrics label cardinality', () => {
  let engine: MemoryEngine;
  let hub: Hub;
  beforeEach(async () => {
    engine = new MemoryEngine();
    hub = new Hub(engine);
    await hub.start();
    // 1 stream on a, 3 on b, 2 on c, and one stream on both a and c.
    for (const topics of [['a'], ['b'], ['b'], ['b'], ['c'], ['c'], ['a', 'c']]) {
      await hub.subscribe(new MemorySink(), topics);
    }
  });
  afterEach(async () => {
    await hub.close();
    await engine.close();
  });

  it('has no topic label by default, whatever the topics', async () => {
    const text = await createMetrics(hub).metrics();
    expect(text).not.toMatch(/topic=/);
    expect(text).toMatch(/^sse_connections 7$/m);
  });

  it('gives streams per topic for the busiest N topics only, when opted in', async () => {
    const text = await createMetrics(hub, undefined, {}, 2).metrics();
    const series = [...text.matchAll(/^sse_topic_streams\{topic="([^"]+)"\} (\d+)$/gm)].map((m) => [
      m[1],
      Number(m[2]),
    ]);
    expect(series.sort()).toEqual([
      ['b', 3],
      ['c', 3],
    ]);
    // Chosen again at each scrape: a topic that gains streams enters, one that loses them leaves.
    for (let i = 0; i < 3; i++) await hub.subscribe(new MemorySink(), ['a']);
    const again = await createMetrics(hub, undefined, {}, 1).metrics();
    expect(again).toMatch(/^sse_topic_streams\{topic="a"\} 5$/m);
    expect(again.match(/^sse_topic_streams\{/gm)).toHaveLength(1);
  });
});

describe('/metrics cost per scrape', () => {
  it("leaves out prom-client's per-handle scans and still counts open file descriptors", async () => {
    const engine = new MemoryEngine();
    const hub = new Hub(engine);
    await hub.start();
    try {
      const registry = createMetrics(hub);
      const openFds = async () => {
        const text = await registry.metrics();
        expect(text).not.toMatch(/^nodejs_active_(handles|resources)/m);
        expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
        return Number(/^process_open_fds (\d+)$/m.exec(text)?.[1]);
      };
      const before = await openFds();
      expect(before).toBeGreaterThan(2);
      const fds = Array.from({ length: 5 }, () => openSync(__filename, 'r'));
      try {
        expect(await openFds()).toBeGreaterThanOrEqual(before + 5);
      } finally {
        for (const fd of fds) closeSync(fd);
      }
    } finally {
      await hub.close();
      await engine.close();
    }
  });
});
