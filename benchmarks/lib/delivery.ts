import {
  Publisher,
  account,
  now,
  percentileUs,
  scrapeMetrics,
  type ClientPool,
  type PublishTarget,
} from '@streamcast/loadtest';
import { sleep } from '@streamcast/testing';
import type { BenchContext } from './context';
import { CpuMeter, machineCpuSeconds, processesCpuSeconds, rssBytes } from './procs';
import { int, log, mb, ms, pct } from './report';
import { median, roundsRange } from './rounds';
import type { ServerUnderTest } from './servers';

/** One measured run of events through a server to its subscribers. */
export interface DeliveryRow {
  server: string;
  /** Start to ready of the server process of this run, when it reports it (the gateway). */
  startupMs?: number;
  /** `saturated`, `open loop` or the fixed rate asked for. */
  load: string;
  /** Events published per second while measuring. */
  eventsPerSec: number;
  /** Events received per second, summed over subscribers. */
  deliveriesPerSec: number;
  /** Publish → receive latency in µs, over events sent while measuring. */
  p50: number;
  p99: number;
  max: number;
  /** Events owed to subscribers over the run (exact, from sequence numbers). */
  expected: number;
  /** Owed but never received, summed over subscribers. */
  lost: number;
  /** Received twice. */
  duplicated: number;
  /** Subscribers closed by the server (e.g. over MAX_QUEUE_BYTES); with reconnect they resume. */
  dropped: number;
  publishErrors: number;
  /** CPU of the server process(es) (1 = one core). */
  serverCpu: number;
  /** CPU of redis-server (NaN with an outside Redis), also counted in otherCpu. */
  redisCpu: number;
  /** CPU of everything on the other core: redis-server, client processes, publisher. */
  otherCpu: number;
  /** CPU of processes this benchmark did not start. */
  foreignCpu: number;
  /** Highest RSS of the server process(es) while measuring (sampled every 100 ms), in bytes. */
  rssPeak: number;
  /** The gateway's event-loop delay while measuring (its /metrics; NaN for other servers), ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  /** The gateway's garbage collection while measuring: ms of pauses per second, and pauses. */
  gcMsPerS: number;
  gcPauses: number;
  /**
   * Fixed-rate runs: the p99 (µs) of the events sent in each second of the measured interval,
   * in order, to tell a warm-up transient from a steady tail.
   */
  p99BySecond?: number[];
  /** A row of several rounds (medianRows): the rows it is the median of, in round order. */
  rounds?: DeliveryRow[];
}

/**
 * The rows of several rounds of the same runs, one row per server and load (in the first
 * round's order): each figure the median of the rounds', except `max` and `loop max` (the
 * highest), `others CPU` (the highest: a disturbed round must show) and the counts of lost,
 * duplicated and dropped (summed: every round must deliver everything). `rounds` keeps the rows.
 */
export function medianRows(perRound: DeliveryRow[][]): DeliveryRow[] {
  const groups = new Map<string, DeliveryRow[]>();
  for (const rows of perRound) {
    for (const row of rows) {
      const key = `${row.server}\u0000${row.load}`;
      const group = groups.get(key);
      if (group) group.push(row);
      else groups.set(key, [row]);
    }
  }
  return [...groups.values()].map((rows) => {
    const first = rows[0] as DeliveryRow;
    const med = (f: (r: DeliveryRow) => number) => median(rows.map(f));
    const highest = (f: (r: DeliveryRow) => number) => Math.max(...rows.map(f));
    const sum = (f: (r: DeliveryRow) => number) => rows.reduce((n, r) => n + f(r), 0);
    const row: DeliveryRow = {
      server: first.server,
      load: first.load,
      eventsPerSec: med((r) => r.eventsPerSec),
      deliveriesPerSec: med((r) => r.deliveriesPerSec),
      p50: med((r) => r.p50),
      p99: med((r) => r.p99),
      max: highest((r) => r.max),
      expected: sum((r) => r.expected),
      lost: sum((r) => r.lost),
      duplicated: sum((r) => r.duplicated),
      dropped: sum((r) => r.dropped),
      publishErrors: sum((r) => r.publishErrors),
      serverCpu: med((r) => r.serverCpu),
      redisCpu: med((r) => r.redisCpu),
      otherCpu: med((r) => r.otherCpu),
      foreignCpu: highest((r) => r.foreignCpu),
      rssPeak: med((r) => r.rssPeak),
      loopP99Ms: med((r) => r.loopP99Ms),
      loopMaxMs: highest((r) => r.loopMaxMs),
      gcMsPerS: med((r) => r.gcMsPerS),
      gcPauses: med((r) => r.gcPauses),
      rounds: rows,
    };
    const startups = rows.map((r) => r.startupMs ?? NaN);
    if (startups.some(Number.isFinite)) row.startupMs = median(startups);
    return row;
  });
}

