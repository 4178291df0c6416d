/**
 * Fan-out: one topic, BENCH_SUBSCRIBERS subscribers, one server process on a core of its own.
 * Each server gets two runs: saturated (the publisher goes as fast as the slowest subscriber
 * keeps up, BENCH_WINDOW events ahead at most) and a fixed rate (BENCH_RATE events/s).
 *
 *   node -r ts-node/register/transpile-only benchmarks/fanout.bench.ts   (this scenario alone)
 */
import { randomUUID } from 'node:crypto';
import { sleep, waitFor } from '@streamcast/testing';
import { ClientPool } from './lib/client-pool';
import { withContext, type BenchContext } from './lib/context';
import { CpuMeter, machineCpuSeconds, processesCpuSeconds } from './lib/procs';
import { Publisher, httpTarget, now, redisTarget, type PublishTarget } from './lib/publisher';
import { header, int, ms, pct, table } from './lib/report';
import { startNaive, startStreamcast, type ServerUnderTest } from './lib/servers';

export type FanoutServer = 'streamcast' | 'naive';

export interface FanoutRow {
  server: FanoutServer;
  /** `saturated` or the fixed rate asked for. */
  load: string;
  /** Events published per second while measuring. */
  eventsPerSec: number;
  /** Events received per second, summed over subscribers. */
  deliveriesPerSec: number;
  /** Publish → receive latency in µs, over events sent while measuring. */
  p50: number;
  p99: number;
  max: number;
  /** Events each subscriber should have received in the run. */
  expected: number;
  /** Sum over subscribers of events missing at the end of the run. */
  lost: number;
  /** Subscribers the server dropped (e.g. send queue over MAX_QUEUE_BYTES). */
  dropped: number;
  publishErrors: number;
  /** CPU of the server process (1 = one core). */
  serverCpu: number;
  /** CPU of everything on the other core: redis-server, client processes, publisher. */
  otherCpu: number;
  /** CPU of processes this benchmark did not start. */
  foreignCpu: number;
}

const TOPIC = 'bench-fanout';
const BATCH = 500;
let runs = 0;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** Runs both fan-out runs against one fresh server process; stops everything it started. */
export async function runFanout(ctx: BenchContext, which: FanoutServer): Promise<FanoutRow[]> {
  const p = ctx.params;
  const naivePrefix = `bench-naive-${randomUUID().slice(0, 8)}`;
  log(`fan-out ${which}: starting the server and ${p.subscribers} subscribers`);
  const server =
    which === 'streamcast'
      ? await startStreamcast(ctx.redis.url)
      : await startNaive(ctx.redis.url, naivePrefix);
  let pool: ClientPool | undefined;
  let target: PublishTarget | undefined;
  try {
    pool = await ClientPool.start(p.clientProcesses);
    const path = `/events?topic=${TOPIC}`;
    let ready = 0;
    for (let asked = 0; asked < p.subscribers; asked += BATCH) {
      const n = Math.min(BATCH, p.subscribers - asked);
      ({ ready } = await pool.open(server.port, Array<string>(n).fill(path)));
    }
    if (ready !== p.subscribers) {
      throw new Error(`only ${ready} of ${p.subscribers} subscribers connected to ${which}`);
    }
    target =
      which === 'streamcast'
        ? httpTarget(server.url, TOPIC, p.concurrency)
        : redisTarget(ctx.redis.url, `${naivePrefix}:${TOPIC}`);
    const rows: FanoutRow[] = [];
    log(`fan-out ${which}: saturated for ${p.seconds} s`);
    rows.push(await measure(ctx, which, server, pool, target, 'saturated', undefined, p.seconds));
    log(`fan-out ${which}: ${p.rate} events/s for ${p.rateSeconds} s`);
    rows.push(
      await measure(ctx, which, server, pool, target, `${p.rate}/s`, p.rate, p.rateSeconds),
    );
    return rows;
  } catch (err) {
    const output = server.output().trim();
    if (output) log(`${which} server output:\n${output}`);
    throw err;
  } finally {
    await target?.close();
    await pool?.close();
    await server.stop();
  }
}

