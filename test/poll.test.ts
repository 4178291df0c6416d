import {
  fetchJson,
  publishHttp,
  readMetric,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';

/**
 * GET /poll, the long-polling fallback (docs/client.md, "Long polling"): the same cursor, resume and
 * reset as a stream, as JSON batches, across two gateways on one Redis.
 */
describe('long polling', () => {
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix() };
    [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  interface Answer {
    events: Array<{ id: string; event: string; data: any }>;
    lastEventId: string;
    retry: number;
  }

  async function poll(gateway: GatewayProcess, query: string): Promise<Answer> {
    const res = await fetchJson(`${gateway.url}/poll?${query}`);
    if (res.status !== 200)
      throw new Error(`poll answered ${res.status}: ${JSON.stringify(res.body)}`);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    return res.body as Answer;
  }

  it('answers at once without a cursor, then replays what followed it, on any gateway', async () => {
    const started = Date.now();
    const head = await poll(a, 'topic=p1');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(head.events).toEqual([]);
    expect(head.retry).toBe(3000);
    const ids = [
      await publishHttp(a.url, 'p1', 'tick', { n: 1, text: 'two\nlines' }),
      await publishHttp(a.url, 'p1', undefined, { n: 2 }),
      await publishHttp(a.url, 'p1', 'tick', null),
    ];
    const next = await poll(b, `topic=p1&lastEventId=${encodeURIComponent(head.lastEventId)}`);
    expect(next.events).toEqual([
      { id: ids[0], event: 'tick', data: { n: 1, text: 'two\nlines' } },
      { id: ids[1], event: 'message', data: { n: 2 } },
      { id: ids[2], event: 'tick', data: null },
    ]);
    expect(next.lastEventId).toBe(ids[2]);
    // The Last-Event-ID header is honoured too (and wins over the query).
    const res = await fetchJson(
      `${a.url}/poll?topic=p1&timeout=0&lastEventId=${encodeURIComponent(head.lastEventId)}`,
      {
        headers: { 'last-event-id': ids[1] as string },
      },
    );
    expect(res.body.events.map((e: { id: string }) => e.id)).toEqual([ids[2]]);
  });

  it('waits for the next event, or answers empty after the timeout', async () => {
    const head = await poll(a, 'topic=p2');
    const cursor = encodeURIComponent(head.lastEventId);
    let started = Date.now();
    const empty = await poll(a, `topic=p2&lastEventId=${cursor}&timeout=1`);
    const waited = Date.now() - started;
    expect(empty).toEqual({ events: [], lastEventId: head.lastEventId, retry: 3000 });
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(5000);

    started = Date.now();
    const pending = poll(b, `topic=p2&lastEventId=${cursor}&timeout=20`);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const id = await publishHttp(a.url, 'p2', 'late', { x: 1 });
    const answer = await pending;
    expect(answer.events).toEqual([{ id, event: 'late', data: { x: 1 } }]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('answers at most 500 events at a time, contiguously', async () => {
    const head = await poll(a, 'topic=p3');
    const ids: string[] = [];
    for (let i = 0; i < 620; i++) ids.push(await publishHttp(a.url, 'p3', undefined, { i }));
    const first = await poll(b, `topic=p3&lastEventId=${encodeURIComponent(head.lastEventId)}`);
    expect(first.events).toHaveLength(500);
    expect(first.lastEventId).toBe(ids[499]);
    const second = await poll(b, `topic=p3&lastEventId=${encodeURIComponent(first.lastEventId)}`);
    expect([...first.events, ...second.events].map((e) => e.data.i)).toEqual(ids.map((_, i) => i));
  });

  it('covers several topics with one cursor, and resets what it cannot place', async () => {
    const head = await poll(a, 'topic=p4a&topic=p4b');
    await publishHttp(a.url, 'p4b', 'x', 1);
    await publishHttp(a.url, 'p4a', 'x', 2);
    const both = await poll(
      b,
      `topic=p4a&topic=p4b&lastEventId=${encodeURIComponent(head.lastEventId)}`,
    );
    expect(both.events.map((e) => e.data).sort()).toEqual([1, 2]);
    const again = await poll(
      a,
      `topic=p4b&topic=p4a&timeout=0&lastEventId=${encodeURIComponent(both.lastEventId)}`,
    );
    expect(again.events).toEqual([]);

    // Well-formed (the previous format, one topic), unknown epoch: a reset for the topic, and
    // (as on a stream) no replay: it continues from there.
    const reset = await poll(a, 'topic=p4a&lastEventId=1~0.zzzzzz.1.0');
    expect(reset.events.map((e) => [e.event, e.data])).toEqual([
      ['reset', { topics: ['p4a'], reason: 'history-lost' }],
    ]);
    expect(reset.lastEventId).toBe(reset.events[0]?.id);
    await publishHttp(a.url, 'p4a', 'x', 3);
    const after = await poll(b, `topic=p4a&lastEventId=${encodeURIComponent(reset.lastEventId)}`);
    expect(after.events.map((e) => [e.event, e.data])).toEqual([['x', 3]]);
  });

  it('refuses bad input with the API errors, before anything is held', async () => {
    const cases: Array<[string, number, string]> = [
      ['', 400, 'TOPIC_MISSING'],
      ['topic=a&timeout=31', 400, 'PARAM_INVALID'],
      ['topic=a&timeout=-1', 400, 'PARAM_INVALID'],
      ['topic=a&timeout=1.5', 400, 'PARAM_INVALID'],
      ['topic=a&lastEventId=not%20a%20cursor', 400, 'CURSOR_INVALID'],
      ['topic=bad%20topic', 400, 'TOPIC_INVALID'],
    ];
    for (const [query, status, code] of cases) {
      const res = await fetchJson(`${a.url}/poll?${query}`);
      expect({ query, status: res.status, code: res.body?.error?.code }).toEqual({
        query,
        status,
        code,
      });
    }
  });

  it('lets go of a poll whose client left', async () => {
    const head = await poll(a, 'topic=p5');
    const controller = new AbortController();
    const pending = fetch(
      `${a.url}/poll?topic=p5&timeout=30&lastEventId=${encodeURIComponent(head.lastEventId)}`,
      {
        signal: controller.signal,
      },
    ).catch(() => undefined);
    await waitFor(
      async () => (await readMetric(a.url, 'sse_connections')) >= 1,
      'the poll to be held',
    );
    controller.abort();
    await pending;
    await waitFor(
      async () => (await readMetric(a.url, 'sse_connections')) === 0,
      'the poll to be released',
    );
  });
});
