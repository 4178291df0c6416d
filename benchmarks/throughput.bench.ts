/**
 * Maximum throughput with loss accounting: BENCH_TP_SUBSCRIBERS subscribers over BENCH_TP_TOPICS
 * topics; the publisher runs open loop (BENCH_CONCURRENCY publishes in flight, no regard for
 * the subscribers) for BENCH_TP_SECONDS. A server that cannot keep up must say so (drop slow
 * subscribers, which reconnect with Last-Event-ID as EventSource does, or send `reset`), never
 * lose silently: every subscriber's events are counted exactly from their sequence numbers.
 *
 *   node -r ts-node/register/transpile-only benchmarks/throughput.bench.ts   (this scenario alone)
 */
import { randomUUID } from 'node:crypto';
import { scrapeMetrics } from '@streamcast/loadtest';
import { withContext, type BenchContext } from './lib/context';
import {
  DELIVERY_HEAD,
  deliveryCells,
  foreignWarning,
  measureDelivery,
  type DeliveryRow,
} from './lib/delivery';
import { nchanMissing } from './lib/nginx';
import { header, int, log, table } from './lib/report';
import { withServer } from './lib/scenario';
import { openAll, specsFor, type ServerKind } from './lib/servers';

export interface ThroughputRow extends DeliveryRow {
  /** From the gateway's /metrics (undefined for Nchan). */
  slowDisconnects?: number;
  resets?: number;
}

async function runOne(ctx: BenchContext, kind: ServerKind): Promise<ThroughputRow> {
  const p = ctx.params;
  log(`throughput ${kind}: starting the server and ${p.tpSubscribers} subscribers`);
  return withServer(
    ctx,
    kind,
    { clients: { reconnect: true } },
    async ({ server, pool, useTarget }) => {
      const run = randomUUID().slice(0, 6);
      const topics = Array.from({ length: p.tpTopics }, (_, i) => `bench-tp-${run}-${i}`);
      await openAll(pool, specsFor(server, topics, p.tpSubscribers), kind);
      const target = useTarget(server.target(topics, p.concurrency));
      const before = await scrapeMetrics(server.url);
      log(`throughput ${kind}: open loop for ${p.tpSeconds} s`);
      const row: ThroughputRow = await measureDelivery(ctx, server, pool, target, {
        load: 'open loop',
        topics: topics.length,
        seconds: p.tpSeconds,
        openLoop: true,
      });
      const after = await scrapeMetrics(server.url);
      if (before && after) {
        const delta = (name: string) => (after.get(name) ?? NaN) - (before.get(name) ?? NaN);
        row.slowDisconnects = delta('sse_slow_client_disconnects_total');
        row.resets = delta('sse_resets_total');
      }
      return row;
    },
  );
}

export async function runThroughput(ctx: BenchContext): Promise<ThroughputRow[]> {
  const kinds: ServerKind[] = nchanMissing() ? ['streamcast'] : ['streamcast', 'nchan'];
  const rows: ThroughputRow[] = [];
  for (const kind of kinds) rows.push(await runOne(ctx, kind));
  return rows;
}

/** Nothing lost or duplicated (drops are allowed: the clients resume). */
export function throughputOk(row: ThroughputRow): boolean {
  return row.lost === 0 && row.duplicated === 0 && row.publishErrors === 0;
}

export function formatThroughput(ctx: BenchContext, rows: ThroughputRow[]): string {
  const p = ctx.params;
  const out = [
    `maximum throughput: ${int(p.tpSubscribers)} subscribers over ${int(p.tpTopics)} topics, open-loop publisher ` +
      `(${p.concurrency} in flight) for ${p.tpSeconds} s, clients reconnect with Last-Event-ID`,
    table(
      [...DELIVERY_HEAD, 'reconnects', 'slow-client disconnects', 'resets'],
      rows.map((r) => [
        ...deliveryCells({ ...r, dropped: 0 }),
        int(r.dropped),
        r.slowDisconnects === undefined ? '-' : int(r.slowDisconnects),
        r.resets === undefined ? '-' : int(r.resets),
      ]),
    ),
  ];
  const ours = rows.find((r) => r.server === 'streamcast');
  const nchan = rows.find((r) => r.server === 'nchan');
  if (ours && nchan) {
    const perCore =
      ours.deliveriesPerSec / ours.serverCpu / (nchan.deliveriesPerSec / nchan.serverCpu);
    out.push(
      `throughput: streamcast/Nchan deliveries/s ${(ours.deliveriesPerSec / nchan.deliveriesPerSec).toFixed(2)}x, ` +
        `per server CPU-second ${perCore.toFixed(2)}x; events lost: streamcast ${int(ours.lost)}, Nchan ${int(nchan.lost)}`,
    );
  }
  const missing = nchanMissing();
  if (missing) out.push(missing);
  out.push(...foreignWarning(rows));
  for (const r of rows.filter((row) => !throughputOk(row))) {
    out.push(
      `FAILED: ${r.server}: ${r.lost} events lost, ${r.duplicated} duplicated, ${r.publishErrors} publish errors`,
    );
  }
  out.push(
    'lost: events published (acknowledged) that a subscriber never got, exact; reconnects: streams the server',
    "closed that the client resumed (Last-Event-ID); slow-client disconnects and resets: the gateway's /metrics.",
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const rows = await runThroughput(ctx);
    process.stdout.write(`${header(ctx)}\n\n${formatThroughput(ctx, rows)}\n`);
    return rows.every(throughputOk);
  });
}
