import { createPublisher, type Publisher } from '@streamcast/publisher';
import {
  SseClient,
  checkContiguousOrReset,
  readMetric,
  startGatewayProcess,
  startProducerLoop,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
  type SseEvent,
} from '@streamcast/testing';
import { EventSource } from 'eventsource';

/**
 * STREAM_MAX_LIFETIME_S: a stream is closed with a short `retry:` after at most its lifetime
 * (at a random point of its last fifth); the client resumes from its cursor with nothing lost
 * and nothing twice, across several lifetimes in a row.
 */
describe('stream lifetime', () => {
  const LIFETIME_S = 2;
  let gateway: GatewayProcess;
  let publisher: Publisher;
  const prefix = testPrefix();

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      STREAM_MAX_LIFETIME_S: String(LIFETIME_S),
    });
    publisher = await createPublisher({ redisUrl: testRedisUrl(), keyPrefix: prefix });
  });

  afterAll(async () => {
    await publisher?.close();
    await gateway?.stop();
  });

  it('closes a stream within its lifetime, with a short retry', async () => {
    const client = await SseClient.open(`${gateway.url}/events?topic=life-once`);
    const opened = Date.now();
    await client.waitForEnd(LIFETIME_S * 1000 + 3000);
    const lived = Date.now() - opened;
    expect(lived).toBeGreaterThanOrEqual(LIFETIME_S * 800 - 100);
    expect(lived).toBeLessThan(LIFETIME_S * 1000 + 1500);
    expect(client.retries[0]).toBe(3000);
    const last = client.retries.at(-1) as number;
    expect(last).toBeGreaterThanOrEqual(100);
    expect(last).toBeLessThan(1000);
  });

  it('resumes across several lifetimes with no loss and no duplicate', async () => {
    const topic = 'life-stream';
    const clients = Array.from({ length: 5 }, () => {
      const source = new EventSource(`${gateway.url}/events?topic=${topic}`);
      const events: SseEvent[] = [];
      let opens = 0;
      source.addEventListener('open', () => opens++);
      for (const type of ['n', 'reset']) {
        source.addEventListener(type, (e) =>
          events.push({ id: e.lastEventId, event: type, data: e.data }),
        );
      }
      return { source, events, opens: () => opens };
    });
    await waitFor(() => clients.every((c) => c.opens() >= 1), 'every client to connect');
    const closesBefore = await readMetric(gateway.url, 'sse_stream_lifetime_closes_total');
    const loop = startProducerLoop((seq) => publisher.publish(topic, 'n', { seq }), {
      intervalMs: 20,
    });
    // A lifetime close comes every 1.7-4 s (the last fifth of 2 s, up to a second to the next
    // sweep, a retry of 0.1-1 s): 9 s hold at least two for every client.
    await new Promise((resolve) => setTimeout(resolve, LIFETIME_S * 4500));
    const stored = await loop.stop();
    try {
      await waitFor(
        () => clients.every((c) => c.events.length >= stored),
        () =>
          `every client at ${stored} events (${clients.map((c) => c.events.length).join(', ')})`,
        15_000,
      );
      for (const c of clients) {
        const report = checkContiguousOrReset(c.events, { firstSeq: 0 });
        expect(report.problems).toEqual([]);
        expect(report.resets).toEqual([]);
        expect(report.seqs).toHaveLength(stored);
        // Each client went through at least two lifetime closes while the producer ran.
        expect(c.opens()).toBeGreaterThanOrEqual(3);
      }
      const closes =
        (await readMetric(gateway.url, 'sse_stream_lifetime_closes_total')) - closesBefore;
      expect(closes).toBeGreaterThanOrEqual(clients.length * 2);
    } finally {
      for (const c of clients) c.source.close();
    }
  });
});
