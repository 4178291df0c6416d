/**
 * Many topics: BENCH_TOPICS_SUBSCRIBERS subscribers spread evenly over BENCH_TOPICS topics (one
 * topic each), events published to the topics in turn. Saturated and fixed-rate runs, as the
 * fan-out's, for streamcast, node-http (plain node:http, lib/node-http-server.js) and Nchan.
 *
 *   node -r ts-node/register/transpile-only benchmarks/topics.bench.ts   (this scenario alone)
 */
import { runDeliveryScenario } from './fanout.bench';
import { withContext, type BenchContext } from './lib/context';
import {
  DELIVERY_HEAD,
  deliveryCells,
  deliveryOk,
  nodeHttpLines,
  foreignWarning,
  perCpuRatio,
  medianRows,
  ratioLines,
  rssRoundsLines,
  timelineLines,
  type DeliveryRow,
} from './lib/delivery';
import { nchanMissing } from './lib/nginx';
import { header, int, table } from './lib/report';
import { inRounds, roundsNote, roundsRange } from './lib/rounds';
import type { ServerKind } from './lib/servers';

export async function runTopics(ctx: BenchContext): Promise<DeliveryRow[]> {
  const kinds: ServerKind[] = ['streamcast'];
  if (ctx.params.nodeHttp) kinds.push('node-http');
  if (!nchanMissing()) kinds.push('nchan');
  const scenario = {
    name: 'topics',
    subscribers: ctx.params.topicsSubscribers,
    topics: ctx.params.topicsCount,
    rates: ctx.params.topicsRates,
  };
  const runs = kinds.map((kind) => () => runDeliveryScenario(ctx, kind, scenario));
  // The extra streamcast runs below, at the last rate only.
  const single = { ...scenario, rates: [lastRate(ctx)] };
  // The same rate from a producer that batches (POST /publish with an array): the cost per
  // event when the intake is shared by several events.
  const batchMs = ctx.params.topicsBatchMs;
  if (batchMs > 0) {
    runs.push(() => runDeliveryScenario(ctx, 'streamcast', { ...single, batchMs }));
  }
  // And from a producer process that publishes straight into Redis (the publisher package, as
  // the producers do): the gateway's cost per event without an intake at all.
  if (ctx.params.topicsEngine) {
    runs.push(() => runDeliveryScenario(ctx, 'streamcast', { ...single, engine: true }));
  }
  return medianRows(await inRounds(ctx, 'topics', runs));
}

function lastRate(ctx: BenchContext): number {
  return ctx.params.topicsRates[ctx.params.topicsRates.length - 1] as number;
}

export function formatTopics(ctx: BenchContext, rows: DeliveryRow[]): string {
  const p = ctx.params;
  const out = [
    `many topics: ${int(p.topicsSubscribers)} subscribers over ${int(p.topicsCount)} topics ` +
      `(${int(p.topicsSubscribers / p.topicsCount)} each), events to the topics in turn, one server process` +
      roundsNote(p.rounds),
    table(DELIVERY_HEAD, rows.map(deliveryCells)),
    ...ratioLines(rows, 'many topics'),
    ...nodeHttpLines(rows, 'many topics'),
    ...timelineLines(rows),
    ...rssRoundsLines(rows),
  ];
  const nchan = rows.find((r) => r.server === 'nchan' && r.load === `${lastRate(ctx)}/s`);
  if (nchan) {
    for (const other of rows.filter((r) => /batches|into Redis/.test(r.load))) {
      const perCore = perCpuRatio(other, nchan, false);
      const withRedis = perCpuRatio(other, nchan, true);
      const range = (redis: boolean) =>
        roundsRange(other, nchan, (a, b) => perCpuRatio(a, b, redis));
      out.push(
        `many topics ${other.load} (streamcast) vs ${nchan.load} (Nchan, one POST per event): ` +
          `per server CPU-second ${perCore.toFixed(2)}x${range(false)}, per server + Redis CPU-second ` +
          `${Number.isFinite(withRedis) ? `${withRedis.toFixed(2)}x${range(true)}` : '-'}`,
      );
    }
  }
  const missing = nchanMissing();
  if (missing) out.push(missing);
  out.push(...foreignWarning(rows));
  for (const r of rows.filter((row) => !deliveryOk(row))) {
    out.push(
      `FAILED: ${r.server} ${r.load}: ${r.lost} events lost, ${r.duplicated} duplicated, ${r.dropped} dropped`,
    );
  }
  out.push(
    `"saturated": at most BENCH_WINDOW=${p.window} events per topic ahead of the slowest subscriber;`,
    `fixed rate: BENCH_TOPICS_RATE=${p.topicsRates.join(',')} events/s over all topics; "in N ms batches":`,
    `streamcast at the last rate with the events of every BENCH_TOPICS_BATCH_MS=${p.topicsBatchMs} ms in one POST /publish`,
    `(an array), latency still counted from each event's publish call; "into Redis": streamcast with`,
    `the events published straight into Redis by the publisher package (@streamcast/publisher, in the`,
    `benchmark's process on core 1, as a producer would; BENCH_TOPICS_ENGINE=0: no such run), so the`,
    `gateway has no intake to do: its CPU is the pub/sub messages and the deliveries.`,
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const rows = await runTopics(ctx);
    process.stdout.write(`${header(ctx)}\n\n${formatTopics(ctx, rows)}\n`);
    return rows.every((r) => deliveryOk(r));
  });
}
