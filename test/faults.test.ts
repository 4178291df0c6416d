import { createPublisher, type Publisher } from '@streamcast/publisher';
import {
  FaultProxy,
  RedisProcess,
  SseClient,
  fetchJson,
  sleep,
  startGatewayProcess,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';
import Redis from 'ioredis';

/**
 * Faults between gateways and Redis, with live subscribers on two gateways and a producer
 * publishing continuously. For every client: every event exactly once and in order, or a
 * `reset` before the first gap. Never silence.
 */
describe('faults between gateways and Redis', () => {
  let redis: RedisProcess;
  let proxy: FaultProxy | undefined;
  let gateways: GatewayProcess[] = [];
  let publisher: Publisher | undefined;
  const clients: SseClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];
    await publisher?.close();
    await proxy?.stop();
    proxy = undefined;
    await redis?.stop();
  });

  const env = (url: string) => ({
    REDIS_URL: url,
    RETRY_MS: '100',
    PROBE_INTERVAL_MS: '200',
    PROBE_TIMEOUT_MS: '600',
  });

  /** Publishes seq 0, 1, 2 … straight into Redis until stopped; returns how many were stored. */
  function produce(topic: string): { stop(): Promise<number> } {
    let running = true;
    let stored = 0;
    const loop = (async () => {
      while (running) {
        try {
          await (publisher as Publisher).publish(topic, 'n', { seq: stored });
          stored++;
        } catch {
          // Redis unreachable for a moment: the same seq is tried again.
        }
        await sleep(5);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return stored;
      },
    };
  }

  async function expectEveryEvent(subs: SseClient[], count: number) {
    for (const sub of subs) {
      await sub.waitForEvents(count, 20_000, 'n');
      await sleep(100);
      expect(sub.resets()).toEqual([]);
      expect(sub.data<{ seq: number }>('n').map((d) => d.seq)).toEqual([...Array(count).keys()]);
    }
  }

  async function readiness(g: GatewayProcess): Promise<number> {
    return (await fetchJson(`${g.url}/readyz`)).status;
  }

  it('repairs the gap when only the subscriber connections are killed, and nobody notices', async () => {
    redis = await RedisProcess.start();
    gateways = await Promise.all([startGatewayProcess(env(redis.url)), startGatewayProcess(env(redis.url))]);
    publisher = await createPublisher({ redisUrl: redis.url });
    const subs = await Promise.all(
      gateways.flatMap((g) => [0, 1].map(() => SseClient.open(`${g.url}/events?topic=kill-sub`))),
    );
    clients.push(...subs);
    const producer = produce('kill-sub');
    const admin = new Redis(redis.url);
    try {
      for (let round = 0; round < 3; round++) {
        await sleep(150);
        const killed = await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
        expect(Number(killed)).toBeGreaterThanOrEqual(2);
      }
    } finally {
      admin.disconnect();
    }
    await sleep(300);
    const stored = await producer.stop();
    expect(stored).toBeGreaterThan(50);
    await expectEveryEvent(subs, stored);
  });

  it('turns not ready while the link stalls past the probe bound, then recovers without loss', async () => {
    redis = await RedisProcess.start();
    proxy = await FaultProxy.start(redis.port);
    const [g1, g2] = (gateways = await Promise.all([
      startGatewayProcess(env(proxy.url)),
      startGatewayProcess(env(redis.url)),
    ])) as [GatewayProcess, GatewayProcess];
    publisher = await createPublisher({ redisUrl: redis.url });
    const subs = await Promise.all([
      SseClient.open(`${g1.url}/events?topic=stall`),
      SseClient.open(`${g1.url}/events?topic=stall&topic=other`),
      SseClient.open(`${g2.url}/events?topic=stall`),
    ]);
    clients.push(...subs);
    const producer = produce('stall');
    await sleep(200);
    proxy.stall();
    await waitFor(async () => (await readiness(g1)) === 503, 'g1 not ready while stalled', 10_000);
    expect(await readiness(g2)).toBe(200);
    await sleep(500);
    proxy.resume();
    await waitFor(async () => (await readiness(g1)) === 200, 'g1 ready again', 20_000);
    await sleep(300);
    const stored = await producer.stop();
    await expectEveryEvent(subs, stored);
    expect(subs.every((s) => !s.ended)).toBe(true);
  });
});
