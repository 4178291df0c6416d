/**
 * Idle connections: BENCH_IDLE_CONNECTIONS streams spread over BENCH_IDLE_TOPICS topics, opened
 * 500 at a time on one fresh gateway, then left idle. Reports the gateway's RSS growth.
 *
 *   node -r ts-node/register/transpile-only benchmarks/idle.bench.ts   (this scenario alone)
 */
import type { ConnSpec } from '@streamcast/loadtest';
import { sleep } from '@streamcast/testing';
import { withContext, type BenchContext } from './lib/context';
import { nchanMissing } from './lib/nginx';
import { openFileLimit, rssBytes } from './lib/procs';
import { header, int, log, mb, table } from './lib/report';
import { withServer } from './lib/scenario';
import { gatewayRunner, type ServerKind, type ServerUnderTest } from './lib/servers';

const BATCH = 500;

export interface IdleSample {
  label: string;
  connections: number;
  /** VmRSS from /proc/<pid>/status. */
  rss: number;
  /** process_resident_memory_bytes from /metrics. */
  metricsRss: number;
  heapUsed: number;
  /** The same after a full garbage collection in the gateway. */
  rssAfterGc: number;
  heapUsedAfterGc: number;
}

export interface IdleResult {
  server: ServerKind;
  connections: number;
  topics: number;
  rampSeconds: number;
  /** Start to ready of the server, when it reports it (the gateway). */
  startupMs?: number;
  samples: IdleSample[];
}

/** RSS of every process of the server (Nchan: master and worker). */
function serverRss(server: ServerUnderTest): number {
  return server.pids().reduce((sum, pid) => sum + rssBytes(pid), 0);
}

