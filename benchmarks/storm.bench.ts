/**
 * Resume storm: BENCH_STORM_SERVERS servers share one Redis behind a real nginx balancer
 * (least_conn, the first server weighted 100:1, so it holds BENCH_STORM_SUBSCRIBERS subscribers
 * and the others a few each). Events are published at BENCH_STORM_RATE to a surviving server.
 * The first server is killed (SIGKILL: no drain, sockets reset); every client reconnects
 * through the balancer as EventSource does (after the server's `retry:`, with Last-Event-ID).
 * Measured: time from the kill until every client has resumed, and events lost (must be 0) or
 * delivered twice, exactly, from per-topic sequence numbers. The same for Nchan servers.
 *
 *   node -r ts-node/register/transpile-only benchmarks/storm.bench.ts   (this scenario alone)
 */
import { randomUUID } from 'node:crypto';
import {
  account,
  now,
  percentileUs,
  Publisher,
  type ClientPool,
  type PublishTarget,
} from '@streamcast/loadtest';
import { sleep } from '@streamcast/testing';
import { startClients } from './lib/clients';
import { withContext, type BenchContext } from './lib/context';
import { drain } from './lib/delivery';
import { nchanMissing, startBalancer, type NginxProcess } from './lib/nginx';
import { coreCpuSeconds, processesCpuSeconds } from './lib/procs';
import { header, int, log, ms, table } from './lib/report';
import { inRounds, median, roundsRange } from './lib/rounds';
import {
  CLIENT_CORE,
  SERVER_CORE,
  startNchan,
  startStreamcast,
  type ServerKind,
  type ServerUnderTest,
} from './lib/servers';

export interface StormRow {
  server: ServerKind;
  /** Subscribers in all, and on the server that was killed. */
  subscribers: number;
  onKilled: number;
  /** Connections lost by the kill, and resumed on the others. */
  lostConnections: number;
  resumed: number;
  /** From the kill until the last client resumed, and per client: p50, p99 (ms). */
  allResumedMs: number;
  resumeP50Ms: number;
  resumeP99Ms: number;
  expected: number;
  lost: number;
  duplicated: number;
  publishErrors: number;
  /** Publish → receive latency of the whole run (µs), storm included. */
  p99: number;
  max: number;
  /**
   * CPU seconds from the clients' return (the kill plus the retry delay) until the last client
   * resumed: the surviving servers' processes, and the load side's core (clients, balancer,
   * Redis; NaN unpinned). The one busy the whole storm (all resumed - retry delay) bounded it.
   */
  survivorsCpuS: number;
  loadCoreCpuS: number;
  /** A row of several rounds (medianStormRow): the rows it is the median of, in round order. */
  rounds?: StormRow[];
}

const BATCH = 500;
const RUN = 1;
const STORM_TIMEOUT_MS = 30_000;

