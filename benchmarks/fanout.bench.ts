/**
 * Fan-out: one topic, BENCH_SUBSCRIBERS subscribers, one server process on a core of its own.
 * Each server gets two runs: saturated (the publisher goes as fast as the slowest subscriber
 * keeps up, BENCH_WINDOW events ahead at most) and a fixed rate (BENCH_RATE events/s). Servers:
 * streamcast, the naive design, and Nchan (the reference a user would otherwise pick).
 *
 *   node -r ts-node/register/transpile-only benchmarks/fanout.bench.ts   (this scenario alone)
 */
import { randomUUID } from 'node:crypto';
import { engineTarget, httpBatchTarget } from '@streamcast/loadtest';
import { withContext, type BenchContext } from './lib/context';
import {
  DELIVERY_HEAD,
  deliveryCells,
  deliveryOk,
  foreignWarning,
  measureDelivery,
  medianRows,
  nodeHttpLines,
  ratioLines,
  rssRoundsLines,
  timelineLines,
  type DeliveryRow,
} from './lib/delivery';
import { nchanMissing } from './lib/nginx';
import { header, int, log, table } from './lib/report';
import { inRounds, roundsNote } from './lib/rounds';
import { withServer } from './lib/scenario';
import { gatewayRunner, openAll, specsFor, type ServerKind } from './lib/servers';

export type FanoutRow = DeliveryRow;

/**
 * Runs the delivery runs of one scenario (fan-out, many topics) against one fresh server
 * process; stops everything it started.
 */
export async function runDeliveryScenario(
  ctx: BenchContext,
  kind: ServerKind,
  scenario: {
    name: string;
    subscribers: number;
    topics: number;
    /** Events/s of the fixed-rate runs, one after the other on the same server. */
    rates: readonly number[];
    /** Publish in batches gathered this long (POST /publish with an array): the fixed rate only. */
    batchMs?: number;
    /**
     * Publish straight into Redis with the publisher package, as a producer process does,
     * instead of POST /publish (a gateway only): the fixed rate only.
     */
    engine?: boolean;
  },
): Promise<DeliveryRow[]> {
  const p = ctx.params;
  log(`${scenario.name} ${kind}: starting the server and ${scenario.subscribers} subscribers`);
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const env = scenario.engine ? { REDIS_PREFIX: prefix } : undefined;
  return withServer(ctx, kind, env ? { env } : {}, async ({ server, pool, useTarget }) => {
    const run = randomUUID().slice(0, 6);
    const topics = Array.from(
      { length: scenario.topics },
      (_, i) => `bench-${scenario.name}-${run}-${i}`,
    );
    await openAll(pool, specsFor(server, topics, scenario.subscribers), kind);
    const batchMs = scenario.batchMs;
    const target = useTarget(
      scenario.engine
        ? await engineTarget(ctx.redis.url, prefix, topics)
        : batchMs
          ? httpBatchTarget(server.url, topics, batchMs)
          : server.target(topics, p.concurrency),
    );
    const fixedOnly = batchMs !== undefined || scenario.engine === true;
    const loadAt = (rate: number): string =>
      scenario.engine
        ? `${rate}/s into Redis (publisher package)`
        : batchMs
          ? `${rate}/s in ${batchMs} ms batches`
          : `${rate}/s`;
    const rows: DeliveryRow[] = [];
    if (p.seconds > 0 && !fixedOnly) {
      log(`${scenario.name} ${kind}: saturated for ${p.seconds} s`);
      rows.push(
        await measureDelivery(ctx, server, pool, target, {
          load: 'saturated',
          topics: topics.length,
          seconds: p.seconds,
        }),
      );
    }
    for (const rate of scenario.rates) {
      log(`${scenario.name} ${kind}: ${rate} events/s for ${p.rateSeconds} s`);
      rows.push(
        await measureDelivery(ctx, server, pool, target, {
          load: loadAt(rate),
          topics: topics.length,
          rate,
          seconds: p.rateSeconds,
        }),
      );
    }
    if (server.startupMs !== undefined) for (const row of rows) row.startupMs = server.startupMs;
    return rows;
  });
}

/** Fan-out rows of every server asked for (BENCH_ONLY: fanout, naive; Nchan with fanout). */
export async function runFanout(ctx: BenchContext): Promise<FanoutRow[]> {
  const only = ctx.params.only;
  const kinds: ServerKind[] = [];
  if (only.has('fanout')) kinds.push('streamcast');
  if (only.has('fanout') && ctx.params.nodeHttp) kinds.push('node-http');
  if (only.has('naive')) kinds.push('naive');
  if (only.has('fanout') && !nchanMissing()) kinds.push('nchan');
  const scenario = {
    name: 'fanout',
    subscribers: ctx.params.subscribers,
    topics: 1,
    rates: ctx.params.rates,
  };
  return medianRows(
    await inRounds(
      ctx,
      'fanout',
      kinds.map((kind) => () => runDeliveryScenario(ctx, kind, scenario)),
    ),
  );
}

export function fanoutOk(row: FanoutRow): boolean {
  return deliveryOk(row);
}

/** The fan-out table, and the ratios against the naive design and Nchan when they ran. */
export function formatFanout(ctx: BenchContext, rows: FanoutRow[]): string {
  const p = ctx.params;
  const out = [
    `fan-out: 1 topic x ${int(p.subscribers)} subscribers, ${p.payloadBytes}-byte events, one server process` +
      roundsNote(p.rounds),
    table(DELIVERY_HEAD, rows.map(deliveryCells)),
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
  const started = rows.find((r) => r.server === 'streamcast' && r.startupMs !== undefined);
  if (started?.startupMs !== undefined) {
    out.push(
      `streamcast: ready ${int(started.startupMs)} ms after its start (gateway ${gatewayRunner()})`,
    );
  }
  out.push(...ratioLines(rows, 'fan-out'), ...nodeHttpLines(rows, 'fan-out'));
  out.push(...timelineLines(rows), ...rssRoundsLines(rows));
  const missing = nchanMissing();
  if (missing && p.only.has('fanout')) out.push(missing);
  out.push(...foreignWarning(rows));
  for (const r of rows.filter((row) => !fanoutOk(row))) {
    out.push(
      `FAILED: ${r.server} ${r.load}: ${r.lost} events lost, ${r.duplicated} duplicated, ${r.dropped} subscribers dropped, ` +
        `${r.publishErrors} publish errors (every subscriber must get every event)`,
    );
  }
  out.push(
    'streamcast: POST /publish to the gateway; Nchan: POST /pub/<topic> (Redis storage, 1 worker);',
    'naive: PUBLISH straight to Redis, one Redis subscriber connection per SSE client, JSON.parse +',
    `JSON.stringify per client. "saturated": the publisher keeps at most BENCH_WINDOW=${p.window} events ahead`,
    'of the slowest subscriber. Latency: publish call -> frame parsed by the client, for events sent while',
    'measuring; lost/dup: exact, from per-topic sequence numbers. "per server CPU-s": deliveries/s divided',
    'by the server\'s CPU (the per-core figure); "others CPU": processes not started by the benchmark;',
    '"server RSS (peak)": the highest VmRSS of the server\'s processes while measuring, every 100 ms;',
    '"loop" and "GC": the gateway\'s event-loop delay (p99, max) and garbage collection (pause ms per',
    'second, pauses) while measuring, from its /metrics (prom-client); Nchan has neither.',
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const rows = await runFanout(ctx);
    process.stdout.write(`${header(ctx)}\n\n${formatFanout(ctx, rows)}\n`);
    return rows.every(fanoutOk);
  });
}
