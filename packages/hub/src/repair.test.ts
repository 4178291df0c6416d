import type {
  Engine,
  EngineHandlers,
  HistoryPage,
  PublishResult,
  StoredEvent,
} from '@streamcast/engine';
import { ZERO_ID, compareIds, singleTopicCursor, type StreamId } from '@streamcast/protocol';
import { MemorySink, waitFor } from '@streamcast/testing';
import { Hub } from './hub';

/**
 * An engine whose link, reads and history the test steers: a failover that keeps only part of
 * what was acknowledged, and a first read after the link's return that fails (the command
 * connection is not back yet), as the Redis engine sees it after a Sentinel failover.
 */
class SteeredEngine implements Engine {
  readonly kind = 'redis' as const;
  readonly retention = { maxLen: 1000, maxAgeS: 0 };
  readonly epoch = 'steered';
  log: StoredEvent[] = [];
  /** The next this many reads fail. */
  failingReads = 0;
  live = true;
  private handlers: EngineHandlers | undefined;
  private ms = 1_700_000_000_000;

  setHandlers(handlers: EngineHandlers): void {
    this.handlers = handlers;
  }
  async start(): Promise<void> {}
  async publish(topic: string, event: string, data: string): Promise<PublishResult> {
    const prev = this.log.at(-1)?.id ?? ZERO_ID;
    const stored: StoredEvent = {
      topic,
      epoch: this.epoch,
      id: `${this.ms++}-0`,
      prev,
      event,
      data,
    };
    this.log.push(stored);
    if (this.live) queueMicrotask(() => this.handlers?.message(stored));
    return { epoch: this.epoch, id: stored.id };
  }
  async read(_topic: string, after: StreamId | null, limit: number): Promise<HistoryPage> {
    if (this.failingReads > 0) {
      this.failingReads--;
      throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
    }
    const entries =
      after === null ? [] : this.log.filter((e) => compareIds(e.id, after) > 0).slice(0, limit);
    return { epoch: this.epoch, lastId: this.log.at(-1)?.id ?? ZERO_ID, entries };
  }
  async listen(): Promise<void> {}
  async unlisten(): Promise<void> {}
  isReady(): boolean {
    return true;
  }
  async close(): Promise<void> {}

  linkDown(): void {
    this.live = false;
    this.handlers?.linkDown('test');
  }
  linkUp(): void {
    this.live = true;
    this.handlers?.linkUp();
  }
}

describe('repairing a live channel after the link returns', () => {
  let engine: SteeredEngine;
  let hub: Hub;

  beforeEach(async () => {
    engine = new SteeredEngine();
    hub = new Hub(engine);
    await hub.start();
  });

  afterEach(async () => {
    await hub.close();
  });

  const publish = async (from: number, to: number) => {
    for (let seq = from; seq < to; seq++) await hub.publish('t', 'n', JSON.stringify({ seq }));
  };

  it.each([0, 2])(
    'resets only over the writes a failover lost, then delivers what came in live while history was unreadable (%i failed reads)',
    async (failingReads) => {
      const sink = new MemorySink();
      await hub.subscribe(sink, ['t']);
      await publish(0, 10);
      await sink.waitForEvents(10);

      // The failover keeps seqs 0-4; 5-9 were acknowledged and delivered, then lost.
      engine.linkDown();
      engine.log = engine.log.slice(0, 5);
      const forkPoint = engine.log[4] as StoredEvent;
      engine.failingReads = failingReads;
      engine.linkUp();
      // Published on the new master while the channel's reads fail: they arrive live, buffered.
      await publish(10, 20);

      await waitFor(() => sink.data<{ seq: number }>('n').at(-1)?.seq === 19, 'seq 19', 10_000);
      expect(sink.resets()).toEqual([{ topics: ['t'], reason: 'history-lost' }]);
      const reset = sink.events.findIndex((e) => e.event === 'reset');
      expect(sink.events[reset]?.id).toBe(
        singleTopicCursor('t', { epoch: engine.epoch, id: forkPoint.id }),
      );
      expect(sink.data<{ seq: number }>('n').map((d) => d.seq)).toEqual([...Array(20).keys()]);
      expect(reset).toBe(10);
      // Each later event's id is the cursor of what the new history holds.
      expect(sink.events.slice(reset + 1).map((e) => e.id)).toEqual(
        engine.log.slice(5).map((e) => singleTopicCursor('t', { epoch: e.epoch, id: e.id })),
      );
    },
  );
});
