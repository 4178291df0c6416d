import { request } from 'node:http';
import { redisConnectionOptions } from '@streamcast/engine-redis';
import { createPublisher, type Publisher } from '@streamcast/publisher';
import {
  FaultProxy,
  RedisProcess,
  SentinelCluster,
  SseClient,
  expectContiguousOrReset,
  fetchJson,
  expectExactlyAfterResets,
  storedSeqs,
  readMetric,
  sleep,
  startGatewayProcess,
  startProducerLoop,
  waitFor,
  type GatewayProcess,
  type ProducerLoop,
  type SseEvent,
} from '@streamcast/testing';
import { createParser } from 'eventsource-parser';
import Redis from 'ioredis';

/**
 * Faults between gateways and Redis, with live subscribers on two gateways and a producer
 * publishing continuously. For every client: every event exactly once and in order, or a
 * `reset` before the first gap. Never silence.
 */
describe('faults between gateways and Redis', () => {
  let redis: RedisProcess | undefined;
  let proxy: FaultProxy | undefined;
  let gateways: GatewayProcess[] = [];
  let publisher: Publisher | undefined;
  let producer: ProducerLoop | undefined;
  const clients: SseClient[] = [];

  afterEach(async () => {
    await producer?.stop();
    producer = undefined;
    for (const client of clients.splice(0)) client.close();
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];
    await publisher?.close();
    publisher = undefined;
    await proxy?.stop();
    proxy = undefined;
    await redis?.stop();
    redis = undefined;
  });

  const env = (url: string) => ({
    REDIS_URL: url,
    RETRY_MS: '100',
    PROBE_INTERVAL_MS: '200',
    PROBE_TIMEOUT_MS: '600',
  });

  /** Publishes `{ seq }` 0, 1, 2 … on `topic` straight into Redis until stopped. */
  function produce(topic: string, pad = 0): ProducerLoop {
    const fill = 'x'.repeat(pad);
    producer = startProducerLoop((seq) =>
      (publisher as Publisher).publish(topic, 'n', pad ? { seq, pad: fill } : { seq }),
    );
    return producer;
  }

  async function expectEveryEvent(subs: SseClient[], count: number) {
    for (const sub of subs) {
      await sub.waitForEvents(count, 20_000, 'n');
      await sleep(100);
      expect(sub.resets()).toEqual([]);
      expect(sub.data<{ seq: number }>('n').map((d) => d.seq)).toEqual([...Array(count).keys()]);
    }
  }

  /** Until every client has the producer's last event. */
  async function waitForLast(subs: SseClient[], last: number) {
    for (const sub of subs) {
      await waitFor(
        () => sub.data<{ seq: number }>('n').at(-1)?.seq === last,
        () => `seq ${last} (got up to ${sub.data<{ seq: number }>('n').at(-1)?.seq})`,
        20_000,
      );
    }
    await sleep(100);
  }

  async function readiness(g: GatewayProcess): Promise<number> {
    return (await fetchJson(`${g.url}/readyz`)).status;
  }

  /**
   * kill -9 of Redis under continuous publishing (optionally losing its data): both gateways
   * turn not ready, Redis comes back, both are ready again and 50 more events are stored.
   */
  async function killAndRestart(
    server: RedisProcess,
    loop: ProducerLoop,
    { wipe }: { wipe: boolean },
  ) {
    await server.kill();
    if (wipe) server.wipe();
    await waitFor(
      async () => (await Promise.all(gateways.map(readiness))).every((s) => s === 503),
      'both gateways not ready while Redis is down',
    );
    const storedBefore = loop.stored;
    await sleep(300);
    await server.launch();
    for (const g of gateways) {
      await waitFor(async () => (await readiness(g)) === 200, 'readiness back', 15_000);
    }
    await waitFor(
      () => loop.stored >= storedBefore + 50,
      '50 events stored after the restart',
      15_000,
    );
  }

  it('repairs the gap when only the subscriber connections are killed, and nobody notices', async () => {
    redis = await RedisProcess.start();
    gateways = await Promise.all([
      startGatewayProcess(env(redis.url)),
      startGatewayProcess(env(redis.url)),
    ]);
    publisher = await createPublisher({ redisUrl: redis.url });
    const subs = await Promise.all(
      gateways.flatMap((g) => [0, 1].map(() => SseClient.open(`${g.url}/events?topic=kill-sub`))),
    );
    clients.push(...subs);
    const producer = produce('kill-sub');
    const admin = new Redis((redis as RedisProcess).url);
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
    const link = proxy;
    publisher = await createPublisher({ redisUrl: redis.url });
    const subs = await Promise.all([
      SseClient.open(`${g1.url}/events?topic=stall`),
      SseClient.open(`${g1.url}/events?topic=stall&topic=other`),
      SseClient.open(`${g2.url}/events?topic=stall`),
    ]);
    clients.push(...subs);
    const producer = produce('stall');
    await sleep(200);
    link.stall();
    await waitFor(async () => (await readiness(g1)) === 503, 'g1 not ready while stalled', 10_000);
    expect(await readiness(g2)).toBe(200);
    await sleep(500);
    link.resume();
    await waitFor(async () => (await readiness(g1)) === 200, 'g1 ready again', 20_000);
    await sleep(300);
    const stored = await producer.stop();
    await expectEveryEvent(subs, stored);
    expect(subs.every((s) => !s.ended)).toBe(true);
  });

  /** Subscribers on two gateways: single-topic ones, and one on `topic` plus a quiet topic. */
  async function subscribers(topic: string): Promise<SseClient[]> {
    const [g1, g2] = gateways as [GatewayProcess, GatewayProcess];
    const subs = await Promise.all([
      SseClient.open(`${g1.url}/events?topic=${topic}`),
      SseClient.open(`${g1.url}/events?topic=${topic}&topic=quiet`),
      SseClient.open(`${g2.url}/events?topic=${topic}`),
      SseClient.open(`${g2.url}/events?topic=${topic}`),
    ]);
    clients.push(...subs);
    return subs;
  }

  it('resets every subscriber when Redis is killed and restarts empty, then delivers live events again', async () => {
    const server = (redis = await RedisProcess.start());
    gateways = await Promise.all([
      startGatewayProcess(env(server.url)),
      startGatewayProcess(env(server.url)),
    ]);
    publisher = await createPublisher({ redisUrl: server.url, timeoutMs: 1000 });
    const subs = await subscribers('amnesia');
    const loop = produce('amnesia');
    await waitFor(
      () => subs.every((s) => s.data('n').length >= 50),
      'every subscriber at 50 events',
      20_000,
    );

    await killAndRestart(server, loop, { wipe: true });
    const stored = await loop.stop();
    await waitForLast(subs, stored - 1);
    for (const sub of subs) {
      const report = expectContiguousOrReset(sub, { firstSeq: 0 });
      // The quiet topic lost its (empty) history too, and says so on its own.
      expect(sub.resets().filter((r) => r.topics.includes('amnesia'))).toEqual([
        { topics: ['amnesia'], reason: 'history-lost' },
      ]);
      expect(report.resets.every((r) => r === 'history-lost')).toBe(true);
      // Live from the reset on: exactly what was stored after it, no replay of the new history.
      expect(expectExactlyAfterResets(sub.events, 'amnesia', storedSeqs(loop.ids, 'amnesia'))).toBe(
        1,
      );
      expect(sub.ended).toBe(false);
    }
    for (const g of gateways)
      expect(await readMetric(g.url, 'sse_resets_total')).toBeGreaterThanOrEqual(2);
  });

  it('loses nothing and resets nobody when Redis restarts from its append-only file', async () => {
    const server = (redis = await RedisProcess.start({ appendonly: true }));
    gateways = await Promise.all([
      startGatewayProcess(env(server.url)),
      startGatewayProcess(env(server.url)),
    ]);
    publisher = await createPublisher({ redisUrl: server.url, timeoutMs: 1000 });
    const subs = await subscribers('durable');
    const loop = produce('durable');
    await waitFor(
      () => subs.every((s) => s.data('n').length >= 50),
      'every subscriber at 50 events',
      20_000,
    );

    await killAndRestart(server, loop, { wipe: false });
    const stored = await loop.stop();
    await waitForLast(subs, stored - 1);
    for (const sub of subs) {
      // Every acknowledged seq, in order, once (a publish whose reply died with Redis may have
      // been stored and is retried: the same seq as a second event, never the same event twice).
      const report = expectContiguousOrReset(sub, { firstSeq: 0 });
      expect(report.resets).toEqual([]);
      expect(new Set(report.seqs).size).toBe(stored);
      expect(report.retriedTwice).toBeLessThanOrEqual(1);
    }
  });

  it('cuts off a client that stops reading at its bound, frees it, and lets it resume losslessly', async () => {
    const server = (redis = await RedisProcess.start());
    const [g1, g2] = (gateways = await Promise.all([
      startGatewayProcess({ ...env(server.url), MAX_QUEUE_BYTES: '65536' }),
      startGatewayProcess({ ...env(server.url), MAX_QUEUE_BYTES: '65536' }),
    ])) as [GatewayProcess, GatewayProcess];
    // Retention above what this test publishes: the slow client resumes from far behind.
    publisher = await createPublisher({
      redisUrl: server.url,
      retention: { maxLen: 100_000, maxAgeS: 3600 },
    });
    const slow = await PausedClient.open(`${g1.url}/events?topic=firehose`);
    const others = await Promise.all([
      SseClient.open(`${g1.url}/events?topic=firehose`),
      SseClient.open(`${g2.url}/events?topic=firehose`),
      SseClient.open(`${g2.url}/events?topic=firehose&topic=quiet`),
    ]);
    clients.push(...others);
    await waitFor(
      async () => (await readMetric(g1.url, 'sse_connections')) === 2,
      'two streams on g1',
    );

    // 16 KiB events until the gateway gives up on the slow client: first the kernel's socket
    // buffers fill, then its send queue passes MAX_QUEUE_BYTES.
    const pad = 'x'.repeat(16 * 1024);
    let seq = 0;
    while ((await readMetric(g1.url, 'sse_slow_client_disconnects_total')) < 1) {
      if (seq >= 3000)
        throw new Error(`published ${seq} events of 16 KiB and the slow client is still connected`);
      for (let i = 0; i < 20; i++, seq++) await publisher.publish('firehose', 'n', { seq, pad });
    }
    for (let i = 0; i < 20; i++, seq++) await publisher.publish('firehose', 'n', { seq, pad });
    const total = seq;

    // Freed: the gateway holds only the client that reads.
    await waitFor(
      async () => (await readMetric(g1.url, 'sse_connections')) === 1,
      'g1 down to one stream',
    );
    expect(await readMetric(g1.url, 'sse_slow_client_disconnects_total')).toBe(1);
    expect(await readMetric(g2.url, 'sse_slow_client_disconnects_total')).toBe(0);
    await waitForLast(others, total - 1);
    for (const other of others) {
      const report = expectContiguousOrReset(other, { firstSeq: 0 });
      expect(report.seqs.length).toBe(total);
      expect(report.resets).toEqual([]);
      expect(other.ended).toBe(false);
    }

    // It reads again: what the kernel held, then the end of the stream; then it resumes.
    const received = await slow.readToEnd();
    const lastId = received.at(-1)?.id as string;
    expect(received.length).toBeGreaterThan(0);
    expect(received.length).toBeLessThan(total);
    process.stdout.write(
      `slow client: cut after ${total - 20} events of 16 KiB; had read ${received.length}\n`,
    );
    const resumed = await SseClient.open(`${g1.url}/events?topic=firehose`, {
      'last-event-id': lastId,
    });
    clients.push(resumed);
    await waitForLast([resumed], total - 1);
    const whole = expectContiguousOrReset(
      { events: [...received, ...resumed.events] },
      { firstSeq: 0 },
    );
    expect(whole.resets).toEqual([]);
    expect(whole.seqs).toEqual([...Array(total).keys()]);
  });
});