/**
 * What the gateway's /metrics say of the interval between two scrapes: event-loop delay (prom-
 * client resets its histogram at every scrape, so the second scrape covers just the interval)
 * and garbage collection (cumulative: the difference). NaN without metrics (Nchan, naive).
 */
function runtimeFigures(
  before: Map<string, number> | undefined,
  after: Map<string, number> | undefined,
  seconds: number,
): Pick<DeliveryRow, 'loopP99Ms' | 'loopMaxMs' | 'gcMsPerS' | 'gcPauses'> {
  const read = (m: Map<string, number> | undefined, name: string) => m?.get(name) ?? NaN;
  return {
    loopP99Ms: read(after, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    loopMaxMs: read(after, 'nodejs_eventloop_lag_max_seconds') * 1000,
    gcMsPerS:
      ((read(after, 'nodejs_gc_duration_seconds_sum') -
        read(before, 'nodejs_gc_duration_seconds_sum')) *
        1000) /
      seconds,
    gcPauses:
      read(after, 'nodejs_gc_duration_seconds_count') -
      read(before, 'nodejs_gc_duration_seconds_count'),
  };
}

/** The server's RSS, sampled every 100 ms until stop(); stop() returns the highest seen. */
function rssSampler(server: ServerUnderTest): { stop(): number } {
  let peak = NaN;
  const take = () => {
    const rss = server.pids().reduce((sum, pid) => sum + rssBytes(pid), 0);
    if (!(rss <= peak)) peak = rss;
  };
  take();
  const timer = setInterval(take, 100);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

let runs = 0;

/**
 * Publishes through `target` to the subscribers of `pool` and measures. Closed loop (`window`)
 * unless `openLoop`; at `rate` events/s when given. Latency covers events sent while measuring;
 * loss and duplicates are exact over the whole run, after waiting for the slowest subscriber.
 */
export async function measureDelivery(
  ctx: BenchContext,
  server: ServerUnderTest,
  pool: ClientPool,
  target: PublishTarget,
  run: {
    load: string;
    topics: number;
    rate?: number;
    seconds: number;
    openLoop?: boolean;
  },
): Promise<DeliveryRow> {
  const p = ctx.params;
  const id = ++runs;
  // Warm-up: JIT, connection pools and the pipeline between publisher and clients.
  const warmUpMs = run.rate === undefined ? 1000 : 500;
  // At a fixed rate, latencies are also kept per second of send time, from about where the
  // measured interval begins (events of the warm-up fall in negative seconds).
  const timeline = run.rate !== undefined && !run.openLoop;
  await pool.startRun(id, timeline, now() + warmUpMs);
  // At a fixed rate the window is only a safety net: ~256 KiB of frames per subscriber, far
  // below MAX_QUEUE_BYTES (1 MiB), so a server that falls behind slows the publisher down
  // (the achieved rate shows it) rather than dropping subscribers.
  const frameBytes = p.payloadBytes + 64;
  const window = run.openLoop
    ? undefined
    : run.rate === undefined
      ? p.window
      : Math.max(p.window, Math.floor((256 * 1024) / frameBytes));
  const publisher = new Publisher({
    target,
    topics: run.topics,
    run: id,
    ...(run.rate !== undefined ? { rate: run.rate } : {}),
    ...(window !== undefined ? { window, progress: pool } : {}),
    concurrency: p.concurrency,
    payloadBytes: p.payloadBytes,
  });
  const serverCpu = new CpuMeter(() => processesCpuSeconds(server.pids()));
  const redisCpu = new CpuMeter(() =>
    ctx.redis.pid === undefined ? NaN : processesCpuSeconds([ctx.redis.pid]),
  );
  const ours = () => [...server.pids(), process.pid, ctx.redis.pid ?? -1, ...pool.pids()];
  const otherCpu = new CpuMeter(() =>
    processesCpuSeconds([process.pid, ctx.redis.pid ?? -1, ...pool.pids()]),
  );
  // Whatever else runs on the machine meanwhile (it disturbs the figures when it is large).
  const foreignCpu = new CpuMeter(() => machineCpuSeconds() - processesCpuSeconds(ours()));
  // Counts taken together, so rates cover exactly the measured interval.
  const mark = async () => {
    const received = await pool.received();
    return { at: now(), sent: publisher.sent, received };
  };
  let first: Awaited<ReturnType<typeof mark>>;
  let last: Awaited<ReturnType<typeof mark>>;
  let serverShare: number;
  let redisShare: number;
  let otherShare: number;
  let foreignShare: number;
  let rssPeak: number;
  let metricsBefore: Map<string, number> | undefined;
  let metricsAfter: Map<string, number> | undefined;
  // A scrape before the events start, as Prometheus's would have come on any gateway up for a few
  // seconds: the one that opens the measured interval then runs warm code, not a first render.
  await scrapeMetrics(server.url);
  publisher.start();
  try {
    await sleep(warmUpMs);
    // Also resets the gateway's event-loop delay histogram: the next scrape covers the interval.
    metricsBefore = await scrapeMetrics(server.url);
    await sleep(100);
    // Latencies count for events sent from here until the end of the interval.
    await pool.window({ start: now() });
    first = await mark();
    serverCpu.start();
    redisCpu.start();
    otherCpu.start();
    foreignCpu.start();
    const rss = rssSampler(server);
    await sleep(run.seconds * 1000);
    last = await mark();
    metricsAfter = await scrapeMetrics(server.url);
    rssPeak = rss.stop();
    serverShare = serverCpu.stop();
    redisShare = redisCpu.stop();
    otherShare = otherCpu.stop();
    foreignShare = foreignCpu.stop();
    await pool.window({ end: last.at });
  } finally {
    await publisher.stop();
  }
  await drain(pool, id, Math.floor(publisher.acked / run.topics), 15_000);
  const report = await pool.report();
  const { totals } = account(report.conns, publisher.ledgers);
  const dropped = report.conns.reduce((n, c) => n + c.drops, 0);
  const elapsedS = (last.at - first.at) / 1000;
  if (totals.lost > 0 || totals.duplicated > 0 || dropped > 0 || publisher.failed > 0) {
    log(
      `${server.name} ${run.load}: ${totals.lost} events lost, ${totals.duplicated} duplicated, ` +
        `${dropped} subscribers dropped, ${publisher.failed} publish errors` +
        (publisher.lastError ? ` (${publisher.lastError.message})` : ''),
    );
  }
  const row: DeliveryRow = {
    server: server.name,
    load: run.load,
    eventsPerSec: (last.sent - first.sent) / elapsedS,
    deliveriesPerSec: (last.received - first.received) / elapsedS,
    p50: percentileUs(report.histogram, 50),
    p99: percentileUs(report.histogram, 99),
    max: report.histogram.totalCount > 0 ? report.histogram.maxValue : NaN,
    expected: totals.expected,
    lost: totals.lost,
    duplicated: totals.duplicated,
    dropped,
    publishErrors: publisher.failed,
    serverCpu: serverShare,
    redisCpu: redisShare,
    otherCpu: otherShare,
    foreignCpu: foreignShare,
    rssPeak,
    ...runtimeFigures(metricsBefore, metricsAfter, (last.at - first.at) / 1000),
  };
  if (timeline) {
    row.p99BySecond = [];
    for (let second = 0; second < run.seconds; second++) {
      const h = report.timeline.get(second);
      row.p99BySecond.push(h ? percentileUs(h, 99) : NaN);
    }
  }
  for (const h of report.timeline.values()) h.destroy();
  report.histogram.destroy();
  return row;
}

/**
 * Waits until the slowest open subscriber has `perTopic` events and nobody is reconnecting,
 * then until nothing more arrives for a moment; at most `timeoutMs`.
 */
export async function drain(
  pool: ClientPool,
  run: number,
  perTopic: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pool.minReceived(run) >= perTopic && pool.progress().down === 0) break;
    await sleep(25);
  }
  let seen = await pool.received();
  while (Date.now() < deadline) {
    await sleep(200);
    const again = await pool.received();
    if (again === seen) break;
    seen = again;
  }
}

