import { join } from 'node:path';
import { validateEvent } from '@streamcast/events';
import { topicFingerprint } from '@streamcast/protocol';
import {
  SseClient,
  fetchJson,
  publishHttp,
  startGatewayProcess,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';

/**
 * `npm start`'s program: one gateway on the embedded engine with every producer inside. The
 * seed's routes must each carry live, well-formed events within a few seconds.
 */
describe('npm start (gateway + producers, embedded engine)', () => {
  let app: GatewayProcess;
  const clients: SseClient[] = [];

  beforeAll(async () => {
    app = await startGatewayProcess(
      {},
      { script: join(__dirname, '..', 'apps', 'standalone', 'src', 'main.ts') },
    );
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    expect(await app.stop()).toBe(0);
  });

  const routes: Array<[string, string, string[]]> = [
    ['/api/events', 'events', ['message']],
    ['/api/stocks/aapl', 'stocks/AAPL', ['priceUpdate']],
    ['/api/blog/updates', 'blog', ['newPost', 'postUpdate']],
    ['/api/chat-updates', 'chat', ['new-message', 'user-joined', 'user-left']],
    ['/api/match/123/live-updates', 'matches/123', ['scoreUpdate', 'matchStatus', 'matchEvent']],
    ['/api/system/monitoring', 'system/monitoring', ['cpuUpdate', 'memoryUpdate']],
    ['/api/social/updates', 'social', ['newPost', 'newLike', 'newComment']],
  ];

  it.each(routes)(
    '%s carries live %s events with the seed fields',
    async (route, topic, events) => {
      const client = await SseClient.open(`${app.url}${route}`);
      clients.push(client);
      expect(client.status).toBe(200);
      const isFeedEvent = (e: { event: string }) => events.includes(e.event);
      const start = route === '/api/chat-updates' ? 1 : 0;
      await client.waitForEvents(start + 1, 15_000);
      await waitFor(
        () => client.events.some(isFeedEvent),
        `a ${events.join('/')} event on ${route}`,
        15_000,
      );
      for (const event of client.events.filter(isFeedEvent)) {
        expect(() => validateEvent(topic, event.event, JSON.parse(event.data))).not.toThrow();
        // A one-topic connection's cursor: the topic's entry alone, as its publish returned.
        expect(event.id).toMatch(
          new RegExp(`^2~${topicFingerprint(topic)}\\.[0-9a-z]+\\.[0-9a-z]+\\.[0-9a-z]+$`),
        );
      }
    },
  );

  it('greets every chat connection first, with no id and nothing stored', async () => {
    const client = await SseClient.open(`${app.url}/api/chat-updates`);
    clients.push(client);
    await client.waitForEvents(1);
    expect(client.events[0]).toEqual({
      id: undefined,
      event: 'message',
      data: JSON.stringify({ status: 'connected', message: 'SSE 连接已建立' }),
    });
  });

  it('serves upload progress per file id', async () => {
    const client = await SseClient.open(`${app.url}/api/upload-progress/file-1`);
    clients.push(client);
    const id = await publishHttp(app.url, 'uploads/file-1', 'progress', {
      percent: 50,
      status: 'processing',
    });
    await client.waitForEvents(1);
    expect(client.events).toEqual([
      { id, event: 'progress', data: '{"percent":50,"status":"processing"}' },
    ]);
  });

  it.each([
    ['/api/stocks/AA%20PL', 'PARAM_INVALID'],
    ['/api/stocks/ABCDEFGHIJKLM', 'PARAM_INVALID'],
    ['/api/match/..%2F..%2Fetc/live-updates', 'PARAM_INVALID'],
    ['/api/match/%E2%9C%93/live-updates', 'PARAM_INVALID'],
    ['/api/upload-progress/a.b', 'PARAM_INVALID'],
  ])('refuses %s with 400 %s', async (route, code) => {
    const res = await fetchJson(`${app.url}${route}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
  });
});