/**
 * Redis Sentinel: one master, one replica whose replication a test can stall, Sentinels. Gateways
 * and the producer find the master through the Sentinels and follow it through a failover.
 */
describe('Redis Sentinel failover', () => {
  let cluster: SentinelCluster | undefined;
  let gateways: GatewayProcess[] = [];
  let publisher: Publisher | undefined;
  let producer: ProducerLoop | undefined;
  const clients: SseClient[] = [];

  afterEach(async () => {
    await producer?.stop();
    for (const client of clients.splice(0)) client.close();
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];
    await publisher?.close();
    publisher = undefined;
    await cluster?.stop();
    cluster = undefined;
  });

  it('publishes on the new master; clients get every surviving event, and a reset where writes were lost', async () => {
    const sentinels = (cluster = await SentinelCluster.start({
      sentinels: 3,
      proxyReplication: true,
    }));
    const env = {
      ...sentinels.env,
      RETRY_MS: '100',
      PROBE_INTERVAL_MS: '200',
      PROBE_TIMEOUT_MS: '600',
    };
    const [g1, g2] = (gateways = await Promise.all([
      startGatewayProcess(env),
      startGatewayProcess(env),
    ])) as [GatewayProcess, GatewayProcess];
    publisher = await createPublisher({
      redisOptions: redisConnectionOptions({
        REDIS_SENTINELS: sentinels.sentinels,
        REDIS_SENTINEL_NAME: sentinels.name,
      }),
      timeoutMs: 1000,
    });
    const subs = await Promise.all([
      SseClient.open(`${g1.url}/events?topic=failover`),
      SseClient.open(`${g1.url}/events?topic=failover&topic=quiet`),
      SseClient.open(`${g2.url}/events?topic=failover`),
      SseClient.open(`${g2.url}/events?topic=failover`),
    ]);
    clients.push(...subs);
    const pub = publisher;
    const loop = (producer = startProducerLoop((seq) => pub.publish('failover', 'n', { seq })));
    const seqsOf = (sub: SseClient) => sub.data<{ seq: number }>('n').map((d) => d.seq);
    await waitFor(
      () => subs.every((s) => seqsOf(s).length >= 50),
      'every subscriber at 50 events',
      20_000,
    );

    // The replica falls behind; what the master acknowledges from now on, a failover loses.
    sentinels.stallReplication();
    const stalledAt = loop.stored;
    await waitFor(
      () => subs.every((s) => (seqsOf(s).at(-1) ?? 0) >= stalledAt + 30),
      'every subscriber at 30 events past the stall',
      20_000,
    );
    const failoverMs = await sentinels.killMasterAndFailOver();
    const storedAtFailover = loop.stored;
    for (const g of [g1, g2]) {
      // Should it time out, the message carries what the gateway said and logged meanwhile.
      let answer = '';
      await waitFor(
        async () => {
          const res = await fetchJson(`${g.url}/readyz`);
          answer = `${res.status} ${JSON.stringify(res.body)}`;
          return res.status === 200;
        },
        () =>
          `readiness on the new master (${g.url}/readyz answered ${answer}; the gateway logged:\n` +
          `${g.output().slice(-4000)})`,
        // Under a loaded CI machine, once in many runs, 20 s was not enough (not reproduced
        // since, loaded or not: ready 2-4 s after the failover).
        30_000,
      );
    }
    await waitFor(
      () => loop.stored >= storedAtFailover + 50,
      '50 events stored on the new master',
      20_000,
    );
    const stored = await loop.stop();

    // What the surviving side holds, and which acknowledged seqs it lost.
    const survivor = new Redis(sentinels.replica.url);
    let surviving: number[];
    try {
      const entries = (await survivor.xrange('sse:{failover}:log', '-', '+')) as Array<
        [string, string[]]
      >;
      surviving = entries.map(
        ([, fields]) =>
          (JSON.parse(fields[fields.indexOf('d') + 1] as string) as { seq: number }).seq,
      );
    } finally {
      survivor.disconnect();
    }
    const kept = new Set(surviving);
    const lost = [...Array(stored).keys()].filter((seq) => !kept.has(seq));
    expect(lost.length).toBeGreaterThanOrEqual(30);
    expect(surviving.at(-1)).toBe(stored - 1);

    for (const sub of subs) {
      await waitFor(
        () => seqsOf(sub).at(-1) === stored - 1,
        () => `seq ${stored - 1} (got up to ${seqsOf(sub).at(-1)})`,
        20_000,
      );
    }
    await sleep(100);
    let reset = 0;
    for (const sub of subs) {
      const report = expectContiguousOrReset(sub, { firstSeq: 0 });
      expect(report.resets.every((r) => r === 'history-lost' || r === 'cursor-unknown')).toBe(true);
      // After any event it received that the failover lost, a reset before the next one …
      let sawLost = false;
      for (const e of sub.events) {
        if (e.event === 'reset') {
          if (sawLost) reset++;
          sawLost = false;
        } else if (e.event === 'n') {
          const seq = (JSON.parse(e.data) as { seq: number }).seq;
          if (kept.has(seq) && sawLost)
            throw new Error(`seq ${seq} follows lost writes without a reset`);
          if (!kept.has(seq)) sawLost = true;
        }
      }
      expect(sawLost).toBe(false);
      // … and after each reset, exactly the surviving events stored after the reset's position:
      // no replay of what the page reloads, nothing missing, nothing twice.
      const survivors = storedSeqs(loop.ids, 'failover').filter((s) => kept.has(s.seq));
      expect(expectExactlyAfterResets(sub.events, 'failover', survivors)).toBe(
        sub.resets().filter((r) => r.topics.includes('failover')).length,
      );
    }
    // The clients saw the stalled writes live, so each of them was reset.
    expect(reset).toBe(subs.length);
    process.stdout.write(
      `sentinel failover: ${failoverMs} ms, ${stored} acknowledged, ${lost.length} lost\n`,
    );
  });
});

/** A stream client that reads the response head and then stops reading, until told to. */
class PausedClient {
  private raw = '';
  private closed: Promise<void>;

  private constructor(private readonly res: import('node:http').IncomingMessage) {
    this.closed = new Promise((resolve) => res.once('close', () => resolve()));
    res.on('error', () => {});
  }

  static open(url: string): Promise<PausedClient> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream' } });
      req.once('error', reject);
      req.once('response', (res) => {
        const client = new PausedClient(res);
        res.setEncoding('utf8');
        res.once('data', (chunk: string) => {
          // The retry line: the stream is live. From here on nothing is read.
          client.raw += chunk;
          res.pause();
          resolve(client);
        });
      });
      req.end();
    });
  }

  /** Reads everything the kernel still holds until the gateway's close; the events in it. */
  async readToEnd(): Promise<SseEvent[]> {
    this.res.on('data', (chunk: string) => (this.raw += chunk));
    this.res.resume();
    await this.closed;
    const events: SseEvent[] = [];
    const parser = createParser({
      onEvent: (e) => events.push({ id: e.id, event: e.event ?? 'message', data: e.data }),
    });
    // A last event cut off mid-frame has no blank line after it: the parser drops it.
    parser.feed(this.raw);
    return events;
  }
}
