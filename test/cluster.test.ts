import { createPublisher, type Publisher } from '@streamcast/publisher';
import { SseClient, fetchJson, readMetric, sleep, waitFor } from '@streamcast/testing';
import { EventSource, type FetchLike } from 'eventsource';
import { Agent, fetch as undiciFetch } from 'undici';
import { startCluster, type Cluster } from '../scripts/cluster';

/**
 * The cluster as users run it, from real processes: redis-server, 3 gateways, nginx in front
 * (the template docker-compose.yml uses; started by the code behind `npm run cluster`), a
 * producer publishing seq 0, 1, 2 … straight into Redis, and 300 browser-like EventSource
 * subscribers connected through nginx. Each failure below must cost no subscriber an event, and
 * none may get one twice: every subscriber counts seq first … last with no gap and no repeat.
 */

const SUBSCRIBERS = 300;
const PUBLISH_INTERVAL_MS = 40;
const DRAIN_S = 2;

interface Producer {
  readonly stored: number;
  stop(): Promise<number>;
}

/** Publishes {seq} one after another; a seq is stored before the next is sent. */
function startProducer(publisher: Publisher, topic: string): Producer {
  let stored = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      // Redis stays up in these tests: a failed publish is a failure of the test.
      await publisher.publish(topic, 'n', { seq: stored });
      stored++;
      await sleep(PUBLISH_INTERVAL_MS);
    }
  })();
  return {
    get stored() {
      return stored;
    },
    stop: async () => {
      running = false;
      await loop;
      return stored;
    },
  };
}

class Subscriber {
  readonly source: EventSource;
  first: number | undefined;
  last: number | undefined;
  count = 0;
  readonly problems: string[] = [];
  /** Events the producer had stored when the stream first opened. */
  storedAtOpen: number | undefined;
  /** Since when the connection is down (the first `error` after an event). */
  private downSince: number | undefined;
  /** Each reconnection: when it was back (its next event) and how long it had been down. */
  readonly reconnects: Array<{ at: number; ms: number }> = [];

  constructor(url: string, producer: Producer, fetch: FetchLike) {
    this.source = new EventSource(url, { fetch });
    this.source.addEventListener('open', () => {
      this.storedAtOpen ??= producer.stored;
    });
    this.source.addEventListener('error', () => {
      this.downSince ??= Date.now();
    });
    this.source.addEventListener('reset', (e) => this.problems.push(`reset ${e.data}`));
    this.source.addEventListener('n', (e) => {
      const now = Date.now();
      if (this.downSince !== undefined) {
        this.reconnects.push({ at: now, ms: now - this.downSince });
        this.downSince = undefined;
      }
      const seq = (JSON.parse(e.data) as { seq: number }).seq;
      if (this.last !== undefined && seq !== this.last + 1) {
        this.problems.push(
          seq <= this.last
            ? `seq ${seq} again after ${this.last}`
            : `seq ${seq} after ${this.last}: ${seq - this.last - 1} lost`,
        );
      }
      this.first ??= seq;
      this.last = seq;
      this.count++;
    });
  }

  /** Forget the reconnections of the setup (an `error` while first connecting). */
  startMeasuring(): void {
    this.reconnects.length = 0;
    this.downSince = undefined;
  }
}

