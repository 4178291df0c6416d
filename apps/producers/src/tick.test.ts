import { MemoryEngine } from '@streamcast/engine';
import { validateEvent } from '@streamcast/events';
import { Hub } from '@streamcast/hub';
import { createPublisher, type Publisher } from '@streamcast/publisher';
import { waitFor } from '@streamcast/testing';
import { producerNames, startAll, startProducer, type Producer } from './index';
import { RecordingPublisher } from './test-support';

describe('tick producer', () => {
  let hub: Hub;
  let publisher: Publisher;
  let producer: Producer | undefined;

  beforeEach(async () => {
    hub = new Hub(new MemoryEngine());
    await hub.start();
    publisher = await createPublisher({ hub });
  });
  afterEach(async () => {
    await producer?.stop();
    producer = undefined;
    await publisher.close();
    await hub.close();
    await hub.engine.close();
  });

  it("publishes the seed's {timestamp, message} on events through an in-process hub", async () => {
    const recorder = new RecordingPublisher();
    const both: Publisher = {
      target: 'hub',
      publish: async (topic, event, data) => {
        await recorder.publish(topic, event, data);
        return publisher.publish(topic, event, data);
      },
      publishMany: (events) => recorder.publishMany(events),
      close: async () => {},
    };
    const started = Date.now();
    producer = startProducer('tick', both, { intervalMs: 20 }, undefined, { log: () => {} });
    await recorder.waitForCount(5, 'ticks');
    await producer.stop();
    expect(hub.stats.published).toBe(recorder.events.length);
    const ticks = recorder.events.map((e) => e.data as { timestamp: number; message: string });
    for (const e of recorder.events) {
      expect([e.topic, e.event]).toEqual(['events', 'message']);
      expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
    }
    for (const t of ticks) {
      expect(t.message).toBe('实时数据');
      expect(t.timestamp).toBeGreaterThanOrEqual(started);
      expect(t.timestamp).toBeLessThanOrEqual(Date.now());
    }
    // Timestamps never go backwards (the pace itself is not asserted: timing flakes under load).
    for (let i = 1; i < ticks.length; i++) {
      expect(ticks[i]?.timestamp).toBeGreaterThanOrEqual(ticks[i - 1]?.timestamp ?? 0);
    }
  });

  it('starts every producer with startAll, all publishing valid events into the hub', async () => {
    const recorder = new RecordingPublisher();
    const both: Publisher = {
      target: 'hub',
      publish: async (topic, event, data) => {
        const id = await publisher.publish(topic, event, data); // the real publisher validates too
        await recorder.publish(topic, event, data);
        return id;
      },
      publishMany: (events) => recorder.publishMany(events),
      close: async () => {},
    };
    producer = startAll(
      both,
      {
        stocks: { intervalMs: 20 },
        chat: { messageMs: 20, joinMs: 20, leaveMs: 30 },
        system: { intervalMs: 100 },
        sports: { minuteMs: 5 },
        social: { postMs: 30, likeMs: 20, commentMs: 20 },
        blog: { postMs: 30, updateMs: 20 },
        tick: { intervalMs: 20 },
      },
      { seed: 1, log: () => {} },
    );
    const families = [
      'events',
      'stocks/',
      'chat',
      'system/monitoring',
      'matches/',
      'social',
      'blog',
    ];
    const seen = () =>
      families.filter((f) =>
        recorder.events.some((e) => e.topic === f || (f.endsWith('/') && e.topic.startsWith(f))),
      );
    await waitFor(
      () => seen().length === families.length,
      () => `events of every producer (saw ${seen().join(', ')})`,
    );
    await producer.stop();
    const count = hub.stats.published;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(hub.stats.published).toBe(count); // stopped means stopped
    expect(producerNames).toHaveLength(7);
  });

  it('refuses a bad override before starting anything', () => {
    const recorder = new RecordingPublisher();
    expect(() => startAll(recorder, { sports: { minuteMs: '0' } })).toThrow(
      'sports: --minuteMs must be an integer 1-600000 (got "0")',
    );
    expect(() => startAll(recorder, { nope: {} } as never)).toThrow('unknown producer "nope"');
    expect(recorder.attempts).toBe(0);
  });
});
