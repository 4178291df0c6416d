import type { AddressInfo } from 'node:net';
import { MemoryEngine, type HistoryPage } from '@streamcast/engine';
import { Hub } from '@streamcast/hub';
import { SseClient, fetchJson, publishHttp } from '@streamcast/testing';
import Fastify, { type FastifyInstance } from 'fastify';
import { streamcast } from './fastify-plugin';

/**
 * Streams and polls the hub ends before they began (a drain while they are being placed) get
 * answers a client can retry, and a long poll's answer is bounded in bytes.
 */
describe('ending streams and polls', () => {
  let engine: MemoryEngine;
  let hub: Hub;
  let app: FastifyInstance;
  let url: string;
  /** While set, history reads wait for it: a stream stays "being placed". */
  let gate: Promise<void> | undefined;

  beforeEach(async () => {
    engine = new MemoryEngine();
    const read = engine.read.bind(engine);
    engine.read = async (...args): Promise<HistoryPage> => {
      if (gate) await gate;
      return read(...args);
    };
    hub = new Hub(engine, { retryMs: 1000, maxQueueBytes: 64 * 1024 });
    await hub.start();
    app = Fastify();
    await app.register(streamcast, { hub });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    gate = undefined;
    await app.close();
    await hub.close();
    await engine.close();
  });

  it('answers a stream and a poll that a drain ended while they were placed', async () => {
    const head = (await fetchJson(`${url}/poll?topic=t`)).body.lastEventId as string;
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    // A new topic: its channel starts, and both requests wait on the held read.
    const stream = SseClient.open(`${url}/events?topic=held`);
    const polled = fetchJson(`${url}/poll?topic=t&lastEventId=${encodeURIComponent(head)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await hub.drain(0);
    open();
    const client = await stream;
    await client.waitForEnd(5000);
    expect(client.status).toBe(200);
    expect(client.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(client.retries.length).toBeGreaterThan(0);
    const poll = await polled;
    expect({ status: poll.status, code: poll.body.error?.code }).toEqual({
      status: 503,
      code: 'NOT_READY',
    });
    expect(poll.headers['retry-after']).toBe('1');
  });

  it('stops a poll answer once its text passes the queue bound', async () => {
    const head = (await fetchJson(`${url}/poll?topic=big`)).body.lastEventId as string;
    const text = 'x'.repeat(10 * 1024);
    for (let i = 0; i < 20; i++) await publishHttp(url, 'big', undefined, { i, text });
    const first = await fetchJson(`${url}/poll?topic=big&lastEventId=${encodeURIComponent(head)}`);
    const n = first.body.events.length as number;
    // 64 KiB: the event that passes it is the last one.
    expect(n).toBeGreaterThanOrEqual(6);
    expect(n).toBeLessThanOrEqual(7);
    const rest = await fetchJson(
      `${url}/poll?topic=big&lastEventId=${encodeURIComponent(first.body.lastEventId)}`,
    );
    const all = [
      ...first.body.events,
      ...rest.body.events,
      ...(await drainAll(rest.body.lastEventId)),
    ];
    expect(all.map((e: { data: { i: number } }) => e.data.i)).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
  });

  async function drainAll(cursor: string): Promise<unknown[]> {
    const out: unknown[] = [];
    for (;;) {
      const res = await fetchJson(
        `${url}/poll?topic=big&timeout=0&lastEventId=${encodeURIComponent(cursor)}`,
      );
      if (res.body.events.length === 0) return out;
      out.push(...res.body.events);
      cursor = res.body.lastEventId;
    }
  }
});
