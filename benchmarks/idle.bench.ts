/**
 * Idle connections: BENCH_IDLE_CONNECTIONS streams spread over BENCH_IDLE_TOPICS topics, opened
 * 500 at a time on one fresh gateway, then left idle. Reports the gateway's RSS growth.
 *
 *   node -r ts-node/register/transpile-only benchmarks/idle.bench.ts   (this scenario alone)
 */
import { sleep } from '@streamcast/testing';
import { ClientPool } from './lib/client-pool';
import { withContext, type BenchContext } from './lib/context';
import { openFileLimit, rssBytes } from './lib/procs';
import { header, int, mb, table } from './lib/report';
import { startStreamcast, type ServerUnderTest } from './lib/servers';

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
  connections: number;
  topics: number;
  rampSeconds: number;
  samples: IdleSample[];
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
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

async function sample(server: ServerUnderTest, label: string): Promise<IdleSample> {
  const rss = rssBytes(server.pid); // before the scrape allocates anything
  const m = await metrics(server);
  // Then what is left once garbage is gone (instrumented-gateway.ts collects on SIGUSR2).
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

export async function runIdle(ctx: BenchContext): Promise<IdleResult> {
  const p = ctx.params;
  // The gateway holds one descriptor per connection, plus its own few dozen.
  const limit = openFileLimit();
  if (limit < p.idleConnections + 256) {
    throw new Error(
      `the open-file limit (${limit}) is too low for ${p.idleConnections} connections: raise it ` +
        `(ulimit -Hn, as root) or lower BENCH_IDLE_CONNECTIONS`,
    );
  }
  log(`idle: starting a gateway and ${p.idleConnections} connections over ${p.idleTopics} topics`);
  const server = await startStreamcast(ctx.redis.url, { instrumented: true });
  let pool: ClientPool | undefined;
  try {
    // Enough processes that none holds more than ~5,000 sockets.
    pool = await ClientPool.start(
      Math.max(p.clientProcesses, Math.ceil(p.idleConnections / Math.min(5000, limit - 256))),
    );
    const topic = (i: number) => `bench-idle-${i % p.idleTopics}`;
    // Warm-up: every topic subscribed once, published to once and left again, so that code
    // paths are compiled and topics exist in Redis before the baseline is taken.
    const warm = Array.from({ length: p.idleTopics }, (_, i) => `/events?topic=${topic(i)}`);
    const opened = await pool.open(server.port, warm);
    if (opened.ready !== warm.length)
      throw new Error(`warm-up: ${opened.ready} of ${warm.length} connected`);
    for (let i = 0; i < p.idleTopics; i++) {
      const res = await fetch(`${server.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: topic(i), data: { warm: i } }),
      });
      if (!res.ok) throw new Error(`warm-up publish answered ${res.status}`);
    }
    await pool.drop();
    await sleep(3000);
    const samples = [await sample(server, 'baseline (warm, no connections)')];
    const started = performance.now();
    let ready = 0;
    for (let asked = 0; asked < p.idleConnections; asked += BATCH) {
      const n = Math.min(BATCH, p.idleConnections - asked);
      const paths = Array.from({ length: n }, (_, k) => `/events?topic=${topic(asked + k)}`);
      ({ ready } = await pool.open(server.port, paths));
      if (ready !== asked + n)
        throw new Error(`only ${ready} of ${asked + n} idle connections are open`);
    }
    const rampSeconds = (performance.now() - started) / 1000;
    log(`idle: ${ready} connected in ${rampSeconds.toFixed(1)} s; idle for ${p.idleSeconds} s`);
    await sleep(p.idleSeconds * 1000);
    samples.push(await sample(server, `${int(p.idleConnections)} idle connections`));
    await pool.drop();
    await sleep(3000);
    samples.push(await sample(server, 'after they closed (3 s)'));
    return { connections: p.idleConnections, topics: p.idleTopics, rampSeconds, samples };
  } catch (err) {
    const output = server.output().trim();
    if (output) log(`gateway output:\n${output}`);
    throw err;
  } finally {
    await pool?.close();
    await server.stop();
  }
}

export function formatIdle(result: IdleResult): string {
  const [base, loaded] = result.samples;
  const rows = result.samples.map((s) => [
    s.label,
    int(s.connections),
    mb(s.rss),
    mb(s.metricsRss),
    mb(s.heapUsed),
    mb(s.rssAfterGc),
    mb(s.heapUsedAfterGc),
  ]);
  const out = [
    `idle: ${int(result.connections)} SSE connections over ${result.topics} topics on one gateway (opened ${BATCH} at a time in ${result.rampSeconds.toFixed(1)} s)`,
    table(
      [
        'gateway',
        'sse_connections',
        'RSS MB',
        'RSS MB (/metrics)',
        'heap used MB',
        'RSS MB after GC',
        'heap used MB after GC',
      ],
      rows,
    ),
  ];
  if (base && loaded) {
    const delta = loaded.rss - base.rss;
    const perConn = delta / result.connections;
    const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
    out.push(
      `RSS delta: ${mb(delta)} MB for ${int(result.connections)} connections = ` +
        `${int(perConn)} bytes (${(perConn / 1024).toFixed(1)} KiB) per connection`,
      `targets: <= 60 MB for 10,000 connections: ${verdict(delta / result.connections <= 6000)}` +
        `; later <= 6 KiB per connection: ${verdict(perConn <= 6 * 1024)}`,
      `after a forced GC: ${mb(loaded.rssAfterGc - base.rssAfterGc)} MB = ` +
        `${int((loaded.rssAfterGc - base.rssAfterGc) / result.connections)} bytes per connection ` +
        `(heap: ${int((loaded.heapUsedAfterGc - base.heapUsedAfterGc) / result.connections)} bytes)`,
    );
  }
  out.push(
    'MB = 10^6 bytes. RSS = VmRSS of the gateway process (/proc/<pid>/status), read first; the',
    'delta and targets use it. The "after GC" columns are read 1 s after a full GC in the gateway.',
  );
  return out.join('\n');
}

if (require.main === module) {
  void withContext(async (ctx) => {
    const result = await runIdle(ctx);
    process.stdout.write(`${header(ctx)}\n\n${formatIdle(result)}\n`);
    return true;
  });
}
