/**
 * `cluster` scenario: publishes/s and Redis CPU per publish on one Redis vs a 3-master Redis
 * Cluster (Redis time from INFO commandstats and INFO cpu, per shard), how 1,000 topics spread
 * over the masters, and the gap-repair time after a slot migration and after a failover (worst
 * publish → delivery latency of events published around it, delivered by the hub's catch-up).
 */
import type { Engine } from '@streamcast/engine';
import {
  RedisClusterEngine,
  RedisEngine,
  redisClientOptions,
  redisClusterOptions,
} from '@streamcast/engine-redis';
import { Hub } from '@streamcast/hub';
import { MemorySink, TestRedisCluster, sleep } from '@streamcast/testing';
import Redis, { Cluster } from 'ioredis';
import type { BenchContext } from './lib/context';
import { onCleanup } from './lib/procs';
import { int, table } from './lib/report';

export interface ClusterBenchResult {
  rows: Array<{
    target: string;
    publishes: number;
    perSecond: number;
    /** Per shard: evalsha µs per call (commandstats), CPU µs per publish (INFO cpu). */
    shards: Array<{ port: number; publishes: number; scriptUs: number; cpuUs: number }>;
  }>;
  /** Topics per master (of `topics`). */
  spread: number[];
  topics: number;
  migration: { worstMs: number; pauseMs: number };
  failover: { worstMs: number; pauseMs: number };
}

interface ShardStats {
  calls: number;
  usec: number;
  cpuS: number;
}

async function shardStats(redis: Redis): Promise<ShardStats> {
  const info = (await redis.info('all')) as string;
  const cmd = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(info);
  const evalCmd = /cmdstat_eval:calls=(\d+),usec=(\d+)/.exec(info);
  const cpu =
    Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0) +
    Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  return {
    calls: Number(cmd?.[1] ?? 0) + Number(evalCmd?.[1] ?? 0),
    usec: Number(cmd?.[2] ?? 0) + Number(evalCmd?.[2] ?? 0),
    cpuS: cpu,
  };
}

/** Publishes for `seconds` with `concurrency` in flight, round-robin over `topics`. */
async function publishFor(
  engine: Engine,
  topics: string[],
  seconds: number,
  concurrency: number,
  data: string,
) {
  let count = 0;
  const until = Date.now() + seconds * 1000;
  const started = Date.now();
  await Promise.all(
    [...Array(concurrency).keys()].map(async (w) => {
      for (let i = w; Date.now() < until; i += concurrency) {
        await engine.publish(topics[i % topics.length] as string, 'n', data);
        count++;
      }
    }),
  );
  return { count, perSecond: count / ((Date.now() - started) / 1000) };
}

/**
 * Events published every 10 ms on `topic` while `disturb` runs: the worst publish → delivery
 * latency (what the catch-up took), and the longest pause between deliveries (including the
 * time publishes were refused, e.g. while a failover ran).
 */
async function worstLatencyDuring(
  hub: Hub,
  topic: string,
  disturb: () => Promise<void>,
): Promise<{ worstMs: number; pauseMs: number }> {
  const sink = new MemorySink();
  await hub.subscribe(sink, [topic]);
  const acked = new Map<number, number>();
  let running = true;
  const producer = (async () => {
    for (let seq = 0; running;) {
      try {
        await hub.publish(topic, 'n', JSON.stringify({ seq }));
        acked.set(seq, Date.now());
        seq++;
      } catch {
        // the slot's master is away: try again
      }
      await sleep(10);
    }
  })();
  const delivered = new Map<number, number>();
  const poll = setInterval(() => {
    for (const d of sink.data<{ seq: number }>())
      if (!delivered.has(d.seq)) delivered.set(d.seq, Date.now());
  }, 2);
  try {
    await sleep(300);
    await disturb();
    await sleep(500);
  } finally {
    running = false;
    await producer;
  }
  const deadline = Date.now() + 20_000;
  while (delivered.size < acked.size && Date.now() < deadline) await sleep(10);
  clearInterval(poll);
  sink.close();
  let worst = 0;
  for (const [seq, at] of acked) {
    const got = delivered.get(seq);
    worst = Math.max(worst, got === undefined ? Infinity : got - at);
  }
  const times = [...delivered.values()].sort((a, b) => a - b);
  let pause = 0;
  for (let i = 1; i < times.length; i++)
    pause = Math.max(pause, (times[i] as number) - (times[i - 1] as number));
  return { worstMs: worst, pauseMs: pause };
}

