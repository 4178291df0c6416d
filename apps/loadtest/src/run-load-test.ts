import { randomBytes } from 'node:crypto';
import { cpus, release, totalmem, type } from 'node:os';
import { account, type ConnAccount, type Totals } from './accounting';
import type { TimelinePoint } from './chart';
import { ClientPool, type PoolOptions } from './client-pool';
import type { ConnSpec } from './client-protocol';
import { percentileCurve, percentileUs, summarize, type LatencySummary } from './latency';
import { Publisher, engineTarget, httpTarget, now, type PublishTarget } from './publisher';
import { scrapeMetrics, serverFigures, type ServerFigures } from './server-metrics';

export interface LoadTestOptions {
  /** Where subscribers connect (gateways or a balancer); connection i goes to urls[i % n]. */
  urls: URL[];
  /** Request path of a subscription; `{topic}` is replaced. @default '/events?topic={topic}' */
  path: string;
  /** `POST /publish` here (default: the first of `urls`), unless `redisUrl` is set. */
  publishUrl?: URL;
  /** Publish straight into the engine (the Redis the gateways share) instead. */
  redisUrl?: string;
  /** Or into this Redis Cluster (seed nodes, as the gateways' REDIS_CLUSTER_NODES). */
  redisClusterNodes?: Array<{ host: string; port: number }>;
  /** The gateways' REDIS_PREFIX, with `redisUrl`. @default 'sse' */
  redisPrefix: string;
  /** Where to scrape `/metrics` (default: every URL of `urls`). */
  metricsUrls?: URL[];
  connections: number;
  topics: number;
  /** Topic names are `<prefix>-<i>`. @default 'loadtest-<random>' */
  topicPrefix: string;
  /** Events per second, over all topics (round robin). */
  rate: number;
  /** Publishing stops after this long... */
  durationS: number;
  /** ...or after this many events, whichever comes first. */
  events?: number;
  /** New connections per second; 0: as fast as they open (1,000 at a time). */
  rampPerSec: number;
  payloadBytes: number;
  /** Publishes in flight at once. */
  concurrency: number;
  /** Client processes. */
  processes: number;
  token?: string;
  /** Reconnect lost connections with Last-Event-ID, as EventSource does. */
  reconnect: boolean;
  /** After publishing stops, wait at most this long for the last events. */
  drainTimeoutS: number;
  /** A connection without its first frame after this long has failed. */
  connectTimeoutS: number;
}

export interface LiveFigures {
  phase: 'connecting' | 'publishing' | 'draining' | 'reporting';
  /** 0..1 through the whole run (ramp, publishing, drain). */
  fraction: number;
  elapsedS: number;
  connectionsOpen: number;
  connectionsAsked: number;
  reconnecting: number;
  failed: number;
  eventsPerSec: number;
  deliveriesPerSec: number;
  published: number;
  errors: number;
}

export interface LoadTestHooks {
  /** Called about four times a second. */
  onProgress?: (live: LiveFigures) => void;
  /** Called with each client process's pid (to pin or watch it). */
  onSpawn?: PoolOptions['onSpawn'];
}

export interface PerConnection extends ConnAccount {
  id: number;
  url: string;
  topic: string;
  /** Times the connection was lost (and, with reconnect, resumed). */
  drops: number;
  open: boolean;
}

export interface LoadTestResult {
  tool: 'streamcast-loadtest';
  version: 1;
  ok: boolean;
  problems: string[];
  startedAt: string;
  finishedAt: string;
  machine: { cpu: string; cores: number; memoryGiB: number; os: string; node: string };
  options: Record<string, unknown>;
  connections: {
    asked: number;
    opened: number;
    failed: number;
    /** Open and receiving when publishing ended. */
    held: number;
    drops: number;
    rampSeconds: number;
    errors: { connect: number; status: Record<string, number>; dropped: number };
  };
  publish: {
    target: string;
    sent: number;
    acked: number;
    failed: number;
    seconds: number;
    eventsPerSec: number;
    lastError?: string;
  };
  events: Totals & { deliveriesPerSec: number };
  latencyMs: LatencySummary;
  timeline: TimelinePoint[];
  distribution: Array<{ percentile: number; ms: number }>;
  servers: ServerFigures[];
  perConnection: PerConnection[];
}