/** Every subscriber got every event it was owed, once. */
export function deliveryOk(row: DeliveryRow, allowDrops = false): boolean {
  return (
    row.lost === 0 &&
    row.duplicated === 0 &&
    (allowDrops || row.dropped === 0) &&
    row.publishErrors === 0
  );
}

export const DELIVERY_HEAD = [
  'server',
  'load',
  'events/s',
  'deliveries/s',
  'per server CPU-s',
  'p50 ms',
  'p99 ms',
  'max ms',
  'server RSS MB (peak)',
  'loop p99 ms',
  'loop max ms',
  'GC ms/s',
  'GC pauses',
  'lost',
  'dup',
  'server CPU',
  'Redis CPU',
  'core-1 CPU',
  'others CPU',
];

export function deliveryCells(r: DeliveryRow): string[] {
  return [
    r.server,
    r.load,
    int(r.eventsPerSec),
    int(r.deliveriesPerSec),
    int(r.deliveriesPerSec / r.serverCpu),
    ms(r.p50),
    ms(r.p99),
    ms(r.max),
    mb(r.rssPeak),
    num(r.loopP99Ms),
    num(r.loopMaxMs),
    num(r.gcMsPerS),
    Number.isFinite(r.gcPauses) ? int(r.gcPauses) : '-',
    `${int(r.lost)}${r.dropped > 0 ? ` (${r.dropped} dropped)` : ''}${r.publishErrors > 0 ? ` (${r.publishErrors} publish errors)` : ''}`,
    int(r.duplicated),
    pct(r.serverCpu),
    Number.isFinite(r.redisCpu) ? pct(r.redisCpu) : '-',
    pct(r.otherCpu),
    pct(r.foreignCpu),
  ];
}