async function metrics(server: ServerUnderTest): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/metrics`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m && !out.has(m[1] as string)) out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

async function sample(
  server: ServerUnderTest,
  label: string,
  connections: number,
): Promise<IdleSample> {
  const rss = serverRss(server); // before the scrape allocates anything
  if (server.name !== 'streamcast') {
    // Nchan: no /metrics, no garbage collector.
    return {
      label,
      connections,
      rss,
      metricsRss: NaN,
      heapUsed: NaN,
      rssAfterGc: NaN,
      heapUsedAfterGc: NaN,
    };
  }
  const m = await metrics(server);
  // Then what is left once garbage is gone (gateway-hooks.js collects on SIGUSR2).
  process.kill(server.pid, 'SIGUSR2');
  await sleep(1000);
  const rssAfterGc = rssBytes(server.pid);
  const afterGc = await metrics(server);
  return {
    label,
    connections: m.get('sse_connections') ?? NaN,
    rss,
    metricsRss: m.get('process_resident_memory_bytes') ?? NaN,
    heapUsed: m.get('nodejs_heap_size_used_bytes') ?? NaN,
    rssAfterGc,
    heapUsedAfterGc: afterGc.get('nodejs_heap_size_used_bytes') ?? NaN,
  };
}

export async function runIdle(
  ctx: BenchContext,
  kind: ServerKind = 'streamcast',
): Promise<IdleResult> {
  const p = ctx.params;
  // The gateway holds one descriptor per connection, plus its own few dozen.
  const limit = openFileLimit();
  if (limit < p.idleConnections + 256) {
    throw new Error(
      `the open-file limit (${limit}) is too low for ${p.idleConnections} connections: raise it ` +
        `(ulimit -Hn, as root) or lower BENCH_IDLE_CONNECTIONS`,
    );
  }
  log(
    `idle ${kind}: starting the server and ${p.idleConnections} connections over ${p.idleTopics} topics`,
  );
  // Enough client processes that none holds more than ~5,000 sockets.
  const processes = Math.max(
    p.clientProcesses,
    Math.ceil(p.idleConnections / Math.min(5000, limit - 256)),
  );
  return withServer(ctx, kind, { processes, instrumented: true }, async ({ server, pool }) => {
    const topics = Array.from({ length: p.idleTopics }, (_, i) => `bench-idle-${i}`);
    const spec = (i: number): ConnSpec => {
      const k = i % p.idleTopics;
      return { t: 0, k, path: server.path(topics[k] as string) };
    };
    // Warm-up: every topic subscribed once, published to once and left again, so that code
    // paths are compiled and topics exist in Redis before the baseline is taken.
    const warm = Array.from({ length: p.idleTopics }, (_, i) => spec(i));
    const opened = await pool.open(warm);
    if (opened.ready !== warm.length)
      throw new Error(`warm-up: ${opened.ready} of ${warm.length} connected`);
    const target = server.target(topics, 8);
    try {
      for (let i = 0; i < p.idleTopics; i++) await target.publish(i, JSON.stringify({ warm: i }));
    } finally {
      await target.close();
    }
    await pool.drop();
    await sleep(3000);
    const samples = [await sample(server, 'baseline (warm, no connections)', 0)];
    const started = performance.now();
    let ready = 0;
    for (let asked = 0; asked < p.idleConnections; asked += BATCH) {
      const n = Math.min(BATCH, p.idleConnections - asked);
      ({ ready } = await pool.open(Array.from({ length: n }, (_, k) => spec(asked + k))));
      if (ready !== asked + n)
        throw new Error(`only ${ready} of ${asked + n} idle connections are open`);
    }
    const rampSeconds = (performance.now() - started) / 1000;
    log(
      `idle ${kind}: ${ready} connected in ${rampSeconds.toFixed(1)} s; idle for ${p.idleSeconds} s`,
    );
    await sleep(p.idleSeconds * 1000);
    samples.push(await sample(server, `${int(p.idleConnections)} idle connections`, ready));
    await pool.drop();
    await sleep(3000);
    samples.push(await sample(server, 'after they closed (3 s)', 0));
    return {
      server: kind,
      connections: p.idleConnections,
      topics: p.idleTopics,
      rampSeconds,
      ...(server.startupMs === undefined ? {} : { startupMs: server.startupMs }),
      samples,
    };
  });
}

/** Idle runs of every server asked for: streamcast, then Nchan when installed. */
export async function runIdleAll(ctx: BenchContext): Promise<IdleResult[]> {
  const results = [await runIdle(ctx, 'streamcast')];
  if (!nchanMissing()) results.push(await runIdle(ctx, 'nchan'));
  return results;
}

function perConnection(result: IdleResult): number {
  const [base, loaded] = result.samples;
  return base && loaded ? (loaded.rss - base.rss) / result.connections : NaN;
}

export function formatIdle(results: IdleResult[]): string {
  const first = results[0];
  if (!first) return '';
  const rows = results.flatMap((result) =>
    result.samples.map((s) => [
      result.server,
      s.label,
      int(s.connections),
      mb(s.rss),
      mb(s.metricsRss),
      mb(s.heapUsed),
      mb(s.rssAfterGc),
      mb(s.heapUsedAfterGc),
    ]),
  );
  const out = [
    `idle: ${int(first.connections)} SSE connections over ${first.topics} topics on one server process ` +
      `(opened ${BATCH} at a time: ${results.map((r) => `${r.server} ${r.rampSeconds.toFixed(1)} s`).join(', ')})`,
    table(
      [
        'server',
        'sample',
        'connections',
        'RSS MB',
        'RSS MB (/metrics)',
        'heap used MB',
        'RSS MB after GC',
        'heap used MB after GC',
      ],
      rows,
    ),
  ];
  for (const result of results) {
    if (result.startupMs !== undefined) {
      out.push(
        `${result.server}: ready ${int(result.startupMs)} ms after its start (gateway ${gatewayRunner()})`,
      );
    }
  }
  const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
  for (const result of results) {
    const [base, loaded] = result.samples;
    if (!base || !loaded) continue;
    const delta = loaded.rss - base.rss;
    const perConn = perConnection(result);
    out.push(
      `${result.server}: RSS delta ${mb(delta)} MB for ${int(result.connections)} connections = ` +
        `${int(perConn)} bytes (${(perConn / 1024).toFixed(1)} KiB) per connection` +
        (result.server === 'streamcast'
          ? `; target <= 6 KiB per connection: ${verdict(perConn <= 6 * 1024)}` +
            `; after a forced GC: ${int((loaded.rssAfterGc - base.rssAfterGc) / result.connections)} bytes ` +
            `(heap: ${int((loaded.heapUsedAfterGc - base.heapUsedAfterGc) / result.connections)} bytes) per connection`
          : ''),
    );
  }
  const ours = results.find((r) => r.server === 'streamcast');
  const nchan = results.find((r) => r.server === 'nchan');
  if (ours && nchan) {
    out.push(
      `idle: streamcast/Nchan RSS per connection ${(perConnection(ours) / perConnection(nchan)).toFixed(2)}x`,
    );
  }
  const missing = nchanMissing();
  if (missing) out.push(missing);
  out.push(
    "MB = 10^6 bytes. RSS = VmRSS (/proc/<pid>/status) of the server's processes (Nchan: master and",
    'worker), read first; the delta uses it. "after GC": 1 s after a full GC in the gateway (Nchan has none).',
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const results = await runIdleAll(ctx);
    process.stdout.write(`${header(ctx)}\n\n${formatIdle(results)}\n`);
    return true;
  });
}
