import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import fastifyRedis from '@fastify/redis';
import { createBroadcaster, sse, type Broadcaster } from '@streamcast/express';
import { redisClientOptions, streamcast } from '@streamcast/fastify';
import { ParamInvalid } from '@streamcast/protocol';
import {
  SseClient,
  fetchJson,
  sleep,
  testPrefix,
  testRedisUrl,
  waitFor,
  withEpoch,
} from '@streamcast/testing';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { startChatServer, type ChatServer } from '../examples/chat-server/server';

/**
 * The gateway's conformance scenarios against host applications that embed the broadcaster:
 * an Express 5 app on `@streamcast/express` and a Fastify app on the `streamcast` plugin with
 * `@fastify/redis`, each built only from the packages' public exports, on a real Redis.
 */
interface EmbeddedApp {
  url: string;
  /** Publishing from the host app. */
  publish(topic: string, event: string | undefined, data: unknown): Promise<string>;
  connectionCount(): number;
  engineKind(): string;
  close(): Promise<void>;
}

const SETTINGS = { retryMs: 200, heartbeatMs: 300 };

/** The seed's stock route: `stocks/<SYMBOL>`, 1-12 of A-Z 0-9 . - after upper-casing. */
function stockTopic(symbol: string | undefined): string {
  const upper = String(symbol).toUpperCase();
  if (!/^[A-Z0-9.-]{1,12}$/.test(upper)) {
    throw new ParamInvalid(`symbol ${JSON.stringify(symbol)}: 1-12 characters of A-Z 0-9 . -`);
  }
  return `stocks/${upper}`;
}