const RUN = 1;

/** One load test: connect, publish, drain, account. Stops every process it started. */
export async function runLoadTest(
  o: LoadTestOptions,
  hooks: LoadTestHooks = {},
): Promise<LoadTestResult> {
  const startedAt = new Date();
  const t0 = now();
  const headers: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
  const metricsUrls = o.metricsUrls ?? o.urls;
  const topics = Array.from({ length: o.topics }, (_, i) => `${o.topicPrefix}-${i}`);
  const before = await Promise.all(metricsUrls.map((u) => scrapeMetrics(u.href, headers)));

  const pool = await ClientPool.start({
    processes: o.processes,
    targets: o.urls.map((u) => ({ host: u.hostname.replace(/^\[|\]$/g, ''), port: portOf(u) })),
    headers,
    reconnect: o.reconnect,
    connectTimeoutMs: o.connectTimeoutS * 1000,
    onSpawn: hooks.onSpawn,
  });
  let target: PublishTarget | undefined;
  let ticker: NodeJS.Timeout | undefined;
  try {
    const live: LiveFigures = {
      phase: 'connecting',
      fraction: 0,
      elapsedS: 0,
      connectionsOpen: 0,
      connectionsAsked: o.connections,
      reconnecting: 0,
      failed: 0,
      eventsPerSec: 0,
      deliveriesPerSec: 0,
      published: 0,
      errors: 0,
    };
    let publisher: Publisher | undefined;
    const rampEstimateS = o.rampPerSec > 0 ? o.connections / o.rampPerSec : 2;
    let phaseStart = now();
    let last = { at: now(), sent: 0, received: 0 };
    const tick = () => {
      const p = pool.progress();
      const at = now();
      const sent = publisher?.sent ?? 0;
      const dt = (at - last.at) / 1000;
      if (dt >= 0.2) {
        live.eventsPerSec = (sent - last.sent) / dt;
        live.deliveriesPerSec = Math.max(0, p.total - last.received) / dt;
        last = { at, sent, received: p.total };
      }
      live.elapsedS = (at - t0) / 1000;
      live.connectionsOpen = p.open;
      live.reconnecting = p.down;
      live.failed = p.failed;
      live.published = sent;
      live.errors = p.errors + (publisher?.failed ?? 0);
      const total = rampEstimateS + o.durationS + 2;
      const inPhase = (at - phaseStart) / 1000;
      live.fraction = Math.min(
        1,
        live.phase === 'connecting'
          ? (Math.min(1, (p.open + p.failed) / o.connections) * rampEstimateS) / total
          : live.phase === 'publishing'
            ? (rampEstimateS +
                Math.min(
                  o.durationS,
                  Math.max(inPhase, o.events ? (sent / o.events) * o.durationS : 0),
                )) /
              total
            : live.phase === 'draining'
              ? (rampEstimateS + o.durationS + Math.min(2, inPhase)) / total
              : 1,
      );
      hooks.onProgress?.(live);
    };
    ticker = setInterval(tick, 250);

    // ---- connect, at the ramp rate
    const specs: ConnSpec[] = Array.from({ length: o.connections }, (_, i) => ({
      t: i % o.urls.length,
      k: i % o.topics,
      path: o.path.replace('{topic}', encodeURIComponent(topics[i % o.topics] as string)),
    }));
    const rampStart = now();
    let failed = 0;
    if (o.rampPerSec > 0) {
      const pending: Array<Promise<{ ready: number; failed: number }>> = [];
      const perTick = Math.max(1, Math.ceil(o.rampPerSec / 20));
      for (let asked = 0; asked < specs.length; asked += perTick) {
        // Paced by the clock, not by answers: a slow server gets the same arrival rate.
        const due = rampStart + (asked / o.rampPerSec) * 1000;
        const wait = due - now();
        if (wait > 0) await sleep(wait);
        pending.push(
          pool.open(specs.slice(asked, asked + perTick), o.connectTimeoutS * 1000 + 60_000),
        );
      }
      for (const answer of await Promise.all(pending)) failed += answer.failed;
    } else {
      for (let asked = 0; asked < specs.length; asked += 1000) {
        const answer = await pool.open(
          specs.slice(asked, asked + 1000),
          o.connectTimeoutS * 1000 + 60_000,
        );
        failed += answer.failed;
      }
    }
    const rampSeconds = (now() - rampStart) / 1000;
    const opened = o.connections - failed;
    if (opened === 0) {
      const { errors } = await pool.report();
      const statuses = Object.entries(errors.status).map(([code, n]) => `${n} answered ${code}`);
      throw new Error(
        `no connection opened to ${o.urls.map((u) => u.origin).join(', ')} ` +
          `(${[`${errors.connect} refused, reset or timed out`, ...statuses].join(', ')})`,
      );
    }

    // ---- publish
    target = o.redisClusterNodes
      ? await engineTarget({ nodes: o.redisClusterNodes, nodeOptions: {} }, o.redisPrefix, topics)
      : o.redisUrl
        ? await engineTarget(o.redisUrl, o.redisPrefix, topics)
        : httpTarget((o.publishUrl ?? (o.urls[0] as URL)).href, topics, o.concurrency, headers);
    const origin = now();
    await pool.startRun(RUN, true, origin);
    await pool.window({ start: origin });
    publisher = new Publisher({
      target,
      topics: o.topics,
      run: RUN,
      rate: o.rate,
      concurrency: o.concurrency,
      payloadBytes: o.payloadBytes,
      ...(o.events !== undefined ? { maxEvents: o.events } : {}),
    });
    live.phase = 'publishing';
    phaseStart = now();
    publisher.start();
    await Promise.race([sleep(o.durationS * 1000), publisher.done()]);
    const heldProgress = pool.progress();
    await publisher.stop();
    const publishSeconds = (publisher.stoppedAt - publisher.startedAt) / 1000;

    // ---- drain: until the slowest open connection has the last events, or the timeout
    live.phase = 'draining';
    phaseStart = now();
    const perTopic = Math.floor(publisher.acked / o.topics);
    const deadline = now() + o.drainTimeoutS * 1000;
    while (now() < deadline) {
      const p = pool.progress();
      if (pool.minReceived(RUN) >= perTopic && p.down === 0) break;
      await sleep(50);
    }
    // Then until nothing more arrives for a moment (topics with one event more, stragglers).
    let seen = await pool.received();
    while (now() < deadline) {
      await sleep(250);
      const again = await pool.received();
      if (again === seen) break;
      seen = again;
    }
    const drainedAt = now();
    live.phase = 'reporting';
    tick();
    clearInterval(ticker);
    ticker = undefined;

    const after = await Promise.all(metricsUrls.map((u) => scrapeMetrics(u.href, headers)));
    const report = await pool.report();
    const { perConnection, totals } = account(report.conns, publisher.ledgers);

    // Timeline: per second of send time; deliveries = events received that were sent then.
    const timeline: TimelinePoint[] = [...report.timeline]
      .sort((a, b) => a[0] - b[0])
      .filter(([second]) => second >= 0)
      .map(([second, h]) => ({
        second,
        deliveries: h.totalCount,
        p50: percentileUs(h, 50) / 1000,
        p90: percentileUs(h, 90) / 1000,
        p99: percentileUs(h, 99) / 1000,
        max: h.maxValue / 1000,
      }));
    const latencyMs = summarize(report.histogram);
    const distribution = percentileCurve(report.histogram);
    const receiveSeconds = (drainedAt - origin) / 1000;
    const servers = metricsUrls.map((u, i) =>
      serverFigures(u.href, before[i], after[i], (drainedAt - t0) / 1000),
    );

    const problems: string[] = [];
    if (failed > 0) problems.push(`${failed} of ${o.connections} connections failed to open`);
    if (totals.lost > 0) {
      problems.push(`${totals.lost} events lost over ${totals.connectionsWithLoss} connections`);
    }
    if (totals.duplicated > 0) {
      problems.push(
        `${totals.duplicated} events duplicated over ${totals.connectionsWithDuplicates} connections`,
      );
    }
    if (publisher.failed > 0) {
      problems.push(
        `${publisher.failed} publishes failed${publisher.lastError ? ` (${publisher.lastError.message})` : ''}`,
      );
    }
    const cpu = cpus();
    const result: LoadTestResult = {
      tool: 'streamcast-loadtest',
      version: 1,
      ok: problems.length === 0,
      problems,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: {
        cpu: cpu[0]?.model.trim() ?? '?',
        cores: cpu.length,
        memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
        os: `${type()} ${release()}`,
        node: process.version,
      },
      options: describeOptions(o, target.name),
      connections: {
        asked: o.connections,
        opened,
        failed,
        held: heldProgress.open,
        drops: report.conns.reduce((n, c) => n + c.drops, 0),
        rampSeconds: round(rampSeconds, 3),
        errors: report.errors,
      },
      publish: {
        target: target.name,
        sent: publisher.sent,
        acked: publisher.acked,
        failed: publisher.failed,
        seconds: round(publishSeconds, 3),
        eventsPerSec: round(publisher.sent / Math.max(publishSeconds, 1e-3), 1),
        ...(publisher.lastError ? { lastError: publisher.lastError.message } : {}),
      },
      events: {
        ...totals,
        deliveriesPerSec: round(totals.delivered / Math.max(receiveSeconds, 1e-3), 1),
      },
      latencyMs,
      timeline: timeline.map((p) => ({
        second: p.second,
        deliveries: p.deliveries,
        p50: round(p.p50, 3),
        p90: round(p.p90, 3),
        p99: round(p.p99, 3),
        max: round(p.max, 3),
      })),
      distribution: distribution.map((d) => ({ percentile: d.percentile, ms: round(d.ms, 3) })),
      servers,
      perConnection: report.conns.map((c, i) => ({
        id: i,
        url: (o.urls[c.t] as URL).origin,
        topic: topics[c.k] as string,
        ...(perConnection[i] as ConnAccount),
        drops: c.drops,
        open: c.open,
      })),
    };
    report.histogram.destroy();
    for (const h of report.timeline.values()) h.destroy();
    return result;
  } finally {
    if (ticker) clearInterval(ticker);
    await target?.close();
    await pool.close();
  }
}

function describeOptions(o: LoadTestOptions, publishTarget: string): Record<string, unknown> {
  return {
    urls: o.urls.map((u) => u.href),
    path: o.path,
    publish: publishTarget,
    connections: o.connections,
    topics: o.topics,
    topicPrefix: o.topicPrefix,
    rate: o.rate,
    durationS: o.durationS,
    events: o.events ?? null,
    rampPerSec: o.rampPerSec,
    payloadBytes: o.payloadBytes,
    concurrency: o.concurrency,
    processes: o.processes,
    token: o.token ? '(set)' : null,
    reconnect: o.reconnect,
    drainTimeoutS: o.drainTimeoutS,
    connectTimeoutS: o.connectTimeoutS,
  };
}

/** A fresh topic prefix, so a run never meets the history of another. */
export function defaultTopicPrefix(): string {
  return `loadtest-${randomBytes(3).toString('hex')}`;
}

function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

function round(v: number, digits: number): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