export async function runClusterBench(ctx: BenchContext): Promise<ClusterBenchResult> {
  const p = ctx.params;
  const topics = [...Array(p.clusterTopics).keys()].map((i) => `bench-${i}`);
  const data = JSON.stringify({ pad: 'x'.repeat(Math.max(0, p.payloadBytes - 12)) });
  const rows: ClusterBenchResult['rows'] = [];

  // One Redis.
  process.stderr.write('bench cluster: one Redis\n');
  {
    const client = new Redis(ctx.redis.url, redisClientOptions());
    const admin = new Redis(ctx.redis.url);
    const engine = new RedisEngine({ client, keyPrefix: `bc${Date.now()}` });
    await engine.start();
    await engine.publish(topics[0] as string, 'n', data); // loads the script
    const before = await shardStats(admin);
    const run = await publishFor(engine, topics, p.clusterSeconds, p.concurrency, data);
    const after = await shardStats(admin);
    const calls = after.calls - before.calls;
    rows.push({
      target: 'one Redis',
      publishes: run.count,
      perSecond: run.perSecond,
      shards: [
        {
          port: ctx.redis.port,
          publishes: calls,
          scriptUs: calls ? (after.usec - before.usec) / calls : 0,
          cpuUs: calls ? ((after.cpuS - before.cpuS) * 1e6) / calls : 0,
        },
      ],
    });
    await engine.close();
    client.disconnect();
    admin.disconnect();
  }

  // The cluster.
  process.stderr.write('bench cluster: starting a 6-node Redis Cluster\n');
  const cluster = await TestRedisCluster.start({ nodeTimeoutMs: 1000 });
  onCleanup(
    'redis cluster',
    () => cluster.stop(),
    () => {
      for (const n of cluster.nodes) if (n.pid) process.kill(n.pid, 'SIGKILL');
    },
  );
  const client = new Cluster(cluster.startupNodes, redisClusterOptions());
  const engine = new RedisClusterEngine({
    client,
    keyPrefix: `bc${Date.now()}`,
    probe: { intervalMs: 250, timeoutMs: 1500 },
  });
  const hub = new Hub(engine, { heartbeatMs: 60_000 });
  await hub.start();
  const masters = await cluster.masters();
  const spread = masters.map(
    (m) =>
      topics.filter((t) => {
        const slot = TestRedisCluster.slotOf(t);
        return m.slots.some(([a, b]) => slot >= a && slot <= b);
      }).length,
  );
  for (const m of masters) {
    const t = topics.find((x) =>
      m.slots.some(([a, b]) => TestRedisCluster.slotOf(x) >= a && TestRedisCluster.slotOf(x) <= b),
    );
    if (t) await engine.publish(t, 'n', data); // loads the script on every master
  }
  const admins = masters.map((m) => cluster.connect(m.port));
  const before = await Promise.all(admins.map(shardStats));
  process.stderr.write('bench cluster: publishing on the cluster\n');
  const run = await publishFor(engine, topics, p.clusterSeconds, p.concurrency, data);
  const after = await Promise.all(admins.map(shardStats));
  for (const a of admins) a.disconnect();
  rows.push({
    target: `Redis Cluster, ${masters.length} masters`,
    publishes: run.count,
    perSecond: run.perSecond,
    shards: masters.map((m, i) => {
      const b = before[i] as ShardStats;
      const a = after[i] as ShardStats;
      const calls = a.calls - b.calls;
      return {
        port: m.port,
        publishes: calls,
        scriptUs: calls ? (a.usec - b.usec) / calls : 0,
        cpuUs: calls ? ((a.cpuS - b.cpuS) * 1e6) / calls : 0,
      };
    }),
  });

  process.stderr.write('bench cluster: gap repair after a slot migration\n');
  const movedTopic = 'bench-moved';
  const slot = TestRedisCluster.slotOf(movedTopic);
  const owner = await cluster.masterOfSlot(slot);
  const target = masters.find((m) => m.port !== owner)?.port as number;
  const migration = await worstLatencyDuring(hub, movedTopic, () =>
    cluster.migrateSlot(slot, target, 20),
  );

  process.stderr.write('bench cluster: gap repair after CLUSTER FAILOVER\n');
  const failTopic = 'bench-failover';
  const failOwner = await cluster.masterOfSlot(TestRedisCluster.slotOf(failTopic));
  const failover = await worstLatencyDuring(hub, failTopic, async () => {
    await cluster.failover(failOwner);
  });

  await hub.close();
  await engine.close();
  client.disconnect();
  return { rows, spread, topics: topics.length, migration, failover };
}

export function formatClusterBench(ctx: BenchContext, r: ClusterBenchResult): string {
  const p = ctx.params;
  const lines = [
    `### Redis Cluster vs one Redis (BENCH_CLUSTER_SECONDS=${p.clusterSeconds}, BENCH_CLUSTER_TOPICS=${p.clusterTopics}, BENCH_CONCURRENCY=${p.concurrency})`,
    '',
    table(
      [
        'target',
        'publishes',
        'publishes/s',
        'shard',
        'publishes on shard',
        'script µs/publish',
        'Redis CPU µs/publish',
      ],
      r.rows.flatMap((row) =>
        row.shards.map((s, i) => [
          i === 0 ? row.target : '',
          i === 0 ? int(row.publishes) : '',
          i === 0 ? int(row.perSecond) : '',
          `:${s.port}`,
          int(s.publishes),
          s.scriptUs.toFixed(1),
          s.cpuUs.toFixed(1),
        ]),
      ),
    ),
    '',
    `spread of ${r.topics} topics over the masters: ${r.spread.join(' / ')}`,
    `gap repair, events published every 10 ms around it (worst publish → delivery; longest pause in delivery):`,
    `  slot migration   ${fmtMs(r.migration.worstMs)}; ${fmtMs(r.migration.pauseMs)}`,
    `  CLUSTER FAILOVER ${fmtMs(r.failover.worstMs)}; ${fmtMs(r.failover.pauseMs)}`,
  ];
  return lines.join('\n');
}

function fmtMs(ms: number): string {
  return Number.isFinite(ms) ? `${int(ms)} ms` : 'never (events missing)';
}

export function clusterBenchOk(r: ClusterBenchResult): boolean {
  return Number.isFinite(r.migration.worstMs) && Number.isFinite(r.failover.worstMs);
}