/**
 * Deliveries per CPU-second of `a` over those of `b`: of the server alone, or of the server and
 * redis-server together (both keep their events in Redis: what a server asks of Redis counts).
 */
export function perCpuRatio(a: DeliveryRow, b: DeliveryRow, withRedis: boolean): number {
  const cpu = (r: DeliveryRow) => r.serverCpu + (withRedis ? r.redisCpu : 0);
  return a.deliveriesPerSec / cpu(a) / (b.deliveriesPerSec / cpu(b));
}

/**
 * streamcast against Nchan on the same load: deliveries per server CPU-second, p99; with rounds,
 * the ratio of the medians (the verdict) and the range of the per-round ratios.
 */
export function ratioLines(rows: DeliveryRow[], scenario: string): string[] {
  const out: string[] = [];
  for (const load of new Set(rows.map((r) => r.load))) {
    const ours = rows.find((r) => r.server === 'streamcast' && r.load === load);
    const nchan = rows.find((r) => r.server === 'nchan' && r.load === load);
    if (!ours || !nchan) continue;
    const perCore = perCpuRatio(ours, nchan, false);
    const raw = ours.deliveriesPerSec / nchan.deliveriesPerSec;
    const p99 = ours.p99 / nchan.p99;
    const withRedis = perCpuRatio(ours, nchan, true);
    const range = (ratio: (a: DeliveryRow, b: DeliveryRow) => number) =>
      roundsRange(ours, nchan, ratio);
    out.push(
      `${scenario} ${load}: streamcast/Nchan deliveries/s ${raw.toFixed(2)}x, per server CPU-second ` +
        `${perCore.toFixed(2)}x${range((a, b) => perCpuRatio(a, b, false))} ` +
        `(target >= 1: ${perCore >= 1 ? 'met' : 'missed'}), per server + Redis CPU-second ` +
        (Number.isFinite(withRedis)
          ? `${withRedis.toFixed(2)}x${range((a, b) => perCpuRatio(a, b, true))}`
          : '-') +
        `; p99 ${ms(ours.p99)} vs ${ms(nchan.p99)} ms = ${p99.toFixed(2)}x${range((a, b) => a.p99 / b.p99)} ` +
        `(target <= 1: ${p99 <= 1 ? 'met' : 'missed'})`,
    );
  }
  return out;
}