async function expressApp(keyPrefix: string): Promise<EmbeddedApp> {
  const broadcaster: Broadcaster = await createBroadcaster({
    redisUrl: testRedisUrl(),
    keyPrefix,
    ...SETTINGS,
  });
  const app = express();
  app.get('/events', sse({ broadcaster }));
  app.get(
    '/api/stocks/:symbol',
    sse<{ symbol: string }>({ broadcaster, topics: (req) => [stockTopic(req.params.symbol)] }),
  );
  // A topic lookup that takes a while, as one from a database would.
  app.get('/slow', sse({ broadcaster, topics: () => sleep(200).then(() => ['slow']) }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    publish: (topic, event, data) => broadcaster.publish(topic, event, data),
    connectionCount: () => broadcaster.hub.connectionCount,
    engineKind: () => broadcaster.engine.kind,
    close: async () => {
      await broadcaster.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function fastifyApp(keyPrefix: string): Promise<EmbeddedApp> {
  const app: FastifyInstance = Fastify();
  await app.register(fastifyRedis, { url: testRedisUrl(), ...redisClientOptions() });
  await app.register(streamcast, { keyPrefix, ...SETTINGS });
  app.get<{ Params: { symbol: string } }>('/api/stocks/:symbol', async (req, reply) => {
    await reply.sse([stockTopic(req.params.symbol)]);
  });
  app.get('/slow', async (_req, reply) => {
    await sleep(200);
    await reply.sse(['slow']);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    publish: (topic, event, data) => app.streamcast.publish(topic, event, data),
    connectionCount: () => app.streamcast.hub.connectionCount,
    engineKind: () => app.streamcast.hub.engine.kind,
    close: () => app.close(),
  };
}

const hosts: Array<{ name: string; make: (prefix: string) => Promise<EmbeddedApp> }> = [
  { name: 'Express', make: expressApp },
  { name: 'Fastify', make: fastifyApp },
];

describe.each(hosts)('an $name app embedding the broadcaster', ({ make }) => {
  let app: EmbeddedApp;
  const clients: SseClient[] = [];

  beforeAll(async () => {
    app = await make(testPrefix());
  });

  afterAll(async () => {
    await app?.close();
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });

  async function open(path: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = await SseClient.open(`${app.url}${path}`, headers);
    clients.push(client);
    return client;
  }

  it('runs on Redis', () => {
    expect(app.engineKind()).toBe('redis');
  });

  it('streams live events with the gateway headers, framing and the ids that publish returned', async () => {
    const client = await open('/api/stocks/aapl');
    expect(client.status).toBe(200);
    expect(client.headers['content-type']).toBe('text/event-stream');
    expect(client.headers['cache-control']).toBe('no-cache, no-transform');
    expect(client.headers['x-accel-buffering']).toBe('no');
    expect(client.headers['content-encoding']).toBeUndefined();
    await waitFor(() => client.raw.length > 0, 'first bytes');
    expect(client.raw.startsWith('retry: 200\n\n')).toBe(true);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await app.publish('stocks/AAPL', 'priceUpdate', { symbol: 'AAPL', price: 100 + i }));
    }
    await app.publish('plain', undefined, 'not for this stream');
    await client.waitForEvents(5);
    expect(client.events.map((e) => e.id)).toEqual(ids);
    expect(client.events.map((e) => e.event)).toEqual(Array(5).fill('priceUpdate'));
    expect(client.data<{ price: number }>().map((d) => d.price)).toEqual([100, 101, 102, 103, 104]);
    expect(client.raw).toContain(
      `id: ${ids[0]}\nevent: priceUpdate\ndata: {"symbol":"AAPL","price":100}\n\n`,
    );
  });

  it('writes a heartbeat comment on a silent stream', async () => {
    const client = await open('/events?topic=quiet');
    await waitFor(
      () => client.comments.length >= 2,
      () => `2 heartbeats (got ${client.comments.length})`,
      5000,
    );
    expect(client.events).toEqual([]);
  });

  it('keeps publish order per topic on a multi-topic stream', async () => {
    const client = await open('/events?topic=m1&topic=m2&topic=m1');
    for (let i = 0; i < 30; i++) await app.publish(i % 3 ? 'm1' : 'm2', 'n', { i });
    await client.waitForEvents(30);
    const got = client.data<{ i: number }>().map((d) => d.i);
    expect(got.filter((i) => i % 3 !== 0)).toEqual(
      [...Array(30).keys()].filter((i) => i % 3 !== 0),
    );
    expect(got.filter((i) => i % 3 === 0)).toEqual(
      [...Array(30).keys()].filter((i) => i % 3 === 0),
    );
  });

  it('resumes by Last-Event-ID header and by lastEventId query, the header winning', async () => {
    const first = await open('/events?topic=resume&topic=resume-2');
    for (let i = 0; i < 5; i++) await app.publish(i % 2 ? 'resume' : 'resume-2', undefined, i);
    await first.waitForEvents(5);
    const cursor = first.lastId as string;
    first.close();
    for (let i = 5; i < 10; i++) await app.publish(i % 2 ? 'resume' : 'resume-2', undefined, i);
    const byHeader = await open('/events?topic=resume-2&topic=resume', { 'last-event-id': cursor });
    const byQuery = await open(
      `/events?topic=resume&topic=resume-2&lastEventId=${encodeURIComponent(cursor)}`,
    );
    const both = await open('/events?topic=resume&topic=resume-2&lastEventId=1~0.zz.0.0', {
      'last-event-id': cursor,
    });
    for (const client of [byHeader, byQuery, both]) {
      await client.waitForEvents(5);
      await sleep(30);
      const got = client.data<number>();
      expect(got.filter((n) => n % 2 === 1)).toEqual([5, 7, 9]);
      expect(got.filter((n) => n % 2 === 0)).toEqual([6, 8]);
      expect(client.resets()).toEqual([]);
    }
    // And continues live from there.
    await app.publish('resume', undefined, 11);
    await byQuery.waitForEvents(6);
    expect(byQuery.data<number>().at(-1)).toBe(11);
  });

  it('resumes a single-topic route from the id of the last event seen', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await app.publish('stocks/MSFT', 'priceUpdate', { i }));
    const client = await open('/api/stocks/msft', { 'last-event-id': ids[2] as string });
    await client.waitForEvents(3);
    expect(client.events.map((e) => e.id)).toEqual(ids.slice(3));
  });

  it('sends reset history-lost for a cursor of another epoch and cursor-unknown for another format', async () => {
    const real = await app.publish('lost', undefined, 0);
    await app.publish('lost', undefined, 1);
    const lost = await open('/events?topic=lost', { 'last-event-id': withEpoch(real) });
    await lost.waitForEvents(1);
    expect(lost.events[0]?.event).toBe('reset');
    expect(lost.resets()).toEqual([{ topics: ['lost'], reason: 'history-lost' }]);
    const unknown = await open('/events?topic=lost&lastEventId=9~whatever');
    await unknown.waitForEvents(1);
    expect(unknown.resets()).toEqual([{ topics: ['lost'], reason: 'cursor-unknown' }]);
    // Both continue live, with no replay of what was stored before the reset; resuming from the
    // reset's id does not reset again.
    await app.publish('lost', undefined, 2);
    await lost.waitForEvents(2);
    await unknown.waitForEvents(2);
    expect(lost.data()).toEqual([2]);
    expect(unknown.data()).toEqual([2]);
    const again = await open('/events?topic=lost', {
      'last-event-id': unknown.events[0]?.id as string,
    });
    await again.waitForEvents(1);
    expect(again.resets()).toEqual([]);
    expect(again.data()).toEqual([2]);
  });

  it('refuses bad input with 400 and the API error body, and disturbs nobody', async () => {
    const witness = await open('/events?topic=witness');
    await waitFor(() => witness.raw.length > 0, 'witness stream start');
    const cases: Array<[string, string, string]> = [
      ['no topic', '/events', 'TOPIC_MISSING'],
      ['empty topic', '/events?topic=', 'TOPIC_INVALID'],
      ['topic with a space', '/events?topic=a%20b', 'TOPIC_INVALID'],
      ['topic too long', `/events?topic=${'x'.repeat(201)}`, 'TOPIC_INVALID'],
      ['unicode topic', '/events?topic=%C3%A9', 'TOPIC_INVALID'],
      [
        '33 topics',
        `/events?${[...Array(33).keys()].map((i) => `topic=t${i}`).join('&')}`,
        'TOO_MANY_TOPICS',
      ],
      ['cursor with bad characters', '/events?topic=a&lastEventId=ABC%00', 'CURSOR_INVALID'],
      ['cursor too long', `/events?topic=a&lastEventId=${'1'.repeat(1025)}`, 'CURSOR_INVALID'],
      ['cursor given twice', '/events?topic=a&lastEventId=1&lastEventId=2', 'CURSOR_INVALID'],
      ['bad route parameter', '/api/stocks/not%20a%20symbol', 'PARAM_INVALID'],
      [
        'bad route parameter, good cursor',
        '/api/stocks/toolongsymbol1?lastEventId=1',
        'PARAM_INVALID',
      ],
    ];
    for (const [name, path, code] of cases) {
      const res = await fetchJson(`${app.url}${path}`);
      expect({ name, status: res.status, code: res.body?.error?.code }).toEqual({
        name,
        status: 400,
        code,
      });
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(typeof res.body.error.message).toBe('string');
    }
    const badHeader = await fetchJson(`${app.url}/api/stocks/ibm`, {
      headers: { 'last-event-id': 'NOPE' },
    });
    expect([badHeader.status, badHeader.body.error.code]).toEqual([400, 'CURSOR_INVALID']);
    // Publishing from the host app is validated the same way, before Redis.
    const refused = async (p: Promise<unknown>) =>
      (
        (await p.then(
          () => undefined,
          (e) => e,
        )) as { code?: string }
      )?.code;
    expect(await refused(app.publish('a b', undefined, 1))).toBe('TOPIC_INVALID');
    expect(await refused(app.publish('a', 'reset', 1))).toBe('EVENT_RESERVED');
    expect(await refused(app.publish('a', 'bad event', 1))).toBe('EVENT_INVALID');
    expect(await refused(app.publish('a', undefined, undefined))).toBe('DATA_MISSING');

    const id = await app.publish('witness', undefined, 'still here');
    await witness.waitForEvents(1);
    expect(witness.events).toEqual([{ id, event: 'message', data: '"still here"' }]);
    expect(witness.ended).toBe(false);
  });

  it('answers HEAD with the stream headers and no stream', async () => {
    const res = await fetch(`${app.url}/api/stocks/aapl`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const bad = await fetch(`${app.url}/api/stocks/a%20b`, { method: 'HEAD' });
    expect(bad.status).toBe(400);
    // A stream opened by the HEAD would stay while the client keeps its connection alive (4 s+).
    await waitFor(() => app.connectionCount() === 0, 'no open streams', 2000);
  });

  it('forgets a client that leaves while the host was still looking up its topics', async () => {
    await waitFor(() => app.connectionCount() === 0, 'no open streams');
    for (let i = 0; i < 5; i++) {
      const req = request(`${app.url}/slow`);
      req.on('error', () => {});
      req.end();
      await sleep(50);
      req.destroy();
    }
    await sleep(400);
    await waitFor(
      () => app.connectionCount() === 0,
      () => `no open streams (got ${app.connectionCount()})`,
    );
  });
});

describe('an Express app and a Fastify app on one Redis', () => {
  it('deliver each other’s events to their clients, and either resumes the other’s cursor', async () => {
    const prefix = testPrefix();
    const [a, b] = await Promise.all([expressApp(prefix), fastifyApp(prefix)]);
    const clients: SseClient[] = [];
    try {
      const onA = await SseClient.open(`${a.url}/events?topic=shared`);
      const onB = await SseClient.open(`${b.url}/api/stocks/shared`);
      clients.push(onA, onB);
      const id1 = await a.publish('shared', undefined, 'from express');
      const id2 = await b.publish('stocks/SHARED', 'priceUpdate', 'from fastify');
      const id3 = await b.publish('shared', undefined, 'from fastify');
      await onA.waitForEvents(2);
      await onB.waitForEvents(1);
      expect(onA.events.map((e) => e.id)).toEqual([id1, id3]);
      expect(onB.events).toEqual([{ id: id2, event: 'priceUpdate', data: '"from fastify"' }]);
      const resumed = await SseClient.open(`${b.url}/events?topic=shared`, {
        'last-event-id': id1,
      });
      clients.push(resumed);
      await resumed.waitForEvents(1);
      expect(resumed.data()).toEqual(['from fastify']);
    } finally {
      for (const client of clients) client.close();
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('without Redis', () => {
  it('runs both on the in-process memory engine, with the same framing', async () => {
    const broadcaster = await createBroadcaster({ retryMs: 200 });
    const expressHost = express();
    expressHost.get('/events', sse({ broadcaster }));
    const server = expressHost.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const fastifyHost = Fastify();
    await fastifyHost.register(streamcast, { retryMs: 200 });
    await fastifyHost.listen({ host: '127.0.0.1', port: 0 });
    const clients: SseClient[] = [];
    try {
      expect(broadcaster.engine.kind).toBe('memory');
      expect(fastifyHost.streamcast.hub.engine.kind).toBe('memory');
      const urls = [
        `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        `http://127.0.0.1:${(fastifyHost.server.address() as AddressInfo).port}`,
      ];
      for (const url of urls) clients.push(await SseClient.open(`${url}/events?topic=local`));
      const ids = [
        await broadcaster.publish('local', 'note', { n: 1 }),
        await fastifyHost.streamcast.publish('local', 'note', { n: 2 }),
      ];
      for (const [i, client] of clients.entries()) {
        await client.waitForEvents(1);
        expect(client.raw.startsWith('retry: 200\n\n')).toBe(true);
        expect(client.raw).toContain(`\n\nid: ${ids[i]}\nevent: note\ndata: {"n":${i + 1}}\n\n`);
        expect(client.events).toEqual([{ id: ids[i], event: 'note', data: `{"n":${i + 1}}` }]);
      }
    } finally {
      for (const client of clients) client.close();
      await broadcaster.close();
      await new Promise((resolve) => server.close(resolve));
      await fastifyHost.close();
    }
  });
});

describe('the chat server example', () => {
  const servers: ChatServer[] = [];
  const clients: SseClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('delivers a message posted on one instance to the clients of the other', async () => {
    const options = { redisUrl: testRedisUrl(), keyPrefix: testPrefix(), simulate: false };
    servers.push(await startChatServer(options), await startChatServer(options));
    const [one, two] = servers as [ChatServer, ChatServer];
    const onTwo = await SseClient.open(`${two.url}/api/chat-updates`);
    const onOne = await SseClient.open(`${one.url}/api/chat-updates`);
    clients.push(onTwo, onOne);
    // The seed's greeting, sent to each connection without an id.
    for (const client of [onTwo, onOne]) {
      await client.waitForEvents(1);
      expect(client.events[0]).toEqual({
        id: undefined,
        event: 'message',
        data: '{"status": "connected", "message": "SSE 连接已建立"}',
      });
      expect(client.headers['access-control-allow-origin']).toBe('*');
    }
    const posted = await fetchJson(`${one.url}/api/chat/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'Alice', text: '你好大家!' }),
    });
    expect(posted.status).toBe(200);
    for (const client of [onTwo, onOne]) {
      await client.waitForEvents(2);
      expect(client.events[1]).toEqual({
        id: posted.body.id,
        event: 'new-message',
        data: '{"user":"Alice","text":"你好大家!"}',
      });
    }

    // A client of the first that reconnects to the second misses nothing; the greeting is not
    // stored, so it is not replayed.
    onOne.close();
    await two.broadcaster.publish('chat', 'user-joined', { name: 'Bob' });
    const back = await SseClient.open(`${two.url}/api/chat-updates`, {
      'last-event-id': posted.body.id,
    });
    clients.push(back);
    await back.waitForEvents(2);
    await sleep(50);
    expect(back.events.map((e) => e.event)).toEqual(['message', 'user-joined']);
    expect(back.data('user-joined')).toEqual([{ name: 'Bob' }]);

    const bad = await fetchJson(`${two.url}/api/chat/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"user": 5}',
    });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'BODY_INVALID']);
  });
});