interface ScenarioReport {
  scenario: string;
  subscribers: number;
  published: number;
  reconnected: number;
  p50: number;
  p99: number;
  max: number;
  /** From the first reconnection to the last. */
  spreadMs: number;
  lost: number;
  duplicates: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

describe('the cluster: 3 gateways behind nginx, 300 subscribers, continuous publishing', () => {
  let cluster: Cluster;
  let publisher: Publisher;
  const reports: ScenarioReport[] = [];

  beforeAll(async () => {
    cluster = await startCluster({
      gateways: 3,
      port: 0,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn' },
      gatewayEnv: { RETRY_MS: '200', DRAIN_S: String(DRAIN_S) },
      producers: false,
      uploadWorker: false,
      readyTimeoutMs: 120_000,
    });
    publisher = await createPublisher({ redisUrl: cluster.redisUrl });
  }, 240_000);

  afterAll(async () => {
    await publisher?.close();
    await cluster?.stop();
    if (reports.length > 0) {
      const widths = [5, 6, 5, 6, 6, 6, 7, 5, 5];
      const line = (first: string, cells: Array<string | number>) =>
        [first.padEnd(34), ...cells.map((c, i) => String(c).padStart(widths[i] as number))].join(
          ' ',
        );
      const rows = reports.map((r) =>
        line(r.scenario, [
          r.subscribers,
          r.published,
          r.reconnected,
          r.p50,
          r.p99,
          r.max,
          r.spreadMs,
          r.lost,
          r.duplicates,
        ]),
      );
      console.log(
        [
          `cluster failover (nginx least_conn, 3 gateways, RETRY_MS 200, DRAIN_S ${DRAIN_S}, ` +
            `one event every ${PUBLISH_INTERVAL_MS} ms)`,
          'reconnect = from the connection dropping to the next event on the new one (ms)',
          line('scenario', [
            'subs',
            'events',
            'recon',
            'p50',
            'p99',
            'max',
            'spread',
            'lost',
            'dupes',
          ]),
          ...rows,
        ].join('\n'),
      );
    }
  });

  /** Every gateway running and in rotation (a previous scenario may have left one down). */
  async function allGatewaysUp(): Promise<void> {
    for (const [i, g] of cluster.gateways.entries()) {
      if (!g.running) await cluster.startGateway(i);
      else if (!g.inRotation) await cluster.setInRotation(i, true);
    }
  }

  /**
   * 300 subscribers through nginx on a topic of their own while the producer publishes; runs
   * `action`, waits until every subscriber has caught up with the end of the publishing, and
   * checks each: seq first … last, every one once, in order, none lost, no reset.
   */
  async function scenario(name: string, action: () => Promise<void>): Promise<ScenarioReport> {
    await allGatewaysUp();
    const topic = `cluster-${name.replace(/[^a-z0-9]+/gi, '-')}`;
    const producer = startProducer(publisher, topic);
    const subscribers: Subscriber[] = [];
    // The subscribers' own connection pool, closed at the end: like new browsers, they bring no
    // idle connection that an earlier scenario opened to nginx (and to its config of then).
    const agent = new Agent();
    const fetch: FetchLike = (input, init) => undiciFetch(input, { ...init, dispatcher: agent });
    let stopped = false;
    try {
      for (let i = 0; i < SUBSCRIBERS; i++) {
        subscribers.push(new Subscriber(`${cluster.url}/events?topic=${topic}`, producer, fetch));
      }
      await waitFor(
        () => subscribers.every((s) => s.count > 0),
        () =>
          `every subscriber's first event (${subscribers.filter((s) => s.count > 0).length}/${SUBSCRIBERS})`,
        60_000,
      );
      // Spread over the gateways by least_conn.
      const held = await Promise.all(
        cluster.gateways.map((g) => readMetric(g.url, 'sse_connections')),
      );
      expect(held.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(SUBSCRIBERS);
      for (const n of held) expect(n).toBeGreaterThanOrEqual(SUBSCRIBERS / 3 / 2);
      for (const s of subscribers) s.startMeasuring();

      await action();

      // Everyone is back and has what was published since.
      const after = producer.stored + 10;
      await waitFor(
        () => subscribers.every((s) => (s.last ?? -1) >= after),
        () => {
          const there = subscribers.filter((s) => (s.last ?? -1) >= after).length;
          const closed = subscribers.filter(
            (s) => s.source.readyState === EventSource.CLOSED,
          ).length;
          return `every subscriber at seq ${after} (${there}/${SUBSCRIBERS}; given up: ${closed})`;
        },
        60_000,
      );
      const published = await producer.stop();
      stopped = true;
      await waitFor(
        () => subscribers.every((s) => s.last === published - 1),
        () => `every subscriber at the last seq ${published - 1}`,
        30_000,
      );
      await sleep(300); // a duplicate after the last event would arrive meanwhile

      const reconnects = subscribers.flatMap((s) => s.reconnects);
      const times = reconnects.map((r) => r.ms).sort((a, b) => a - b);
      const instants = reconnects.map((r) => r.at);
      let lost = 0;
      let duplicates = 0;
      for (const s of subscribers) {
        const first = s.first as number;
        // Every event published after the stream began (its first bytes) must be there; the one
        // in flight at that moment may have been stored just before.
        expect(first).toBeLessThanOrEqual((s.storedAtOpen as number) + 1);
        const expected = published - first;
        lost += Math.max(0, expected - s.count);
        duplicates += Math.max(0, s.count - expected);
        for (const p of s.problems) {
          if (p.includes('again')) duplicates++;
        }
      }
      const report: ScenarioReport = {
        scenario: name,
        subscribers: SUBSCRIBERS,
        published,
        reconnected: reconnects.length,
        p50: percentile(times, 50),
        p99: percentile(times, 99),
        max: times.at(-1) ?? 0,
        spreadMs: instants.length ? Math.max(...instants) - Math.min(...instants) : 0,
        lost,
        duplicates,
      };
      reports.push(report);
      const problems = subscribers.flatMap((s, i) =>
        s.problems.map((p) => `subscriber ${i}: ${p}`),
      );
      expect(problems.slice(0, 10)).toEqual([]);
      for (const s of subscribers) {
        expect(s.count).toBe(published - (s.first as number));
        expect(s.source.readyState).not.toBe(EventSource.CLOSED);
      }
      expect(lost).toBe(0);
      expect(duplicates).toBe(0);
      return report;
    } finally {
      for (const s of subscribers) s.source.close();
      await agent.destroy();
      if (!stopped) await producer.stop();
    }
  }

  it('passes streams through nginx as the gateway writes them, and refuses publishing from outside', async () => {
    const client = await SseClient.open(`${cluster.url}/events?topic=through`, {
      'accept-encoding': 'gzip',
    });
    try {
      expect(client.status).toBe(200);
      expect(client.headers['content-type']).toBe('text/event-stream');
      expect(client.headers['cache-control']).toBe('no-cache, no-transform');
      expect(client.headers['content-encoding']).toBeUndefined();
      // Not buffered: the first bytes arrive while the stream stays open.
      await waitFor(() => client.raw.startsWith('retry: 200\n'), 'the retry line through nginx');
      const id = await publisher.publish('through', 'hello', { n: 1 });
      await client.waitForEvents(1);
      expect(client.events).toEqual([{ id, event: 'hello', data: '{"n":1}' }]);
    } finally {
      client.close();
    }
    // nginx connects from loopback, which the gateways trust to publish without a token.
    for (const path of ['/publish', '//publish', '/%70ublish', '/PUBLISH/']) {
      const res = await fetchJson(`${cluster.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'through', data: 'from outside' }),
      });
      expect({ path, status: res.status, code: res.body?.error?.code }).toEqual({
        path,
        status: 403,
        code: 'PUBLISH_FORBIDDEN',
      });
    }
  }, 60_000);

  it('kill -9 of one gateway: its subscribers resume through nginx on the others, every event exactly once', async () => {
    const report = await scenario('kill -9 gateway-2', () => cluster.killGateway(1));
    // About a third of the subscribers were on it.
    expect(report.reconnected).toBeGreaterThanOrEqual(SUBSCRIBERS / 3 / 2);
  }, 240_000);

  it('SIGTERM drain of one gateway (out of rotation first): reconnects spread over DRAIN_S, every event exactly once', async () => {
    let exitCode: number | null = null;
    const report = await scenario('drain gateway-1', async () => {
      exitCode = await cluster.drainGateway(0);
    });
    expect(exitCode).toBe(0);
    expect(report.reconnected).toBeGreaterThanOrEqual(SUBSCRIBERS / 3 / 2);
    // Closed in batches over the window, not all at once.
    expect(report.spreadMs).toBeGreaterThan((DRAIN_S * 1000) / 2);
  }, 240_000);

  it('SIGTERM of one gateway that nginx still lists: nothing lost either', async () => {
    let exitCode: number | null = null;
    const report = await scenario('SIGTERM gateway-3, nginx not told', async () => {
      exitCode = await cluster.stopGateway(2);
    });
    expect(exitCode).toBe(0);
    expect(report.reconnected).toBeGreaterThanOrEqual(SUBSCRIBERS / 3 / 2);
  }, 240_000);

  it('rolling restart of every gateway in turn, on the same ports: every event exactly once', async () => {
    const report = await scenario('rolling restart of all 3', async () => {
      for (let i = 0; i < cluster.gateways.length; i++) await cluster.restartGateway(i);
    });
    expect(report.reconnected).toBeGreaterThanOrEqual(SUBSCRIBERS * 0.9);
  }, 400_000);

  it('with no gateway left, nginx tells EventSource to come back later instead of failing it', async () => {
    await Promise.all(cluster.gateways.map((_, i) => cluster.killGateway(i)));
    // A 502 would make EventSource give up for good; this is what a gateway that cannot serve answers.
    const client = await SseClient.open(`${cluster.url}/events?topic=nobody`);
    await client.waitForEnd();
    expect(client.status).toBe(200);
    expect(client.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(client.raw).toBe('retry: 1000\n\n');
    const other = await fetchJson(`${cluster.url}/readyz`);
    expect(other.status).toBe(502);
    expect(other.body.error.code).toBe('NOT_READY');
  }, 60_000);
});
