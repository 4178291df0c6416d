import {
  SseClient,
  fetchJson,
  publishHttp,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
} from '@streamcast/testing';

describe('SIGTERM drain', () => {
  it('turns not ready, refuses new streams with a retry, closes the open ones over the window, exits 0', async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix(), DRAIN_S: '2' };
    const [g, other] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    const clients: SseClient[] = [];
    try {
      for (let i = 0; i < 60; i++)
        clients.push(await SseClient.open(`${g.url}/events?topic=drain`));
      await publishHttp(other.url, 'drain', undefined, 'before');
      await Promise.all(clients.map((c) => c.waitForEvents(1)));
      const endedAt = new Map<SseClient, number>();
      const watch = setInterval(() => {
        for (const c of clients) if (c.ended && !endedAt.has(c)) endedAt.set(c, Date.now());
      }, 10);
      const exited = g.stop();
      await waitFor(
        async () => (await fetchJson(`${g.url}/readyz`)).status === 503,
        'readyz 503',
        2000,
      );
      const late = await SseClient.open(`${g.url}/events?topic=drain`);
      await late.waitForEnd();
      expect(late.status).toBe(200);
      expect(late.raw).toMatch(/^retry: \d+\n\n$/);
      expect(await exited).toBe(0);
      clearInterval(watch);
      for (const c of clients) if (!endedAt.has(c)) endedAt.set(c, Date.now());
      // Every stream was told to come back soon (a short retry) before it was closed.
      for (const c of clients) {
        expect(c.ended).toBe(true);
        expect(c.retries.length).toBe(2);
        expect(c.retries[1]).toBeLessThan(1000);
      }
      const times = [...endedAt.values()];
      // Closed in batches spread over the 2 s window, not all at once.
      expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(1000);
    } finally {
      for (const c of clients) c.close();
      await Promise.all([g.kill(), other.stop()]);
    }
  });
});
