import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryEngine } from '@streamcast/engine';
import { Hub } from '@streamcast/hub';
import { parseCursor } from '@streamcast/protocol';
import { createPublisher, type PublishDraft, type Publisher } from '@streamcast/publisher';
import {
  freePort,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  type GatewayProcess,
} from '@streamcast/testing';
import Redis from 'ioredis';

/**
 * The publisher's batches (`publishMany`) on each of its targets: a real gateway's
 * `POST /publish` with an array, Redis itself, an in-process hub. Each answers one result per
 * event, in order; bad events are refused alone; the stored ones are in the batch's order.
 */
describe('publishMany', () => {
  const prefix = testPrefix();
  let gateway: GatewayProcess;
  let redis: Redis;
  let proxy: Server;
  let proxyUrl: string;
  /** Bodies of the POSTs that reached the gateway through the counting proxy. */
  const posted: string[] = [];
  const publishers: Publisher[] = [];

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      HISTORY_MAX_LEN: '5000',
    });
    redis = new Redis(testRedisUrl());
    // Forwards every request to the gateway as it is, and remembers each body.
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        posted.push(body);
        void fetch(`${gateway.url}${req.url}`, {
          method: req.method,
          headers: { 'content-type': String(req.headers['content-type']) },
          body,
        }).then(async (answer) => {
          res.writeHead(answer.status, { 'content-type': 'application/json' });
          res.end(await answer.text());
        });
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const publisher of publishers) await publisher.close();
    redis?.disconnect();
    await new Promise((resolve) => proxy?.close(resolve));
    await gateway?.stop();
  });

  /** Data of the topic's stored events, oldest first. */
  async function stored(topic: string): Promise<unknown[]> {
    const entries = await redis.xrange(`${prefix}:{${topic}}:log`, '-', '+');
    return entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('d') + 1] as string));
  }

  function drafts(topic: string, n: number): PublishDraft[] {
    return Array.from({ length: n }, (_, i) => ({
      topic,
      event: 'n',
      data: { i, pad: 'x'.repeat(80) },
    }));
  }

  it('through a gateway: as few requests as fit, one result per event, in order', async () => {
    const publisher = await createPublisher({
      gatewayUrl: proxyUrl,
      validate: false,
      maxBatchBytes: 50_000,
    });
    publishers.push(publisher);
    const events: PublishDraft[] = [
      ...drafts('pm/http', 1500),
      { topic: 'no spaces', data: 1 },
      { topic: 'pm/http', event: 'reset', data: 2 },
      { topic: 'pm/http', data: undefined },
      ...drafts('pm/http-2', 700),
    ];
    posted.length = 0;
    const outcomes = await publisher.publishMany(events);
    expect(outcomes).toHaveLength(events.length);
    const refused = outcomes.slice(1500, 1503).map((o) => ('error' in o ? o.error.code : o.id));
    expect(refused).toEqual(['TOPIC_INVALID', 'EVENT_RESERVED', 'DATA_MISSING']);
    const ids = outcomes.filter((o) => 'id' in o).map((o) => ('id' in o ? o.id : ''));
    expect(ids).toHaveLength(2200);
    expect(new Set(ids).size).toBe(2200);
    for (const id of ids.slice(0, 3)) expect(parseCursor(id).format).toBe('topics');
    // 2,200 events of ~120 bytes: at most 1,000 and 50,000 bytes a request, every one used.
    const sizes = posted.map((body) => (JSON.parse(body) as unknown[]).length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2200);
    expect(Math.max(...posted.map((b) => b.length))).toBeLessThanOrEqual(50_000);
    expect(posted.length).toBeLessThanOrEqual(Math.ceil((2200 * 125) / 50_000) + 1);
    expect((await stored('pm/http')).map((d) => (d as { i: number }).i)).toEqual(
      Array.from({ length: 1500 }, (_, i) => i),
    );
    expect(await stored('pm/http-2')).toHaveLength(700);
  });

  it('through a gateway: a refusal of the whole request is every one of its events', async () => {
    const publisher = await createPublisher({
      gatewayUrl: `http://127.0.0.1:${await freePort()}`,
      validate: false,
    });
    publishers.push(publisher);
    const outcomes = await publisher.publishMany([
      { topic: 'pm/whole', data: 1 },
      { topic: 'pm whole', data: 2 },
      { topic: 'pm/whole', data: 3 },
    ]);
    const codes = outcomes.map((o) => ('error' in o ? o.error.code : o.id));
    expect(codes).toEqual(['NOT_READY', 'TOPIC_INVALID', 'NOT_READY']);
    // One request, one error: the same for both of its events.
    expect('error' in outcomes[0]! && outcomes[0].error).toBe(
      'error' in outcomes[2]! && outcomes[2].error,
    );
  });

  it('straight into Redis and into a hub: one result per event, stored in order', async () => {
    const hub = new Hub(new MemoryEngine());
    await hub.start();
    try {
      const targets = [
        await createPublisher({ redisUrl: testRedisUrl(), keyPrefix: prefix, validate: false }),
        await createPublisher({ hub, validate: false }),
      ];
      publishers.push(...targets);
      for (const publisher of targets) {
        const topic = `pm/${publisher.target}`;
        const outcomes = await publisher.publishMany([
          ...drafts(topic, 300),
          { topic, event: 'bad event', data: 0 },
          ...drafts(topic, 2),
        ]);
        expect(outcomes).toHaveLength(303);
        expect('error' in outcomes[300]! && outcomes[300].error.code).toBe('EVENT_INVALID');
        const ids = outcomes.filter((o) => 'id' in o);
        expect(ids).toHaveLength(302);
        if (publisher.target === 'redis') {
          expect((await stored(topic)).map((d) => (d as { i: number }).i)).toEqual([
            ...Array.from({ length: 300 }, (_, i) => i),
            0,
            1,
          ]);
        } else {
          const page = await hub.engine.read(topic, '0-0', 1000);
          expect(page.entries.map((e) => (JSON.parse(e.data) as { i: number }).i)).toEqual([
            ...Array.from({ length: 300 }, (_, i) => i),
            0,
            1,
          ]);
        }
      }
    } finally {
      await hub.close();
      await hub.engine.close();
    }
  });
});
