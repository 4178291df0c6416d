/**
 * Many topics: BENCH_TOPICS_SUBSCRIBERS subscribers spread evenly over BENCH_TOPICS topics (one
 * topic each), events published to the topics in turn. Saturated and fixed-rate runs, as the
 * fan-out's, for streamcast and Nchan.
 *
 *   node -r ts-node/register/transpile-only benchmarks/topics.bench.ts   (this scenario alone)
 */
import { runDeliveryScenario } from './fanout.bench';
import { withContext, type BenchContext } from './lib/context';
import {
  DELIVERY_HEAD,
  deliveryCells,
  deliveryOk,
  foreignWarning,
  ratioLines,
  type DeliveryRow,
} from './lib/delivery';
import { nchanMissing } from './lib/nginx';
import { header, int, table } from './lib/report';
import type { ServerKind } from './lib/servers';

export async function runTopics(ctx: BenchContext): Promise<DeliveryRow[]> {
  const kinds: ServerKind[] = nchanMissing() ? ['streamcast'] : ['streamcast', 'nchan'];
  const rows: DeliveryRow[] = [];
  for (const kind of kinds) {
    rows.push(
      ...(await runDeliveryScenario(ctx, kind, {
        name: 'topics',
        subscribers: ctx.params.topicsSubscribers,
        topics: ctx.params.topicsCount,
        rate: ctx.params.topicsRate,
      })),
    );
  }
  return rows;
}

export function formatTopics(ctx: BenchContext, rows: DeliveryRow[]): string {
  const p = ctx.params;
  const out = [
    `many topics: ${int(p.topicsSubscribers)} subscribers over ${int(p.topicsCount)} topics ` +
      `(${int(p.topicsSubscribers / p.topicsCount)} each), events to the topics in turn, one server process`,
    table(DELIVERY_HEAD, rows.map(deliveryCells)),
    ...ratioLines(rows, 'many topics'),
  ];
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
    `fixed rate: BENCH_TOPICS_RATE=${p.topicsRate} events/s over all topics.`,
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