async function measure(
  ctx: BenchContext,
  which: FanoutServer,
  server: ServerUnderTest,
  pool: ClientPool,
  target: PublishTarget,
  load: string,
  rate: number | undefined,
  seconds: number,
): Promise<FanoutRow> {
  const p = ctx.params;
  const run = ++runs;
  await pool.startRun(run);
  // At a fixed rate the window is only a safety net: ~256 KiB of frames per subscriber, far
  // below MAX_QUEUE_BYTES (1 MiB), so a server that falls behind slows the publisher down
  // (the achieved rate shows it) rather than dropping subscribers.
  const frameBytes = p.payloadBytes + 64;
  const window =
    rate === undefined ? p.window : Math.max(p.window, Math.floor((256 * 1024) / frameBytes));
  const publisher = new Publisher({
    target,
    pool,
    run,
    rate,
    window,
    concurrency: p.concurrency,
    payloadBytes: p.payloadBytes,
  });
  const serverCpu = new CpuMeter(() => processesCpuSeconds([server.pid]));
  const ours = () => [server.pid, process.pid, ctx.redis.pid ?? -1, ...pool.pids()];
  const otherCpu = new CpuMeter(() => processesCpuSeconds(ours().slice(1)));
  // Whatever else runs on the machine meanwhile (it disturbs the figures when it is large).
  const foreignCpu = new CpuMeter(() => machineCpuSeconds() - processesCpuSeconds(ours()));
  // Counts taken together, so rates cover exactly the measured interval.
  const mark = async () => {
    const received = await pool.received();
    return { at: now(), sent: publisher.sent, received };
  };
  let first = { at: 0, sent: 0, received: 0 };
  let last = first;
  let serverShare = NaN;
  let otherShare = NaN;
  let foreignShare = NaN;
  publisher.start();
  try {
    // Warm-up: JIT, connection pools and the pipeline between publisher and clients.
    await sleep(rate === undefined ? 1000 : 500);
    // Latencies count for events sent from here until the end of the interval.
    await pool.window({ start: now() });
    first = await mark();
    serverCpu.start();
    otherCpu.start();
    foreignCpu.start();
    await sleep(seconds * 1000);
    last = await mark();
    serverShare = serverCpu.stop();
    otherShare = otherCpu.stop();
    foreignShare = foreignCpu.stop();
    await pool.window({ end: last.at });
  } finally {
    await publisher.stop();
  }
  const expected = publisher.acked;
  // Everything sent must arrive: wait for the slowest open subscriber to have it all.
  await waitFor(() => pool.minReceived(run) >= expected, 'the last events', 15_000).catch(() => {});
  const report = await pool.report(expected);
  const elapsedS = (last.at - first.at) / 1000;
  if (report.lost > 0 || report.open < report.connections || publisher.failed > 0) {
    log(
      `${which} ${load}: ${report.lost} events lost, ${report.connections - report.open} subscribers dropped, ` +
        `${publisher.failed} publish errors${publisher.lastError ? ` (${publisher.lastError.message})` : ''}`,
    );
  }
  return {
    server: which,
    load,
    eventsPerSec: (last.sent - first.sent) / elapsedS,
    deliveriesPerSec: (last.received - first.received) / elapsedS,
    p50: report.histogram.quantile(0.5),
    p99: report.histogram.quantile(0.99),
    max: report.histogram.max,
    expected,
    lost: report.lost,
    dropped: report.connections - report.open,
    publishErrors: publisher.failed,
    serverCpu: serverShare,
    otherCpu: otherShare,
    foreignCpu: foreignShare,
  };
}

/** Every subscriber got every event it should have. */
export function fanoutOk(row: FanoutRow): boolean {
  return row.lost === 0 && row.dropped === 0 && row.publishErrors === 0;
}

/** The fan-out table, and the streamcast/naive ratio when both ran. */
export function formatFanout(ctx: BenchContext, rows: FanoutRow[]): string {
  const p = ctx.params;
  const out = [
    `fan-out: 1 topic x ${int(p.subscribers)} subscribers, ${p.payloadBytes}-byte events, one server process`,
    table(
      [
        'server',
        'load',
        'events/s',
        'deliveries/s',
        'per CPU-s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'lost',
        'server CPU',
        'core-1 CPU',
        'others CPU',
      ],
      rows.map((r) => [
        r.server,
        r.load,
        int(r.eventsPerSec),
        int(r.deliveriesPerSec),
        int(r.deliveriesPerSec / r.serverCpu),
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        `${int(r.lost)}${r.dropped > 0 ? ` (${r.dropped} dropped)` : ''}${r.publishErrors > 0 ? ` (${r.publishErrors} publish errors)` : ''}`,
        pct(r.serverCpu),
        pct(r.otherCpu),
        pct(r.foreignCpu),
      ]),
    ),
  ];
  const ours = rows.find((r) => r.server === 'streamcast' && r.load === 'saturated');
  const naive = rows.find((r) => r.server === 'naive' && r.load === 'saturated');
  if (ours && naive && naive.deliveriesPerSec > 0) {
    const ratio = ours.deliveriesPerSec / naive.deliveriesPerSec;
    const perCpu =
      ours.deliveriesPerSec / ours.serverCpu / (naive.deliveriesPerSec / naive.serverCpu);
    out.push(
      `streamcast / naive deliveries/s (saturated): ${ratio.toFixed(2)}x (target >= 3x); ` +
        `per server CPU-second: ${perCpu.toFixed(2)}x`,
    );
  }
  const busiest = Math.max(...rows.map((r) => r.foreignCpu).filter(Number.isFinite));
  if (busiest > 0.2) {
    out.push(
      `WARNING: processes this benchmark did not start used up to ${pct(busiest)} of a core while it ` +
        'measured ("others CPU"): the figures are disturbed; rerun on a quiet machine.',
    );
  }
  for (const r of rows.filter((row) => !fanoutOk(row))) {
    out.push(
      `FAILED: ${r.server} ${r.load}: ${r.lost} events lost, ${r.dropped} subscribers dropped, ` +
        `${r.publishErrors} publish errors (every subscriber must get every event)`,
    );
  }
  out.push(
    'streamcast: POST /publish to the gateway; naive: PUBLISH straight to Redis, one Redis subscriber',
    'connection per SSE client, JSON.parse + JSON.stringify per client. "saturated": the publisher keeps',
    `at most BENCH_WINDOW=${p.window} events ahead of the slowest subscriber. Latency: publish call -> frame`,
    'parsed by the client, for events sent while measuring; lost: events a subscriber never got.',
    '"per CPU-s": deliveries/s divided by server CPU, less sensitive to other load;',
    '"others CPU": processes not started by the benchmark (should be ~0).',
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const rows: FanoutRow[] = [];
    if (ctx.params.only.has('fanout')) rows.push(...(await runFanout(ctx, 'streamcast')));
    if (ctx.params.only.has('naive')) rows.push(...(await runFanout(ctx, 'naive')));
    process.stdout.write(`${header(ctx)}\n\n${formatFanout(ctx, rows)}\n`);
    return rows.every(fanoutOk);
  });
}
