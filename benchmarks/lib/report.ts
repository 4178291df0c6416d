import { cpus, loadavg, release, totalmem, type } from 'node:os';
import type { BenchContext } from './context';
import { gatewayNode, gatewayNodeVersion, gatewayRunner } from './servers';

/** Lines that head every benchmark table: machine, runtime, pinning and parameters. */
export function header(ctx: BenchContext): string {
  const p = ctx.params;
  const cpu = cpus();
  const when = new Date().toISOString().replace('T', ' ').slice(0, 16);
  const params = [
    `BENCH_SUBSCRIBERS=${p.subscribers}`,
    `BENCH_SECONDS=${p.seconds}`,
    `BENCH_RATE=${p.rates.join(',')}`,
    `BENCH_RATE_SECONDS=${p.rateSeconds}`,
    `BENCH_ROUNDS=${p.rounds}`,
    `BENCH_WINDOW=${p.window}`,
    `BENCH_PAYLOAD_BYTES=${p.payloadBytes}`,
    `BENCH_CONCURRENCY=${p.concurrency}`,
    `BENCH_CLIENT_PROCESSES=${p.clientProcesses}`,
    `BENCH_IDLE_CONNECTIONS=${p.idleConnections}`,
    `BENCH_IDLE_TOPICS=${p.idleTopics}`,
    `BENCH_IDLE_SECONDS=${p.idleSeconds}`,
    `BENCH_TOPICS_SUBSCRIBERS=${p.topicsSubscribers}`,
    `BENCH_TOPICS=${p.topicsCount}`,
    `BENCH_TOPICS_RATE=${p.topicsRates.join(',')}`,
    `BENCH_TOPICS_ENGINE=${p.topicsEngine ? 1 : 0}`,
    `BENCH_NODE_HTTP=${p.nodeHttp ? 1 : 0}`,
    `BENCH_TP_SUBSCRIBERS=${p.tpSubscribers}`,
    `BENCH_TP_TOPICS=${p.tpTopics}`,
    `BENCH_TP_SECONDS=${p.tpSeconds}`,
    `BENCH_STORM_SUBSCRIBERS=${p.stormSubscribers}`,
    `BENCH_STORM_TOPICS=${p.stormTopics}`,
    `BENCH_STORM_RATE=${p.stormRate}`,
    `BENCH_STORM_SERVERS=${p.stormServers}`,
    `BENCH_STORM_RETRY_MS=${p.stormRetryMs}`,
    `BENCH_RESUME_CONNECTIONS=${p.resumeConnections}`,
    `BENCH_RESUME_ROUNDS=${p.resumeRounds}`,
    `BENCH_CLUSTER_SECONDS=${p.clusterSeconds}`,
    `BENCH_CLUSTER_TOPICS=${p.clusterTopics}`,
  ];
  return [
    `streamcast benchmarks, ${when} UTC`,
    `machine  ${cpu[0]?.model.trim() ?? '?'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${type()} ${release()}`,
    `runtime  Node ${process.version}, redis-server ${ctx.redisVersion}; gateway ${gatewayRunner()} (BENCH_GATEWAY)` +
      (gatewayNode() ? ` on Node ${gatewayNodeVersion()} (BENCH_GATEWAY_NODE)` : ''),
    `pinning  ${
      ctx.pinned
        ? 'core 0: the server under test alone; core 1: redis-server, client processes, publisher (taskset)'
        : 'none (taskset missing or one core): every process shares every core'
    }`,
    `params   ${params.slice(0, 6).join(' ')}`,
    `         ${params.slice(6, 11).join(' ')}`,
    `         ${params.slice(11, 17).join(' ')}`,
    `         ${params.slice(17, 22).join(' ')}`,
    `         ${params.slice(22).join(' ')}`,
    `load     ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (1, 5, 15 min load average at start)`,
  ].join('\n');
}

/** A Markdown table: first column left-aligned, the others right-aligned. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

export function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

export function ms(us: number): string {
  if (!Number.isFinite(us)) return '-';
  const v = us / 1000;
  return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
}

export function pct(share: number): string {
  // Tick accounting jitters by a percent or two: a share below 0 is 0.
  return Number.isFinite(share) ? `${Math.max(0, Math.round(share * 100))}%` : '-';
}

export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 1e6).toFixed(1) : '-';
}

/** A scenario's progress line, on stderr (the tables go to stdout). */
export function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}