/** Subscribers a server holds, from its own figures: /metrics (gateway), /nchan_status. */
async function subscribersOn(server: ServerUnderTest): Promise<number> {
  try {
    if (server.name === 'nchan') {
      const text = await (await fetch(`${server.url}/nchan_status`)).text();
      return Number(/^subscribers:\s*(\d+)/m.exec(text)?.[1] ?? NaN);
    }
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/^sse_connections\s+(\S+)/m.exec(text)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

async function runStormOne(ctx: BenchContext, kind: ServerKind): Promise<StormRow> {
  const p = ctx.params;
  const shared = `bench-storm-${randomUUID().slice(0, 8)}`;
  log(`storm ${kind}: starting ${p.stormServers} servers and the balancer`);
  const servers: ServerUnderTest[] = [];
  let balancer: NginxProcess | undefined;
  let pool: ClientPool | undefined;
  let target: PublishTarget | undefined;
  try {
    for (let i = 0; i < p.stormServers; i++) {
      servers.push(
        kind === 'nchan'
          ? await startNchan(ctx.redis.url, ctx.pinned ? SERVER_CORE : undefined, shared)
          : // One key prefix: they are one deployment.
            await startStreamcast(ctx.redis.url, {
              env: { REDIS_PREFIX: shared, RETRY_MS: String(p.stormRetryMs) },
            }),
      );
    }
    const [victim, survivor] = servers as [ServerUnderTest, ServerUnderTest];
    balancer = await startBalancer(
      servers.map((s, i) => ({ port: s.port, weight: i === 0 ? 100 : 1 })),
      ctx.pinned ? CLIENT_CORE : undefined,
    );
    const others = Math.ceil(p.stormSubscribers / 100) * (servers.length - 1);
    const total = p.stormSubscribers + others;
    pool = await startClients(Math.max(p.clientProcesses, Math.ceil(total / 5000)), balancer.port, {
      reconnect: true,
      // What a client waits when the server sent no retry: (Nchan); gateways send RETRY_MS.
      retryMs: p.stormRetryMs,
    });
    const run = randomUUID().slice(0, 6);
    const topics = Array.from({ length: p.stormTopics }, (_, i) => `bench-storm-${run}-${i}`);
    log(`storm ${kind}: ${total} subscribers through the balancer`);
    let ready = 0;
    for (let i = 0; i < total; i += BATCH) {
      const specs = Array.from({ length: Math.min(BATCH, total - i) }, (_, j) => {
        const k = (i + j) % topics.length;
        return { t: 0, k, path: victim.path(topics[k] as string) };
      });
      ({ ready } = await pool.open(specs));
    }
    if (ready < total)
      throw new Error(`only ${ready} of ${total} subscribers connected through the balancer`);
    const onKilled = await subscribersOn(victim);
    target = survivor.target(topics, p.concurrency);
    await pool.startRun(RUN);
    await pool.window({ start: now() });
    const publisher = new Publisher({
      target,
      topics: topics.length,
      run: RUN,
      rate: p.stormRate,
      concurrency: p.concurrency,
      payloadBytes: p.payloadBytes,
    });
    publisher.start();
    let killAt = 0;
    let settled = false;
    const survivorsCpu = () => processesCpuSeconds(servers.slice(1).flatMap((s) => s.pids()));
    const loadCoreCpu = () => (ctx.pinned ? coreCpuSeconds(CLIENT_CORE) : NaN);
    const cpuNow = () => ({ survivors: survivorsCpu(), loadCore: loadCoreCpu() });
    let cpuAtReturn: { survivors: number; loadCore: number } | undefined;
    let cpuAtEnd = { survivors: NaN, loadCore: NaN };
    try {
      await sleep(3000);
      log(`storm ${kind}: killing the server holding ${onKilled} subscribers`);
      killAt = now();
      await victim.kill();
      // Until every client is back (open again), or the timeout.
      await sleep(200);
      const deadline = Date.now() + STORM_TIMEOUT_MS;
      while (Date.now() < deadline) {
        // The clients come back once the retry delay has passed.
        if (!cpuAtReturn && now() - killAt >= p.stormRetryMs) cpuAtReturn = cpuNow();
        const progress = pool.progress();
        if (progress.down === 0 && progress.open >= total) {
          settled = true;
          cpuAtEnd = cpuNow();
          break;
        }
        await sleep(20);
      }
      // Publishing goes on a little after the storm: the resumed streams must be live.
      await sleep(2000);
    } finally {
      await publisher.stop();
    }
    if (!settled)
      log(`storm ${kind}: not every client resumed within ${STORM_TIMEOUT_MS / 1000} s`);
    await drain(pool, RUN, Math.floor(publisher.acked / topics.length), 15_000);
    const report = await pool.report();
    const { totals } = account(report.conns, publisher.ledgers);
    if (!settled) {
      const d = report.down;
      log(
        `storm ${kind}: ${d.waiting + d.connecting + d.answered} clients not back (${d.waiting} waiting ` +
          `for the retry delay, ${d.connecting} connecting without an answer, ${d.answered} answered ` +
          `without a frame); client errors: ` +
          `${report.errors.connect} refused/reset/timed out, statuses ${JSON.stringify(report.errors.status)}, ` +
          `${report.errors.dropped} dropped after being live`,
      );
      for (const server of servers.slice(1)) {
        log(`storm ${kind}: ${server.url} holds ${await subscribersOn(server)} subscribers`);
      }
    }
    const hit = report.conns.filter((c) => c.drops > 0 && c.lostAt >= killAt);
    const resumed = hit.filter((c) => c.resumedAt >= c.lostAt && c.open);
    const times = resumed.map((c) => c.resumedAt - killAt).sort((a, b) => a - b);
    const at = (q: number) =>
      times.length
        ? (times[Math.min(times.length - 1, Math.floor(q * times.length))] as number)
        : NaN;
    const row: StormRow = {
      server: kind,
      subscribers: total,
      onKilled,
      lostConnections: hit.length,
      resumed: resumed.length,
      allResumedMs:
        resumed.length === hit.length && times.length ? (times[times.length - 1] as number) : NaN,
      resumeP50Ms: at(0.5),
      resumeP99Ms: at(0.99),
      expected: totals.expected,
      lost: totals.lost,
      duplicated: totals.duplicated,
      publishErrors: publisher.failed,
      p99: percentileUs(report.histogram, 99),
      max: report.histogram.totalCount > 0 ? report.histogram.maxValue : NaN,
      survivorsCpuS: cpuAtEnd.survivors - (cpuAtReturn?.survivors ?? NaN),
      loadCoreCpuS: cpuAtEnd.loadCore - (cpuAtReturn?.loadCore ?? NaN),
    };
    report.histogram.destroy();
    if (row.lost > 0 || row.duplicated > 0 || row.publishErrors > 0) {
      log(
        `storm ${kind}: ${row.lost} events lost, ${row.duplicated} duplicated, ${row.publishErrors} publish errors` +
          (publisher.lastError ? ` (${publisher.lastError.message})` : ''),
      );
    }
    return row;
  } catch (err) {
    for (const s of servers) {
      const output = s.output().trim();
      if (output) log(`${kind} ${s.port} output:\n${output.slice(-2000)}`);
    }
    if (balancer) log(`balancer output:\n${balancer.output().slice(-2000)}`);
    throw err;
  } finally {
    await target?.close();
    await pool?.close();
    await balancer?.stop();
    for (const s of servers) await s.stop();
  }
}

/**
 * BENCH_ROUNDS storms for each server (every one with fresh servers, balancer and clients),
 * streamcast and Nchan in turn, the order reversed every other round; one row per server, the
 * medians (medianStormRow).
 */
export async function runStorm(ctx: BenchContext): Promise<StormRow[]> {
  const kinds: ServerKind[] = nchanMissing() ? ['streamcast'] : ['streamcast', 'nchan'];
  const perRound = await inRounds(
    ctx,
    'storm',
    kinds.map((kind) => async () => [await runStormOne(ctx, kind)]),
  );
  return kinds.map((kind) => medianStormRow(perRound.flat().filter((row) => row.server === kind)));
}

/**
 * One server's storms as one row: each figure the median of the rounds', `max` the highest,
 * the counts of connections, resumes, losses and duplicates summed (every round must resume
 * every client and lose nothing). `rounds` keeps the rows.
 */
function medianStormRow(rows: StormRow[]): StormRow {
  if (rows.length === 1) return rows[0] as StormRow;
  const med = (f: (r: StormRow) => number) => median(rows.map(f));
  const sum = (f: (r: StormRow) => number) => rows.reduce((n, r) => n + f(r), 0);
  return {
    server: (rows[0] as StormRow).server,
    subscribers: med((r) => r.subscribers),
    onKilled: med((r) => r.onKilled),
    lostConnections: sum((r) => r.lostConnections),
    resumed: sum((r) => r.resumed),
    allResumedMs: med((r) => r.allResumedMs),
    resumeP50Ms: med((r) => r.resumeP50Ms),
    resumeP99Ms: med((r) => r.resumeP99Ms),
    expected: sum((r) => r.expected),
    lost: sum((r) => r.lost),
    duplicated: sum((r) => r.duplicated),
    publishErrors: sum((r) => r.publishErrors),
    p99: med((r) => r.p99),
    max: Math.max(...rows.map((r) => r.max)),
    survivorsCpuS: med((r) => r.survivorsCpuS),
    loadCoreCpuS: med((r) => r.loadCoreCpuS),
    rounds: rows,
  };
}

/** Every client resumed within 5 s, nothing lost or duplicated. */
export function stormOk(row: StormRow): boolean {
  return (
    row.resumed === row.lostConnections &&
    row.lost === 0 &&
    row.duplicated === 0 &&
    row.publishErrors === 0
  );
}

export function formatStorm(ctx: BenchContext, rows: StormRow[]): string {
  const p = ctx.params;
  const out = [
    `resume storm: ${p.stormServers} servers behind nginx (least_conn, weights 100:1), ${p.stormTopics} topics, ` +
      `${p.stormRate} events/s to a survivor; the server holding ~${int(p.stormSubscribers)} subscribers is SIGKILLed; ` +
      `clients reconnect after ${p.stormRetryMs} ms (BENCH_STORM_RETRY_MS)`,
    table(
      [
        'server',
        'subscribers',
        'on killed',
        'lost conns',
        'resumed',
        'all resumed s',
        'resume p50 s',
        'resume p99 s',
        'events owed',
        'lost',
        'dup',
        'p99 ms',
        'max ms',
        'survivors CPU-s',
        'load core CPU-s',
      ],
      rows.map((r) => [
        r.server,
        int(r.subscribers),
        int(r.onKilled),
        int(r.lostConnections),
        int(r.resumed),
        (r.allResumedMs / 1000).toFixed(2),
        (r.resumeP50Ms / 1000).toFixed(2),
        (r.resumeP99Ms / 1000).toFixed(2),
        int(r.expected),
        int(r.lost),
        int(r.duplicated),
        ms(r.p99),
        ms(r.max),
        Number.isFinite(r.survivorsCpuS) ? r.survivorsCpuS.toFixed(2) : '-',
        Number.isFinite(r.loadCoreCpuS) ? r.loadCoreCpuS.toFixed(2) : '-',
      ]),
    ),
  ];
  const ours = rows.find((r) => r.server === 'streamcast');
  const nchan = rows.find((r) => r.server === 'nchan');
  const rounds = ours?.rounds?.length ?? 1;
  if (ours) {
    // Per round: every client resumed (each round's counts; the row sums them).
    const each = ours.rounds ?? [ours];
    const within = each.every((r) => r.allResumedMs <= 5000 && r.resumed === r.lostConnections);
    out.push(
      `storm target: ${int(ours.onKilled)} clients resumed within 5 s with 0 events lost` +
        `${rounds > 1 ? ', every round' : ''}: ${within && ours.lost === 0 ? 'met' : 'missed'} ` +
        `(all resumed after ${each.map((r) => (r.allResumedMs / 1000).toFixed(2)).join(', ')} s, ` +
        `${int(ours.lost)} lost, ${int(ours.duplicated)} duplicated)`,
    );
  }
  if (ours && nchan) {
    const ratio = ours.allResumedMs / nchan.allResumedMs;
    out.push(
      `storm: streamcast/Nchan all resumed ${(ours.allResumedMs / 1000).toFixed(2)} vs ` +
        `${(nchan.allResumedMs / 1000).toFixed(2)} s = ${ratio.toFixed(2)}x` +
        roundsRange(ours, nchan, (a, b) => a.allResumedMs / b.allResumedMs) +
        ` (target <= 1: ${ratio <= 1 ? 'met' : 'missed'}); survivors CPU-s ` +
        `${(ours.survivorsCpuS / nchan.survivorsCpuS).toFixed(2)}x`,
    );
  }
  if (rounds > 1) {
    out.push(
      `${rounds} rounds (BENCH_ROUNDS), fresh servers in each, the table their medians (max the highest, ` +
        'counts summed); all resumed s by round: ' +
        rows
          .map(
            (r) =>
              `${r.server} ${(r.rounds ?? [r]).map((x) => (x.allResumedMs / 1000).toFixed(2)).join(' ')}`,
          )
          .join('; '),
    );
  }
  const missing = nchanMissing();
  if (missing) out.push(missing);
  for (const r of rows.filter((row) => !stormOk(row))) {
    out.push(
      `FAILED: ${r.server}: ${int(r.lostConnections - r.resumed)} clients not resumed, ${int(r.lost)} events lost, ` +
        `${int(r.duplicated)} duplicated, ${int(r.publishErrors)} publish errors`,
    );
  }
  out.push(
    `Times from the SIGKILL. Clients wait the retry: delay before reconnecting, as browsers do (gateways send`,
    `RETRY_MS=${p.stormRetryMs}; Nchan sends none, so the clients wait as long, as EventSource's default does):`,
    'that delay is part of every figure.',
    'lost/dup: exact, per subscriber, over the whole run; resumed = open again through the balancer.',
    '"survivors CPU-s": CPU seconds of the surviving servers from the clients\' return (kill + retry delay) until',
    'the last resumed; "load core CPU-s": core 1 busy over the same time (clients, balancer, Redis; pinned runs',
    'only). The one near (all resumed - retry delay) seconds was busy the whole storm, and bounded it.',
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const rows = await runStorm(ctx);
    process.stdout.write(`${header(ctx)}\n\n${formatStorm(ctx, rows)}\n`);
    return rows.filter((r) => r.server === 'streamcast').every(stormOk);
  });
}
