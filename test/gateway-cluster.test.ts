import {
  RedisProcess,
  SseClient,
  collidingTopics,
  fetchJson,
  legacyCursor,
  publishHttp,
  readMetric,
  sleep,
  startGatewayProcess,
  sumSamples,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';
import { EventSource } from 'eventsource';
import Redis from 'ioredis';

/**
 * Two gateway processes on one Redis: what users get behind a load balancer. Everything here
 * goes over real sockets to real processes.
 */
describe('two gateways on one Redis', () => {
  const prefix = testPrefix();
  let a: GatewayProcess;
  let b: GatewayProcess;
  const clients: SseClient[] = [];

  beforeAll(async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: prefix, RETRY_MS: '200' };
    [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });

  async function open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = await SseClient.open(url, headers);
    clients.push(client);
    return client;
  }

  it('answers a stream with the SSE headers and a retry line first', async () => {
    const client = await open(`${a.url}/events?topic=headers`);
    expect(client.status).toBe(200);
    expect(client.headers['content-type']).toBe('text/event-stream');
    expect(client.headers['cache-control']).toBe('no-cache, no-transform');
    expect(client.headers['x-accel-buffering']).toBe('no');
    expect(client.headers['content-encoding']).toBeUndefined();
    await waitFor(() => client.raw.length > 0, 'first bytes');
    expect(client.raw.startsWith('retry: 200\n')).toBe(true);
  });

  it('answers HEAD on every GET route, and a HEAD on a stream route opens no stream', async () => {
    await waitFor(async () => (await readMetric(a.url, 'sse_connections')) === 0, 'no streams');
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(`${a.url}${path}`, { method: 'HEAD' });
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
    }
    for (const path of ['/events?topic=head', '/api/events', '/api/stocks/aapl']) {
      const res = await fetch(`${a.url}${path}`, { method: 'HEAD' });
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({
        path,
        status: 200,
        type: 'text/event-stream',
      });
      expect(await res.text()).toBe('');
    }
    const bad = await fetch(`${a.url}/api/stocks/a%20b`, { method: 'HEAD' });
    expect(bad.status).toBe(400);
    expect((await fetch(`${a.url}/nope`, { method: 'HEAD' })).status).toBe(404);
    // Nothing stays open: a stream opened by a HEAD would count here while fetch keeps its
    // connection alive (4 s).
    expect(await readMetric(a.url, 'sse_connections')).toBe(0);
  });

  it('delivers an event published on one gateway to subscribers of both', async () => {
    const onA = await open(`${a.url}/events?topic=cross`);
    const onB = await open(`${b.url}/events?topic=cross`);
    const id = await publishHttp(a.url, 'cross', 'greeting', { hello: 'world' });
    await onA.waitForEvents(1);
    await onB.waitForEvents(1);
    for (const client of [onA, onB]) {
      expect(client.events).toEqual([{ id, event: 'greeting', data: '{"hello":"world"}' }]);
    }
  });

  it('holds one Redis subscription per topic per gateway, however many clients listen', async () => {
    const listeners = await Promise.all(
      [...Array(20).keys()].map((i) => open(`${i % 2 ? a.url : b.url}/events?topic=popular`)),
    );
    const redis = new Redis(testRedisUrl());
    try {
      const [, count] = (await redis.pubsub('NUMSUB', `${prefix}:{popular}:live`)) as [
        string,
        number,
      ];
      expect(count).toBe(2);
    } finally {
      redis.disconnect();
    }
    await publishHttp(a.url, 'popular', undefined, 'all of you');
    await Promise.all(listeners.map((l) => l.waitForEvents(1)));
  });

  it('keeps publish order per topic on a multi-topic stream fed from both gateways', async () => {
    const client = await open(`${b.url}/events?topic=m1&topic=m2&topic=m1`);
    for (let i = 0; i < 30; i++) {
      await publishHttp(i % 2 ? a.url : b.url, i % 3 ? 'm1' : 'm2', 'n', { i });
    }
    await client.waitForEvents(30);
    const got = client.data<{ i: number }>().map((d) => d.i);
    const m1 = [...Array(30).keys()].filter((i) => i % 3 !== 0);
    const m2 = [...Array(30).keys()].filter((i) => i % 3 === 0);
    expect(got.filter((i) => i % 3 !== 0)).toEqual(m1);
    expect(got.filter((i) => i % 3 === 0)).toEqual(m2);
  });

  it('resumes on the other gateway by Last-Event-ID header and by lastEventId query', async () => {
    const first = await open(`${a.url}/events?topic=resume&topic=resume-2`);
    for (let i = 0; i < 5; i++)
      await publishHttp(a.url, i % 2 ? 'resume' : 'resume-2', undefined, i);
    await first.waitForEvents(5);
    const cursor = first.lastId as string;
    first.close();
    for (let i = 5; i < 10; i++)
      await publishHttp(b.url, i % 2 ? 'resume' : 'resume-2', undefined, i);
    const byHeader = await open(`${b.url}/events?topic=resume-2&topic=resume`, {
      'last-event-id': cursor,
    });
    const byQuery = await open(
      `${b.url}/events?topic=resume&topic=resume-2&lastEventId=${encodeURIComponent(cursor)}`,
    );
    // The header wins over the query parameter.
    const both = await open(`${a.url}/events?topic=resume&topic=resume-2&lastEventId=1~0.zz.0.0`, {
      'last-event-id': cursor,
    });
    for (const client of [byHeader, byQuery, both]) {
      await client.waitForEvents(5);
      await sleep(30);
      // Order is per topic; history of different topics is replayed one topic after another.
      const got = client.data<number>();
      expect(got.filter((n) => n % 2 === 1)).toEqual([5, 7, 9]);
      expect(got.filter((n) => n % 2 === 0)).toEqual([6, 8]);
      expect(client.resets()).toEqual([]);
    }
  });

  it('resumes a cursor on another topic set by topic name, on the other gateway', async () => {
    const [x, y, z] = ['set-x', 'set-y', 'set-z'];
    const [c1, c2] = collidingTopics('set-collide/');
    const first = await open(`${a.url}/events?topic=${x}&topic=${y}`);
    await publishHttp(a.url, x, 'n', { t: 'x', n: 1 });
    await publishHttp(a.url, y, 'n', { t: 'y', n: 1 });
    await first.waitForEvents(2);
    const cursor = first.lastId as string;
    first.close();
    const c1Cursor = await publishHttp(a.url, c1, 'n', { t: 'c1', n: 1 });
    for (const [topic, t] of [
      [x, 'x'],
      [y, 'y'],
      [z, 'z'],
      [c1, 'c1'],
      [c2, 'c2'],
    ]) {
      await publishHttp(a.url, topic as string, 'n', { t, n: 2 });
    }
    const q = encodeURIComponent;
    // Topics changed (y dropped, z added) and listed in another order: x resumes, z starts live.
    const changed = await open(`${b.url}/events?topic=${z}&topic=${x}`, {
      'last-event-id': cursor,
    });
    const byQuery = await open(
      `${b.url}/events?topic=${x}&topic=${y}&topic=${z}&lastEventId=${q(cursor)}`,
    );
    // The previous format: one entry on its one topic resumes; two entries on one topic reset.
    const legacyOne = await open(`${b.url}/events?topic=${x}`, {
      'last-event-id': legacyCursor(cursor, [x]),
    });
    const legacyOff = await open(`${b.url}/events?topic=${x}`, {
      'last-event-id': legacyCursor(cursor, [x, y]),
    });
    // Two requested topics with one fingerprint: the entry could be either's, so both reset.
    const collided = await open(
      `${b.url}/events?topic=${c1}&topic=${c2}&lastEventId=${q(c1Cursor)}`,
    );
    for (const [topic, t] of [
      [x, 'x'],
      [y, 'y'],
      [z, 'z'],
      [c1, 'c1'],
      [c2, 'c2'],
    ]) {
      await publishHttp(a.url, topic as string, 'n', { t, n: 3 });
    }
    const seen = (client: SseClient) =>
      client.data<{ t: string; n: number }>('n').map((d) => `${d.t}${d.n}`);
    const expected: Array<[SseClient, string[], Array<{ topics: string[]; reason: string }>]> = [
      [changed, ['x2', 'x3', 'z3'], []],
      [byQuery, ['x2', 'x3', 'y2', 'y3', 'z3'], []],
      [legacyOne, ['x2', 'x3'], []],
      [legacyOff, ['x3'], [{ topics: [x], reason: 'cursor-unknown' }]],
      [collided, ['c13', 'c23'], [{ topics: [c1, c2].sort(), reason: 'cursor-unknown' }]],
    ];
    for (const [client, events, resets] of expected) {
      await client.waitForEvents(events.length, undefined, 'n');
      await sleep(50);
      expect(seen(client).sort()).toEqual(events);
      expect(client.resets()).toEqual(resets);
    }
  });

  it('hands over to live without gap or duplicate while another gateway publishes', async () => {
    let stop = false;
    const ids: string[] = [];
    const publisher = (async () => {
      for (let seq = 0; !stop; seq++) ids.push(await publishHttp(a.url, 'handover', 'n', { seq }));
    })();
    await waitFor(() => ids.length >= 50, '50 events published');
    const starts = [5, 25, 45];
    const resumed = await Promise.all(
      starts.map((n) =>
        open(`${b.url}/events?topic=handover`, { 'last-event-id': ids[n] as string }),
      ),
    );
    await sleep(300);
    stop = true;
    await publisher;
    const total = ids.length;
    for (const [k, client] of resumed.entries()) {
      const from = (starts[k] as number) + 1;
      await client.waitForEvents(total - from);
      await sleep(30);
      expect(client.data<{ seq: number }>().map((d) => d.seq)).toEqual(
        [...Array(total - from).keys()].map((i) => i + from),
      );
      expect(client.events.map((e) => e.id)).toEqual(ids.slice(from));
    }
  });

  it('lets a browser-like EventSource resume on another gateway with nothing lost or repeated', async () => {
    const prefixC = testPrefix();
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: prefixC, RETRY_MS: '100' };
    const [c, d] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    const seen: Array<{ id: string; n: number }> = [];
    const sentIds: string[] = [];
    let connects = 0;
    const headersSeen: Array<string | null> = [];
    // A stand-in for the load balancer: the first connection goes to c, the rest to d.
    const source = new EventSource(`${c.url}/events?topic=es`, {
      fetch: (input, init) => {
        connects++;
        headersSeen.push(new Headers(init?.headers).get('last-event-id'));
        const url = connects === 1 ? String(input) : String(input).replace(c.url, d.url);
        return fetch(url, init);
      },
    });
    try {
      source.addEventListener('n', (e) => seen.push({ id: e.lastEventId, n: JSON.parse(e.data) }));
      await waitFor(() => source.readyState === EventSource.OPEN, 'EventSource open');
      for (let n = 0; n < 5; n++) sentIds.push(await publishHttp(d.url, 'es', 'n', n));
      await waitFor(
        () => seen.length === 5,
        () => `5 events (got ${seen.length})`,
      );
      await c.kill();
      for (let n = 5; n < 10; n++) sentIds.push(await publishHttp(d.url, 'es', 'n', n));
      await waitFor(
        () => seen.length >= 10,
        () => `10 events (got ${seen.length})`,
      );
      await sleep(100);
      expect(seen.map((e) => e.n)).toEqual([...Array(10).keys()]);
      expect(seen.map((e) => e.id)).toEqual(sentIds);
      expect(headersSeen.at(-1)).toBe(sentIds[4]);
    } finally {
      source.close();
      await Promise.all([c.kill(), d.stop()]);
    }
  });

  it('resets a resuming client whose cursor is older than the retained history', async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix(), HISTORY_MAX_LEN: '10' };
    const g = await startGatewayProcess(env);
    try {
      const first = await publishHttp(g.url, 'short', undefined, 0);
      for (let i = 1; i < 300; i++) await publishHttp(g.url, 'short', undefined, i);
      const client = await open(`${g.url}/events?topic=short`, { 'last-event-id': first });
      await client.waitForEvents(1);
      expect(client.events[0]?.event).toBe('reset');
      expect(client.resets()).toEqual([{ topics: ['short'], reason: 'history-trimmed' }]);
      await publishHttp(g.url, 'short', undefined, 300);
      await client.waitForEvents(2);
      expect(client.data()).toEqual([300]);
    } finally {
      await g.stop();
    }
  });

  it('delivers an event as large as the body limit to a client that reads', async () => {
    const client = await open(`${a.url}/events?topic=large`);
    const big = 'ü'.repeat(500_000); // 1,000,000 bytes of UTF-8, as much as MAX_QUEUE_BYTES
    await publishHttp(b.url, 'large', 'big', { big });
    await client.waitForEvents(1);
    expect(JSON.parse(client.events[0]?.data as string)).toEqual({ big });
    expect(client.ended).toBe(false);
  });

  it('refuses bad input with the right status and code, and disturbs nobody', async () => {
    const witness = await open(`${b.url}/events?topic=witness`);
    const long = 'x'.repeat(201);
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, string, RequestInit | undefined, number, string]> = [
      ['no topic', '/events', undefined, 400, 'TOPIC_MISSING'],
      ['empty topic', '/events?topic=', undefined, 400, 'TOPIC_INVALID'],
      ['topic with a space', '/events?topic=a%20b', undefined, 400, 'TOPIC_INVALID'],
      ['topic too long', `/events?topic=${long}`, undefined, 400, 'TOPIC_INVALID'],
      ['unicode topic', '/events?topic=%C3%A9', undefined, 400, 'TOPIC_INVALID'],
      [
        '33 topics',
        `/events?${[...Array(33).keys()].map((i) => `topic=t${i}`).join('&')}`,
        undefined,
        400,
        'TOO_MANY_TOPICS',
      ],
      [
        'cursor with bad characters',
        '/events?topic=a&lastEventId=ABC%00',
        undefined,
        400,
        'CURSOR_INVALID',
      ],
      [
        'cursor too long',
        `/events?topic=a&lastEventId=${'1'.repeat(1025)}`,
        undefined,
        400,
        'CURSOR_INVALID',
      ],
      [
        'cursor given twice',
        '/events?topic=a&lastEventId=1&lastEventId=2',
        undefined,
        400,
        'CURSOR_INVALID',
      ],
      ['unknown route', '/nope', undefined, 404, 'NOT_FOUND'],
      [
        'publish: not JSON',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":' },
        400,
        'BODY_INVALID',
      ],
      [
        'publish: array',
        '/publish',
        { method: 'POST', headers: json, body: '[]' },
        400,
        'BODY_INVALID',
      ],
      [
        'publish: unknown field',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":"a","data":1,"x":1}' },
        400,
        'BODY_INVALID',
      ],
      [
        'publish: no topic',
        '/publish',
        { method: 'POST', headers: json, body: '{"data":1}' },
        400,
        'TOPIC_INVALID',
      ],
      [
        'publish: bad topic',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":"a b","data":1}' },
        400,
        'TOPIC_INVALID',
      ],
      [
        'publish: no data',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":"a"}' },
        400,
        'DATA_MISSING',
      ],
      [
        'publish: bad event',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":"a","event":"a b","data":1}' },
        400,
        'EVENT_INVALID',
      ],
      [
        'publish: event not a string',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":"a","event":5,"data":1}' },
        400,
        'EVENT_INVALID',
      ],
      [
        'publish: reset event',
        '/publish',
        { method: 'POST', headers: json, body: '{"topic":"a","event":"reset","data":1}' },
        400,
        'EVENT_RESERVED',
      ],
      [
        'publish: text body',
        '/publish',
        { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' },
        400,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        'publish: xml body',
        '/publish',
        { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' },
        400,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
    ];
    for (const [name, path, init, status, code] of cases) {
      const res = await fetch(`${b.url}${path}`, init);
      const body = (await res.json()) as { error?: { code: string; message: string } };
      expect({ name, status: res.status, code: body.error?.code }).toEqual({ name, status, code });
      expect(typeof body.error?.message).toBe('string');
      if (code === 'UNSUPPORTED_MEDIA_TYPE') {
        // It names the type that was sent.
        const sent = String((init?.headers as Record<string, string>)['content-type']);
        expect(body.error?.message).toContain(JSON.stringify(sent));
      }
      const health = await fetch(`${b.url}/healthz`);
      expect(health.status).toBe(200);
    }
    // A body over the limit is refused on its Content-Length, before it is read; the gateway
    // then reads the rest rather than reset the connection under a client still sending it
    // (fetch on Node 26 failed with EPIPE before it did).
    const tooLarge = await fetchJson(`${b.url}/publish`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ topic: 'witness', data: 'x'.repeat(1024 * 1024) }),
    });
    expect([tooLarge.status, tooLarge.body.error?.code]).toEqual([413, 'BODY_TOO_LARGE']);
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
    const id = await publishHttp(a.url, 'witness', undefined, 'still here');
    await witness.waitForEvents(1);
    expect(witness.events).toEqual([{ id, event: 'message', data: '"still here"' }]);
    expect(witness.ended).toBe(false);
  });

  it('publishes a batch: each entry answers in order, bad ones alone, good ones stored in order', async () => {
    const onA = await open(`${a.url}/events?topic=batch-x&topic=batch-y`);
    const onB = await open(`${b.url}/events?topic=batch-x`);
    const published = await readMetric(b.url, 'sse_events_published_total');
    const entries: unknown[] = [
      { topic: 'batch-x', event: 'n', data: 1 },
      { topic: 'batch-y', data: { two: 2 } },
      { topic: 'no spaces', data: 3 },
      { topic: 'batch-x', event: 'reset', data: 4 },
      { topic: 'batch-x' },
      { topic: 'batch-x', data: 6, extra: true },
      'not an object',
      { topic: 'batch-x', event: 'n', data: 'eight' },
      ...Array.from({ length: 200 }, (_, i) => ({ topic: 'batch-x', event: 'n', data: 100 + i })),
    ];
    const res = await fetchJson(`${b.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(entries),
    });
    expect(res.status).toBe(200);
    const results = (res.body as { results: Array<{ id?: string; error?: { code: string } }> })
      .results;
    expect(results).toHaveLength(entries.length);
    expect(results.slice(2, 7).map((r) => r.error?.code)).toEqual([
      'TOPIC_INVALID',
      'EVENT_RESERVED',
      'DATA_MISSING',
      'BODY_INVALID',
      'BODY_INVALID',
    ]);
    const good = [0, 1, ...Array.from({ length: 201 }, (_, i) => 7 + i)];
    for (const i of good) expect(results[i]?.id).toEqual(expect.any(String));
    // Every subscriber, on either gateway, gets exactly the stored events, in batch order.
    const xIds = good.filter((i) => i !== 1).map((i) => results[i]!.id);
    await onB.waitForEvents(xIds.length);
    expect(onB.events.map((e) => e.id)).toEqual(xIds);
    expect(onB.events.map((e) => JSON.parse(e.data))).toEqual([
      1,
      'eight',
      ...Array.from({ length: 200 }, (_, i) => 100 + i),
    ]);
    await onA.waitForEvents(good.length);
    expect(onA.events.filter((e) => e.data === '{"two":2}')).toHaveLength(1);
    expect(onA.events.filter((e) => e.data !== '{"two":2}').map((e) => e.data)).toEqual(
      onB.events.map((e) => e.data),
    );
    const redis = new Redis(testRedisUrl());
    try {
      expect(await redis.xlen(`${prefix}:{batch-x}:log`)).toBe(xIds.length);
      expect(await redis.xlen(`${prefix}:{batch-y}:log`)).toBe(1);
    } finally {
      redis.disconnect();
    }
    expect(await readMetric(b.url, 'sse_events_published_total')).toBe(published + good.length);

    // Refused whole, nothing stored: an empty batch, and one over MAX_BATCH_EVENTS.
    for (const [body, status, code] of [
      ['[]', 400, 'BODY_INVALID'],
      [
        JSON.stringify(Array.from({ length: 1001 }, () => ({ topic: 'batch-x', data: 0 }))),
        413,
        'BATCH_TOO_LARGE',
      ],
    ] as const) {
      const refused = await fetchJson(`${b.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect([refused.status, refused.body.error?.code]).toEqual([status, code]);
    }
    await sleep(100);
    expect(onB.events).toHaveLength(xIds.length);
    expect(onB.ended).toBe(false);
  });

  it('times every delivery: the latency histogram counts what sse_events_delivered_total counts', async () => {
    const g = await startGatewayProcess({ REDIS_URL: testRedisUrl(), REDIS_PREFIX: prefix });
    try {
      const clients = await Promise.all(
        [...Array(30).keys()].map((i) =>
          SseClient.open(`${g.url}/events?topic=timed${i % 3 === 0 ? '&topic=timed-2' : ''}`),
        ),
      );
      await Promise.all(clients.map((c) => waitFor(() => c.raw.length > 0, 'stream start')));
      for (let i = 0; i < 20; i++) await publishHttp(g.url, 'timed', undefined, i);
      await publishHttp(g.url, 'timed-2', undefined, 'other');
      await Promise.all(clients.map((c, i) => c.waitForEvents(i % 3 === 0 ? 21 : 20)));
      // A late stream resumes after the first event: 19 from history, while catching up.
      const late = await SseClient.open(`${g.url}/events?topic=timed`, {
        'last-event-id': clients[1]?.events[0]?.id as string,
      });
      await late.waitForEvents(19);
      const text = (await fetchJson(`${g.url}/metrics`)).body as string;
      const delivered = sumSamples(text, 'sse_events_delivered_total');
      expect(delivered).toBe(30 * 20 + 10 + 19);
      expect(sumSamples(text, 'sse_delivery_latency_seconds_count{path="live"}')).toBe(610);
      expect(sumSamples(text, 'sse_delivery_latency_seconds_count{path="catchup"}')).toBe(19);
      expect(sumSamples(text, 'sse_delivery_latency_seconds_bucket{path="live",le="+Inf"}')).toBe(
        610,
      );
      expect(sumSamples(text, 'sse_pubsub_lag_seconds_count')).toBe(21);
      expect(sumSamples(text, 'sse_engine_command_duration_seconds_count{command="publish"}')).toBe(
        21,
      );
      // Buckets are cumulative, and nothing on one machine takes past 10 s.
      const buckets = [
        ...text.matchAll(
          /^sse_delivery_latency_seconds_bucket\{path="live",le="([^"]+)"\} (\S+)$/gm,
        ),
      ];
      const counts = buckets.map((m) => Number(m[2]));
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(sumSamples(text, 'sse_delivery_latency_seconds_bucket{path="live",le="10"}')).toBe(
        610,
      );
      for (const c of [...clients, late]) c.close();
    } finally {
      await g.stop();
    }
  });

  it('leaves no connection, topic or Redis subscription behind after 1,000 streams come and go', async () => {
    const g = await startGatewayProcess({ REDIS_URL: testRedisUrl(), REDIS_PREFIX: prefix });
    const redis = new Redis(testRedisUrl());
    try {
      for (let round = 0; round < 50; round++) {
        const batch = await Promise.all(
          [...Array(20).keys()].map((i) =>
            SseClient.open(`${g.url}/events?topic=churn-${i % 5}&topic=churn-all`),
          ),
        );
        await Promise.all(batch.map((c) => waitFor(() => c.raw.length > 0, 'stream start')));
        for (const client of batch) client.close();
      }
      const metric = (name: string) => readMetric(g.url, name);
      await waitFor(async () => (await metric('sse_connections')) === 0, 'no open connections');
      await waitFor(async () => (await metric('sse_topics')) === 0, 'no live topics');
      expect(await metric('sse_connections_opened_total')).toBe(1000);
      expect(await metric('sse_connections_closed_total{reason="client"}')).toBe(1000);
      expect(await metric('sse_connections_closed_total')).toBe(1000);
      const channels = (await redis.pubsub('CHANNELS', `${prefix}:{churn-*`)) as string[];
      expect(channels).toEqual([]);
    } finally {
      redis.disconnect();
      await g.stop();
    }
  });
});

