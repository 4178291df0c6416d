import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CrossSlotError,
  RedisClusterEngine,
  redisClusterOptions,
  topicKeys,
} from '@streamcast/engine-redis';
import { createBroadcaster } from '@streamcast/broadcaster';
import { compareIds, parseCursor, topicFingerprint } from '@streamcast/protocol';
import { RedisUploadStore } from '@streamcast/uploads';
import { Hub } from '@streamcast/hub';
import { createPublisher, type Publisher } from '@streamcast/publisher';
import {
  MemorySink,
  SOURCE_EXEC_ARGV,
  SseClient,
  TestRedisCluster,
  sleep,
  startGatewayProcess,
  testPrefix,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';
import { Cluster } from 'ioredis';

/**
 * The cluster engine on a real Redis Cluster (3 masters, 3 replicas, cluster-node-timeout 1 s),
 * two gateway processes, ≥ 300 topics over all masters, a producer publishing all the while,
 * and clients that check every topic's events arrive in order, exactly once, and to the end
 * (no stall) through slot migrations, failovers, a killed master and a restarted node.
 */
jest.setTimeout(240_000);

const TOPICS_PER_CLIENT = 30;
const CLIENTS_PER_GATEWAY = 10;

let cluster: TestRedisCluster;

beforeAll(async () => {
  cluster = await TestRedisCluster.start({ nodeTimeoutMs: 1000 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
}, 30_000);

/** One gateway client: one stream on TOPICS_PER_CLIENT topics. */
interface Viewer {
  topics: string[];
  sse: SseClient;
}

interface Session {
  prefix: string;
  topics: string[];
  gateways: GatewayProcess[];
  viewers: Viewer[];
  publisher: Publisher;
  /** Seqs acknowledged per topic (0 … n-1). */
  acked: Map<string, number>;
  /** Topics the producer leaves alone (a test publishes to them itself). */
  quiet: Set<string>;
  stopProducer(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `extra` topics first (chosen by the test, e.g. in slots it will move), then plain ones up to
 * 300; two gateways, each with viewers covering every topic; a producer publishing round-robin.
 */
async function startSession(extra: string[] = []): Promise<Session> {
  const prefix = testPrefix();
  const topics = [...extra];
  for (let i = 0; topics.length < TOPICS_PER_CLIENT * CLIENTS_PER_GATEWAY; i++)
    topics.push(`t${i}`);
  const env = {
    REDIS_CLUSTER_NODES: cluster.seeds,
    REDIS_PREFIX: prefix,
    PROBE_INTERVAL_MS: '250',
    PROBE_TIMEOUT_MS: '1500',
    RETRY_MS: '200',
    HEARTBEAT_S: '5',
  };
  const gateways = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  const viewers: Viewer[] = [];
  for (const gateway of gateways) {
    for (let c = 0; c < CLIENTS_PER_GATEWAY; c++) {
      const mine = topics.slice(c * TOPICS_PER_CLIENT, (c + 1) * TOPICS_PER_CLIENT);
      const query = mine.map((t) => `topic=${encodeURIComponent(t)}`).join('&');
      const sse = await SseClient.open(`${gateway.url}/events?${query}`);
      expect(sse.status).toBe(200);
      viewers.push({ topics: mine, sse });
    }
  }
  const publisher = await createPublisher({
    redisOptions: { nodes: cluster.startupNodes, nodeOptions: {} },
    keyPrefix: prefix,
    validate: false,
  });
  const acked = new Map<string, number>(topics.map((t) => [t, 0]));
  const quiet = new Set<string>();
  let running = true;
  const producer = (async () => {
    for (let i = 0; running; i++) {
      const topic = topics[i % topics.length] as string;
      if (quiet.has(topic)) continue;
      const seq = acked.get(topic) as number;
      try {
        await publisher.publish(topic, 'n', { topic, seq });
        acked.set(topic, seq + 1);
      } catch {
        await sleep(20); // the slot's master is away: this seq is tried again next round
      }
      if (i % 20 === 0) await sleep(1);
    }
  })();
  const session: Session = {
    prefix,
    topics,
    gateways,
    viewers,
    publisher,
    acked,
    quiet,
    stopProducer: async () => {
      running = false;
      await producer;
    },
    close: async () => {
      running = false;
      await producer;
      for (const v of viewers) v.sse.close();
      await publisher.close();
      await Promise.all(gateways.map((g) => g.stop()));
    },
  };
  return session;
}

/** Waits until the producer stored `rounds` more events on every topic. */
async function produceRounds(session: Session, rounds: number): Promise<void> {
  const start = new Map(session.acked);
  await waitFor(
    () =>
      session.topics.every(
        (t) =>
          session.quiet.has(t) ||
          (session.acked.get(t) as number) >= (start.get(t) as number) + rounds,
      ),
    `${rounds} more events on every topic`,
    60_000,
    50,
  );
}

/**
 * Stops the producer, then checks every viewer: per topic, the seqs it got are the topic's
 * history (as the cluster holds it at the end) in order, each once, up to the last one (no
 * stall), by stream id: an event missing from the history (an acknowledged write a failover
 * lost) may be skipped; going back needs a `reset` (history-lost) for that topic first. Returns
 * the resets.
 */
async function stopAndCheck(session: Session, allowResets: boolean): Promise<string[]> {
  await session.stopProducer();
  const reader = new Cluster(cluster.startupNodes, {
    redisOptions: { connectionName: 'test-reader' },
  });
  /** Per topic, the stored entries: stream id and the producer's seq. */
  const history = new Map<string, Array<{ id: string; seq: number }>>();
  try {
    for (const topic of session.topics) {
      const entries = (await reader.xrange(
        topicKeys(session.prefix, topic).log,
        '-',
        '+',
      )) as Array<[string, string[]]>;
      history.set(
        topic,
        entries.map(([id, fields]) => ({
          id,
          seq: (JSON.parse(fields[fields.indexOf('d') + 1] as string) as { seq: number }).seq,
        })),
      );
    }
  } finally {
    reader.disconnect();
  }
  const lastOf = (topic: string) =>
    (history.get(topic) as Array<{ seq: number }>).at(-1)?.seq ?? -1;
  // No stall: every viewer reaches every topic's last stored event.
  await waitFor(
    () =>
      session.viewers.every((v) =>
        v.topics.every((t) => {
          const got = seqsOf(v, t);
          return got.at(-1) === lastOf(t);
        }),
      ),
    () => {
      const behind = session.viewers.flatMap((v) =>
        v.topics
          .filter((t) => seqsOf(v, t).at(-1) !== lastOf(t))
          .map((t) => `${t}: ${seqsOf(v, t).at(-1)} of ${lastOf(t)}`),
      );
      return `every viewer at every topic's last event (behind: ${behind.slice(0, 5).join(', ')}…)`;
    },
    30_000,
    100,
  );
  const resets: string[] = [];
  const problems: string[] = [];
  for (const [n, viewer] of session.viewers.entries()) {
    const ids = new Set<string>();
    /** Per topic, the stream id and seq of the last event the viewer got. */
    const last = new Map<string, { id: string; seq: number }>();
    const resetPending = new Set<string>();
    for (const e of viewer.sse.events) {
      if (e.event === 'reset') {
        const reset = JSON.parse(e.data) as { topics: string[]; reason: string };
        resets.push(reset.reason);
        for (const t of reset.topics) resetPending.add(t);
        continue;
      }
      if (e.event !== 'n') continue;
      if (e.id && ids.has(e.id)) problems.push(`viewer ${n}: id ${e.id} twice`);
      if (e.id) ids.add(e.id);
      const { topic, seq } = JSON.parse(e.data) as { topic: string; seq: number };
      // The event's own stream id, from the cursor entry of its topic. (A seq may be stored
      // twice: a publish whose reply a failover cut off is tried again, and the first try may
      // have been stored after all. Ids tell those two events apart.)
      const cursor = parseCursor(e.id as string);
      const id =
        cursor.format === 'topics' ? cursor.positions.get(topicFingerprint(topic))?.id : undefined;
      if (id === undefined) {
        problems.push(`viewer ${n} ${topic}: seq ${seq} has no position in its id ${e.id}`);
        continue;
      }
      const prev = last.get(topic);
      if (prev !== undefined && !resetPending.has(topic)) {
        if (compareIds(id, prev.id) <= 0) {
          problems.push(
            `viewer ${n} ${topic}: seq ${seq} (${id}) after seq ${prev.seq} (${prev.id}) without reset`,
          );
        }
        // A stored event between the two is a gap; one missing from history (an acknowledged
        // write a failover lost) may have been delivered live or skipped.
        for (const entry of history.get(topic) as Array<{ id: string; seq: number }>) {
          if (compareIds(entry.id, prev.id) > 0 && compareIds(entry.id, id) < 0) {
            problems.push(
              `viewer ${n} ${topic}: skipped stored seq ${entry.seq} (${prev.seq} → ${seq})`,
            );
          }
        }
      }
      resetPending.delete(topic);
      last.set(topic, { id, seq });
    }
  }
  expect(problems.slice(0, 10)).toEqual([]);
  if (!allowResets) expect(resets).toEqual([]);
  else for (const reason of resets) expect(reason).toBe('history-lost');
  for (const g of session.gateways) {
    expect((await fetch(`${g.url}/readyz`)).status).toBe(200);
  }
  return resets;
}

function seqsOf(viewer: Viewer, topic: string): number[] {
  const out: number[] = [];
  for (const e of viewer.sse.events) {
    if (e.event !== 'n') continue;
    const data = JSON.parse(e.data) as { topic: string; seq: number };
    if (data.topic === topic) out.push(data.seq);
  }
  return out;
}

/** Topics whose slots are on every master: each master serves some of them. */
async function expectSpreadOverMasters(topics: string[]): Promise<void> {
  const masters = await cluster.masters();
  const owners = new Set<number>();
  for (const t of topics) {
    const slot = TestRedisCluster.slotOf(t);
    const m = masters.find((n) => n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (m) owners.add(m.port);
  }
  expect(owners.size).toBe(masters.length);
}

describe('cluster engine on a real Redis Cluster', () => {
  it('keeps every topic in order, exactly once and live through a reshard and a hand-made slot migration', async () => {
    // Topics in the lowest slots of the first master: redis-cli reshard moves those first.
    const masters = await cluster.masters();
    const first = masters.sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0))[0]!;
    const second = masters[1]!;
    const lowest = first.slots[0]![0];
    const moved: string[] = [];
    for (let i = 0; moved.length < 15; i++) {
      const t = `low${i}`;
      const slot = TestRedisCluster.slotOf(t);
      if (slot >= lowest && slot < lowest + 200) moved.push(t);
    }
    const session = await startSession(moved);
    try {
      await expectSpreadOverMasters(session.topics);
      await produceRounds(session, 2);
      await cluster.reshard(first.port, second.port, 200);
      for (const t of moved)
        expect(await cluster.masterOfSlot(TestRedisCluster.slotOf(t))).toBe(second.port);
      await produceRounds(session, 2);
      // By hand: a slot holding a subscribed topic, keys moved in steps while publishing goes
      // on. Its last event is published while the target imports the slot (ASK): the target has
      // no subscriber yet, so only the catch-up after the resubscription can deliver it.
      const topic = session.topics[moved.length + 7] as string;
      session.quiet.add(topic);
      const slot = TestRedisCluster.slotOf(topic);
      const owner = await cluster.masterOfSlot(slot);
      const target = (await cluster.masters()).find((m) => m.port !== owner)!.port;
      await cluster.migrateSlot(slot, target, 50, async () => {
        const seq = session.acked.get(topic) as number;
        await session.publisher.publish(topic, 'n', { topic, seq });
        session.acked.set(topic, seq + 1);
      });
      expect(await cluster.masterOfSlot(slot)).toBe(target);
      await produceRounds(session, 2);
      await stopAndCheck(session, false);
    } finally {
      await session.close();
    }
  });

  it('keeps every topic in order and live through CLUSTER FAILOVER and a restart of a master', async () => {
    const session = await startSession();
    try {
      await produceRounds(session, 2);
      const masters = await cluster.masters();
      await cluster.failover(masters[0]!.port);
      await produceRounds(session, 2);
      // The node a sharded subscriber is connected to (every master serves some topic).
      await cluster.restart(masters[1]!.port);
      await produceRounds(session, 2);
      // A restarted master may come back after its replica took over: lost writes reset.
      await stopAndCheck(session, true);
    } finally {
      await session.close();
    }
  });

  it('survives SIGKILL of a master: lost acknowledged writes reset history-lost, nothing stalls', async () => {
    const session = await startSession();
    try {
      await produceRounds(session, 2);
      const victim = (await cluster.masters())[2]!.port;
      await cluster.killMaster(victim);
      await produceRounds(session, 3);
      await stopAndCheck(session, true);
      // Bring the node back (as a replica) for the cluster's next users.
      await cluster.node(victim).launch();
      await cluster.waitHealthy();
    } finally {
      await session.close();
    }
  });
});

describe('cluster engine in process', () => {
  let client: Cluster;
  let engine: RedisClusterEngine;
  let hub: Hub;
  const prefix = testPrefix();

  beforeEach(async () => {
    client = new Cluster(
      cluster.startupNodes,
      redisClusterOptions({ connectionName: `t${process.pid}` }),
    );
  });

  afterEach(async () => {
    await hub?.close();
    await engine?.close();
    client.disconnect();
  });

  it('refuses a publish whose script would touch two slots, with a clear error, storing nothing', async () => {
    engine = new RedisClusterEngine({
      client,
      keyPrefix: prefix,
      // Test hook: the live channel of another topic, in another slot.
      liveChannelOf: () => topicKeys(prefix, 'elsewhere').live,
    });
    hub = new Hub(engine);
    await hub.start();
    const topic = 'two-slots';
    expect(TestRedisCluster.slotOf(topic)).not.toBe(TestRedisCluster.slotOf('elsewhere'));
    const err = await engine.publish(topic, 'n', '{}').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CrossSlotError);
    expect((err as CrossSlotError).code).toBe('ENGINE_CROSS_SLOT');
    expect((err as Error).message).toMatch(/two Redis Cluster slots/);
    expect(await client.exists(topicKeys(prefix, topic).log)).toBe(0);
  });

  it('keeps listeners and subscriber connections flat over 1,000 subscribe/unsubscribe cycles', async () => {
    engine = new RedisClusterEngine({
      client,
      keyPrefix: prefix,
      probe: { intervalMs: 200, timeoutMs: 2000 },
    });
    hub = new Hub(engine, { heartbeatMs: 60_000 });
    await hub.start();
    const topics = [...Array(12).keys()].map((i) => `cycle-${i}`);
    await expectSpreadOverMasters(topics);
    const masters = await cluster.masters();
    const subscriberConnections = async () => {
      let count = 0;
      for (const m of masters) {
        const redis = cluster.connect(m.port);
        const list = (await redis.call('CLIENT', 'LIST')) as string;
        redis.disconnect();
        count += list
          .split('\n')
          .filter((l) => l.includes(`name=ioredis-cluster(ssubscriber):t${process.pid} `)).length;
      }
      return count;
    };
    const cycle = async (round: number) => {
      const sinks = topics.map(() => new MemorySink());
      await Promise.all(
        sinks.map((s, i) => hub.subscribe(s, [topics[(i + round) % topics.length] as string])),
      );
      for (const s of sinks) s.close();
    };
    for (let r = 0; r < 20; r++) await cycle(r);
    await waitFor(
      () => hub.channelCount === 0 && engine.listenedCount === 0,
      'every channel released',
    );
    const listenersBefore = client.listenerCount('smessage');
    const connectionsBefore = await subscriberConnections();
    // Subscriber connections = masters owning subscribed topics (here every master).
    expect(connectionsBefore).toBe(masters.length);
    expect(listenersBefore).toBe(1);
    for (let r = 0; r < 1000 / topics.length; r++) await cycle(r);
    await waitFor(
      () => hub.channelCount === 0 && engine.listenedCount === 0,
      'every channel released',
    );
    // Still live after it all.
    const sink = new MemorySink();
    await hub.subscribe(sink, ['cycle-0']);
    await hub.publish('cycle-0', 'n', '{"after":true}');
    await sink.waitForEvents(1);
    sink.close();
    expect(client.listenerCount('smessage')).toBe(listenersBefore);
    expect(await subscriberConnections()).toBe(connectionsBefore);
  });
});

describe('everything else that touches Redis, on the cluster', () => {
  const prefix = testPrefix();
  const uploadDir = mkdtempSync(join(tmpdir(), 'streamcast-cluster-uploads-'));
  let gateways: GatewayProcess[] = [];
  const streams: SseClient[] = [];
  let worker: ReturnType<typeof spawn> | undefined;
  let workerOutput = '';

  beforeAll(async () => {
    const env = {
      REDIS_CLUSTER_NODES: cluster.seeds,
      REDIS_PREFIX: prefix,
      UPLOAD_DIR: uploadDir,
      PUBLIC_TOPICS: 'open/*',
      TRUST_PROXY: 'loopback',
      CLUSTER_MAX_STREAMS_PER_IP: '3',
      STREAM_COUNT_TTL_S: '3',
    };
    gateways = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    // `npm run upload-worker`, on the cluster (BullMQ's queue keys share one hash tag).
    worker = spawn(process.execPath, [...SOURCE_EXEC_ARGV, 'apps/upload-worker/src/main.ts'], {
      cwd: join(__dirname, '..'),
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout?.on('data', (c: Buffer) => (workerOutput += c.toString()));
    worker.stderr?.on('data', (c: Buffer) => (workerOutput += c.toString()));
    await waitFor(
      () => {
        if (worker?.exitCode !== null) throw new Error(`upload worker exited:\n${workerOutput}`);
        return workerOutput.includes('upload worker ready');
      },
      () => `the upload worker to start:\n${workerOutput}`,
      60_000,
    );
  }, 90_000);

  afterAll(async () => {
    for (const s of streams) s.close();
    if (worker && worker.exitCode === null) {
      const exited = new Promise((resolve) => worker?.once('exit', resolve));
      worker.kill('SIGKILL');
      await exited;
    }
    await Promise.all(gateways.map((g) => g.stop()));
    rmSync(uploadDir, { recursive: true, force: true });
  });

  it("counts a client's streams on every gateway (CLUSTER_MAX_STREAMS_PER_IP)", async () => {
    const ip = { 'x-forwarded-for': '203.0.113.77' };
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    for (const [g, n] of [
      [a, 1],
      [a, 2],
      [b, 3],
    ] as const) {
      const sse = await SseClient.open(`${g.url}/events?topic=open/${n}`, ip);
      streams.push(sse);
      expect(sse.status).toBe(200);
    }
    for (const g of [a, b]) {
      const over = await SseClient.open(`${g.url}/events?topic=open/4`, ip);
      streams.push(over);
      expect(over.status).toBe(429);
      await waitFor(() => over.ended, 'the refusal to end');
      expect(over.raw).toContain('TOO_MANY_STREAMS');
    }
  });

  it('takes an upload on one gateway, processes it on BullMQ, and streams its progress from the other', async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const fileId = `cluster-${Date.now()}`;
    const progress = await SseClient.open(`${b.url}/api/upload-progress/${fileId}`);
    streams.push(progress);
    expect(progress.status).toBe(200);
    const form = new FormData();
    form.append('fileId', fileId);
    form.append('file', new Blob(['one two\nthree\n'], { type: 'text/plain' }), 'notes.txt');
    const res = await fetch(`${a.url}/api/upload`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { fileId: string }).fileId).toBe(fileId);
    const [complete] = await progress.waitForEvents(1, 20_000, 'complete');
    expect(JSON.parse(complete?.data ?? '{}')).toMatchObject({
      filename: 'notes.txt',
      lines: 2,
      words: 3,
    });
  });

  it('publishes with streamcast-publish straight into the cluster (REDIS_CLUSTER_NODES)', async () => {
    const [a] = gateways as [GatewayProcess];
    const sse = await SseClient.open(`${a.url}/events?topic=open/cli`);
    streams.push(sse);
    const cli = spawn(
      process.execPath,
      [...SOURCE_EXEC_ARGV, 'apps/cli/src/publish.ts', 'open/cli', 'note', '{"via":"cluster"}'],
      {
        cwd: join(__dirname, '..'),
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          REDIS_CLUSTER_NODES: cluster.seeds,
          REDIS_PREFIX: prefix,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    cli.stdout.on('data', (c: Buffer) => (out += c.toString()));
    cli.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((resolve) => cli.once('exit', resolve));
    expect(code === 0 ? 'exit 0' : out).toBe('exit 0');
    const [event] = await sse.waitForEvents(1, 10_000, 'note');
    expect(JSON.parse(event?.data ?? '')).toEqual({ via: 'cluster' });
    expect(event?.id).toBe(out.trim());
  });

  it('load-tests a gateway while publishing straight into the cluster (--redis-cluster)', async () => {
    const [a] = gateways as [GatewayProcess];
    const args = [
      ...SOURCE_EXEC_ARGV,
      'apps/loadtest/src/main.ts',
      '--url',
      a.url,
      '--topic-prefix',
      'open/lt',
      '--redis-cluster',
      cluster.seeds,
      '--prefix',
      prefix,
      '--out',
      uploadDir,
      '--connections',
      '6',
      '--topics',
      '3',
      '--rate',
      '30',
      '--duration',
      '2',
      '--processes',
      '1',
      '--quiet',
    ];
    const run = spawn(process.execPath, args, {
      cwd: join(__dirname, '..'),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    run.stdout.on('data', (c: Buffer) => (out += c.toString()));
    run.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((resolve) => run.once('exit', resolve));
    expect(code === 0 ? 'exit 0' : out).toBe('exit 0');
    expect(out).toMatch(/Redis Cluster 127\.0\.0\.1:\d+/);
  });

  it('lets a process exit on its own once its cluster client is quit, even while connecting', async () => {
    // ioredis 6.0.0 re-arms its slots refresh timer from a quit() during the connection's ready
    // check, and that timer then kept the process alive for ever (stopSlotsRefreshOnEnd).
    const script = `
      const { connectRedis } = require('@streamcast/engine-redis');
      const nodes = ${JSON.stringify(cluster.startupNodes)};
      const delays = [10, 14, 18, 22, 26, 30, 40, 60];
      for (const delay of delays) {
        const client = connectRedis({ nodes, nodeOptions: {} });
        client.on('error', () => {});
        setTimeout(() => client.quit().catch(() => {}), delay);
      }`;
    const child = spawn(process.execPath, [...SOURCE_EXEC_ARGV, '-e', script], {
      cwd: join(__dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const outcome = await Promise.race([exited, sleep(8000).then(() => 'still running')]);
    if (outcome === 'still running') child.kill('SIGKILL');
    expect(outcome === 0 ? 'exit 0' : `${String(outcome)}: ${out}`).toBe('exit 0');
  });

  it('reserves upload ids on the cluster: one holder at a time, released only by it', async () => {
    const client = new Cluster(cluster.startupNodes, redisClusterOptions());
    try {
      await waitFor(() => client.status === 'ready', 'the cluster client');
      const store = new RedisUploadStore(client, prefix, 60);
      expect(await store.reserve('held', 'job-1', 60)).toBe(true);
      expect(await store.reserve('held', 'job-2', 60)).toBe(false);
      await store.release('held', 'job-2');
      expect(await store.reserve('held', 'job-3', 60)).toBe(false);
      await store.release('held', 'job-1');
      expect(await store.reserve('held', 'job-3', 60)).toBe(true);
    } finally {
      client.disconnect();
    }
  });
});

describe('a Redis Cluster with a password (REDIS_URL gives the credentials)', () => {
  const password = 'cluster-secret';
  let secured: TestRedisCluster;
  let gateway: GatewayProcess | undefined;
  const prefix = testPrefix();

  beforeAll(async () => {
    secured = await TestRedisCluster.start({ masters: 3, replicas: 0, password });
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await secured?.stop();
  }, 30_000);

  it('serves a gateway and an embedded broadcaster (redisClusterNodes) sharing it', async () => {
    gateway = await startGatewayProcess({
      REDIS_CLUSTER_NODES: secured.seeds,
      REDIS_URL: `redis://:${password}@ignored.invalid:1`,
      REDIS_PREFIX: prefix,
      PUBLIC_TOPICS: '*',
    });
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
    const broadcaster = await createBroadcaster({
      redisClusterNodes: secured.startupNodes,
      redisUrl: `redis://:${password}@ignored.invalid:1`,
      keyPrefix: prefix,
    });
    try {
      expect(broadcaster.engine).toBeInstanceOf(RedisClusterEngine);
      // Topics over every master: the gateway's stream gets everything the app publishes (order
      // is per topic; topics on different masters arrive over different connections).
      const topics = Array.from({ length: 12 }, (_, i) => `pw/${i}`);
      const sse = await SseClient.open(
        `${gateway.url}/events?${topics.map((t) => `topic=${t}`).join('&')}`,
      );
      try {
        expect(sse.status).toBe(200);
        for (const topic of topics) await broadcaster.publish(topic, 'note', { topic });
        const events = await sse.waitForEvents(topics.length, 15_000, 'note');
        expect(events.map((e) => JSON.parse(e.data).topic).sort()).toEqual([...topics].sort());
        // The app's own hub reads the same history: a stream from an id gets what came after it.
        const from = await broadcaster.publish('pw/0', 'note', { topic: 'pw/0', n: 2 });
        await broadcaster.publish('pw/0', 'note', { topic: 'pw/0', n: 3 });
        const sink = new MemorySink();
        await broadcaster.hub.subscribe(sink, ['pw/0'], parseCursor(from));
        await sink.waitForEvents(1, 10_000, 'note');
        expect(sink.data<{ n: number }>('note').map((d) => d.n)).toEqual([3]);
        sink.close();
      } finally {
        sse.close();
      }
    } finally {
      await broadcaster.close();
    }
  });

  it("without the password, the broadcaster refuses to start with Redis's own error", async () => {
    await expect(
      createBroadcaster({ redisClusterNodes: secured.startupNodes, keyPrefix: prefix }),
    ).rejects.toThrow(/NOAUTH|auth/i);
  }, 30_000);
});