/**
 * Each server's CPU per delivery over node-http's (plain node:http, no Redis: what Node itself
 * charges) on the same load: where streamcast and Nchan stand against it. Not perCpuRatio: with
 * Redis counted, only the other server's counts (node-http asks nothing of the idle Redis).
 */
export function nodeHttpLines(rows: DeliveryRow[], scenario: string): string[] {
  const out: string[] = [];
  for (const base of rows.filter((r) => r.server === 'node-http')) {
    const others = rows.filter((r) => r.server !== 'node-http' && r.load === base.load);
    if (others.length === 0) continue;
    const baseCost = base.serverCpu / base.deliveriesPerSec;
    const cost = (r: DeliveryRow, withRedis: boolean) =>
      (r.serverCpu + (withRedis ? r.redisCpu : 0)) / r.deliveriesPerSec / baseCost;
    out.push(
      `${scenario} ${base.load}: server CPU per delivery over node-http's (plain node:http): ` +
        others
          .map(
            (r) =>
              `${r.server} ${cost(r, false).toFixed(2)}x` +
              (Number.isFinite(r.redisCpu) ? ` (${cost(r, true).toFixed(2)}x with its Redis)` : ''),
          )
          .join(', '),
    );
  }
  return out;
}

/** The fixed-rate rows' p99 second by second (each round's, with rounds): a warm-up or steady? */
export function timelineLines(rows: DeliveryRow[]): string[] {
  const seconds = (r: DeliveryRow) =>
    r.p99BySecond && r.p99BySecond.length > 1 ? r.p99BySecond.map((us) => ms(us)).join('  ') : '';
  const lines = rows
    .map((r) => ({ r, text: (r.rounds ?? [r]).map(seconds).filter(Boolean).join('  |  ') }))
    .filter(({ text }) => text !== '')
    .map(({ r, text }) => `  ${r.server} ${r.load}: ${text}`);
  if (lines.length === 0) return [];
  const rounds = rows.some((r) => (r.rounds?.length ?? 1) > 1) ? ', round by round ("|")' : '';
  return [
    `p99 ms of the events sent in each second of the measured interval (fixed rate)${rounds}:`,
    ...lines,
  ];
}

/** Each server's peak RSS round by round (the table has their medians): one line per server. */
export function rssRoundsLines(rows: DeliveryRow[]): string[] {
  if (!rows.some((r) => (r.rounds?.length ?? 1) > 1)) return [];
  const servers = [...new Set(rows.map((r) => r.server))];
  return [
    'server RSS MB (peak), round by round:',
    ...servers.map(
      (server) =>
        `  ${server}: ` +
        rows
          .filter((r) => r.server === server)
          .map((r) => `${r.load} ${(r.rounds ?? [r]).map((x) => mb(x.rssPeak)).join(' ')}`)
          .join('; '),
    ),
  ];
}

export function foreignWarning(rows: Array<{ foreignCpu: number }>): string[] {
  const busiest = Math.max(...rows.map((r) => r.foreignCpu).filter(Number.isFinite));
  return busiest > 0.2
    ? [
        `WARNING: processes this benchmark did not start used up to ${pct(busiest)} of a core while it ` +
          'measured ("others CPU"): the figures are disturbed; rerun on a quiet machine.',
      ]
    : [];
}

/** A figure to one decimal, '-' when there is none. */
function num(x: number): string {
  return Number.isFinite(x) ? x.toFixed(1) : '-';
}