describe('when Redis goes away', () => {
  let redis: RedisProcess;
  let gateways: GatewayProcess[] = [];
  const clients: SseClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];
    await redis?.stop();
  });

  async function cluster(appendonly: boolean) {
    redis = await RedisProcess.start({ appendonly });
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: 'sse', RETRY_MS: '100' };
    gateways = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    return gateways as [GatewayProcess, GatewayProcess];
  }

  it('keeps streams open, answers 503 meanwhile, and delivers every stored event after a restart', async () => {
    const [g1, g2] = await cluster(true);
    const subs = await Promise.all([
      SseClient.open(`${g1.url}/events?topic=outage`),
      SseClient.open(`${g2.url}/events?topic=outage&topic=other`),
    ]);
    clients.push(...subs);
    for (let i = 0; i < 5; i++) await publishHttp(g1.url, 'outage', undefined, i);
    await Promise.all(subs.map((s) => s.waitForEvents(5)));

    await redis.kill();
    await waitFor(async () => (await fetchJson(`${g1.url}/readyz`)).status === 503, 'readyz 503');
    const started = Date.now();
    const refused = await fetchJson(`${g2.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'outage', data: 'lost?' }),
    });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('NOT_READY');
    expect(Date.now() - started).toBeLessThan(6000);
    // A new stream meanwhile: 200 with only a retry line, then closed, so EventSource retries.
    const bounced = await SseClient.open(`${g1.url}/events?topic=outage`);
    clients.push(bounced);
    await bounced.waitForEnd();
    expect(bounced.status).toBe(200);
    expect(bounced.raw).toBe('retry: 100\n\n');
    expect(subs.every((s) => !s.ended)).toBe(true);

    await redis.launch();
    await waitFor(
      async () => (await fetchJson(`${g1.url}/readyz`)).status === 200,
      'readyz 200',
      15_000,
    );
    await waitFor(
      async () => (await fetchJson(`${g2.url}/readyz`)).status === 200,
      'readyz 200',
      15_000,
    );
    for (let i = 5; i < 10; i++) await publishHttp(i % 2 ? g1.url : g2.url, 'outage', undefined, i);
    await Promise.all(subs.map((s) => s.waitForEvents(10)));
    await sleep(100);
    for (const sub of subs) {
      expect(sub.data()).toEqual([...Array(10).keys()]);
      expect(sub.resets()).toEqual([]);
    }
  });

  it('sends reset history-lost when Redis comes back empty, then live events again', async () => {
    const [g1, g2] = await cluster(false);
    const sub = await SseClient.open(`${g2.url}/events?topic=amnesia`);
    clients.push(sub);
    for (let i = 0; i < 3; i++) await publishHttp(g1.url, 'amnesia', undefined, i);
    await sub.waitForEvents(3);
    const before = sub.lastId as string;

    await redis.kill();
    redis.wipe();
    await redis.launch();
    await waitFor(
      async () => (await fetchJson(`${g2.url}/readyz`)).status === 200,
      'readyz 200',
      15_000,
    );
    await waitFor(
      async () => (await fetchJson(`${g1.url}/readyz`)).status === 200,
      'readyz 200',
      15_000,
    );
    await sub.waitForEvents(4);
    expect(sub.resets()).toEqual([{ topics: ['amnesia'], reason: 'history-lost' }]);
    await publishHttp(g1.url, 'amnesia', undefined, 'after');
    await sub.waitForEvents(5);
    expect(sub.data()).toEqual([0, 1, 2, 'after']);
    // An old cursor is never taken as current: resuming from it resets too.
    const late = await SseClient.open(`${g1.url}/events?topic=amnesia`, {
      'last-event-id': before,
    });
    clients.push(late);
    await late.waitForEvents(1);
    expect(late.resets()).toEqual([{ topics: ['amnesia'], reason: 'history-lost' }]);
    // No replay of 'after', stored before the reset: only what follows it.
    await publishHttp(g2.url, 'amnesia', undefined, 'later');
    await late.waitForEvents(2);
    await sub.waitForEvents(6);
    expect(late.data()).toEqual(['later']);
    expect(sub.data()).toEqual([0, 1, 2, 'after', 'later']);
  });
});
