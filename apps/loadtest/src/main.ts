/**
 * streamcast-loadtest: opens many SSE connections to gateways (or their balancer), publishes at
 * a rate, and reports exactly what each connection got, the latency, and the servers' figures;
 * writes result.json and report.svg. `npm run loadtest -- --help`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { UsageError, parseCommandLine, runMain } from '@streamcast/command-line';
import { isValidTopic } from '@streamcast/protocol';
import { checkAddresses } from './addresses';
import { renderChart } from './chart';
import { ProgressLine } from './progress';
import {
  defaultTopicPrefix,
  runLoadTest,
  type LoadTestOptions,
  type LoadTestResult,
} from './run-load-test';

const PROGRAM = 'streamcast-loadtest';
const DEFAULT_URL = 'http://127.0.0.1:3000';

/** Bounds of every numeric option: a run is always limited in time and size. */
const LIMITS = {
  connections: [1, 100_000],
  topics: [1, 100_000],
  rate: [1, 1_000_000],
  duration: [1, 3600],
  events: [1, 100_000_000],
  ramp: [0, 100_000],
  payload: [64, 65_536],
  concurrency: [1, 1024],
  processes: [1, 64],
  'drain-timeout': [1, 600],
  'connect-timeout': [1, 600],
} as const;

export const HELP = `Usage:
  ${PROGRAM} [options]

Opens --connections SSE connections (raw sockets, spread over client processes) to the
gateways or their load balancer, spread over --topics topics; once they are open, publishes
--rate events per second (POST /publish, or straight into Redis with --redis) for --duration
seconds or --events events, whichever comes first; waits for the last events, then reports:
connections opened/held, events expected/delivered/lost/duplicated per connection (exact, from
sequence numbers in each event's data), publish -> receive latency (HdrHistogram: p50, p90, p99,
max), and the servers' own figures from GET /metrics where they answer it.

Writes <out>/result.json (everything, per connection too) and <out>/report.svg (latency over
time, latency distribution). Progress goes to stderr (a bar on a terminal), the summary to
stdout.

Targets:
  --url <url>              where subscribers connect: a gateway or the balancer (http:// only);
                           repeat for several gateways, connections go round robin
                           (env GATEWAY_URL; default ${DEFAULT_URL})
  --path <template>        subscription path, {topic} replaced (default /events?topic={topic})
  --publish-url <url>      gateway to POST /publish to (default: the first --url; a balancer
                           refuses /publish, so give a gateway here when --url is one)
  --redis <url>            publish straight into this Redis (the engine the gateways share)
                           instead of POST /publish
  --redis-cluster <nodes>  publish straight into this Redis Cluster instead (seed nodes
                           host:port,…, as the gateways' REDIS_CLUSTER_NODES)
  --prefix <prefix>        with --redis or --redis-cluster: the gateways' REDIS_PREFIX (default sse)
  --metrics-url <url>      scrape GET /metrics here before and after (repeatable; default:
                           every --url)
  --token <jwt>            bearer token for subscribing and publishing (env STREAMCAST_TOKEN)
  --target <host>          allow this host or address; without it only loopback addresses are
                           accepted (repeatable)

Load:
  -c, --connections <n>    SSE connections (default 100; 1-100000)
  --topics <n>             topics, connection i subscribes to topic i mod n (default 1)
  --topic-prefix <p>       topics are named <p>-0, <p>-1, ... (default loadtest-<random>)
  -r, --rate <n>           events per second over all topics, round robin (default 10)
  -d, --duration <s>       seconds of publishing (default 10; at most 3600)
  -n, --events <n>         stop publishing after this many events (default: no count)
  --ramp <n>               new connections per second (default 1000; 0 = as fast as they open)
  --payload <bytes>        size of each event's JSON data (default 128; 64-65536)
  --concurrency <n>        publishes in flight at once (default 32)
  --processes <n>          client processes (default: one per 5,000 connections, at most one
                           per core)
  --no-reconnect           do not reconnect lost connections (default: reconnect after the
                           server's retry: delay with Last-Event-ID, as EventSource does)
  --drain-timeout <s>      after publishing, wait at most this long for the last events
                           (default 10)
  --connect-timeout <s>    a connection without its first frame by then has failed (default 30)

Output:
  --out <dir>              where result.json and report.svg go
                           (default artifacts/loadtest/<date>-<time>/)
  --json                   print result.json to stdout instead of the summary
  -q, --quiet              no progress on stderr
  -h, --help               show this help

Each event's data is {"r":<run>,"s":<sequence number per topic>,"t":<send time, epoch ms>,
"p":"<padding>"}. A connection is owed every event published on its topic after its first
frame arrived; "lost" counts those it never got, "duplicated" those it got twice. Latency is
measured on this machine's clock, from the publish call to the frame parsed.

Exit codes:
  0  every connection opened and got every event exactly once, every publish succeeded
  1  connections failed, events were lost or duplicated, publishes failed, or the run failed
  2  bad usage: unknown option, value out of range, a target that is not allowed

Examples:
  ${PROGRAM} --url http://127.0.0.1:3000 -c 1000 -r 100 -d 30
  ${PROGRAM} --url http://127.0.0.1:8080 --publish-url http://127.0.0.1:3001 -c 5000 --topics 50 --ramp 500
  ${PROGRAM} --url http://10.0.0.5:3000 --target 10.0.0.5 -c 20000 --processes 4 -r 200 -n 10000

From the repository root: npm run loadtest -- --url http://127.0.0.1:3000 -c 1000 -r 100
`;

interface Parsed {
  options: LoadTestOptions;
  out: string;
  json: boolean;
  quiet: boolean;
  targets: string[];
}

function int(name: keyof typeof LIMITS, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const [min, max] = LIMITS[name];
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new UsageError(
      `--${name} must be a whole number ${min}-${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

function httpUrl(flag: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${flag} must be an http:// URL (got ${JSON.stringify(raw)})`);
  }
  if (url.protocol !== 'http:') {
    throw new UsageError(
      `${flag} must be an http:// URL (got ${JSON.stringify(raw)}): the raw-socket clients speak plain HTTP/1.1`,
    );
  }
  return url;
}

export function parseOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Parsed | undefined {
  const parsed = parseCommandLine({
    args: argv,
    allowPositionals: false,
    options: {
      url: { type: 'string', multiple: true },
      path: { type: 'string' },
      'publish-url': { type: 'string' },
      redis: { type: 'string' },
      'redis-cluster': { type: 'string' },
      prefix: { type: 'string' },
      'metrics-url': { type: 'string', multiple: true },
      token: { type: 'string' },
      target: { type: 'string', multiple: true },
      connections: { type: 'string', short: 'c' },
      topics: { type: 'string' },
      'topic-prefix': { type: 'string' },
      rate: { type: 'string', short: 'r' },
      duration: { type: 'string', short: 'd' },
      events: { type: 'string', short: 'n' },
      ramp: { type: 'string' },
      payload: { type: 'string' },
      concurrency: { type: 'string' },
      processes: { type: 'string' },
      'no-reconnect': { type: 'boolean' },
      'drain-timeout': { type: 'string' },
      'connect-timeout': { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const v = parsed.values;
  if (v.help) return undefined;
  const urls = (v.url ?? [env.GATEWAY_URL || DEFAULT_URL]).map((u) => httpUrl('--url', u));
  const path = v.path ?? '/events?topic={topic}';
  if (!path.startsWith('/') || !path.includes('{topic}') || /[\s\r\n]/.test(path)) {
    throw new UsageError(
      `--path must start with / and contain {topic} (got ${JSON.stringify(path)})`,
    );
  }
  let redisUrl: string | undefined;
  if (v.redis !== undefined) {
    try {
      const u = new URL(v.redis);
      if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error('protocol');
      redisUrl = v.redis;
    } catch {
      throw new UsageError(`--redis must be a redis:// URL (got ${JSON.stringify(v.redis)})`);
    }
    if (v['publish-url'] !== undefined)
      throw new UsageError('give --redis or --publish-url, not both');
  }
  let redisClusterNodes: Array<{ host: string; port: number }> | undefined;
  if (v['redis-cluster'] !== undefined) {
    if (v.redis !== undefined || v['publish-url'] !== undefined) {
      throw new UsageError('give one of --redis-cluster, --redis, --publish-url');
    }
    redisClusterNodes = v['redis-cluster'].split(',').map((item) => {
      const match = /^\s*(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\s*$/.exec(item);
      const port = Number(match?.[2]);
      if (!match || port < 1 || port > 65535) {
        throw new UsageError(
          `--redis-cluster must be a comma list of host:port (got ${JSON.stringify(v['redis-cluster'])})`,
        );
      }
      return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
    });
  }
  const prefix = v.prefix ?? env.REDIS_PREFIX ?? 'sse';
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) {
    throw new UsageError(
      `--prefix must be 1-64 of A-Z a-z 0-9 _ . : - (got ${JSON.stringify(prefix)})`,
    );
  }
  const topicPrefix = v['topic-prefix'] ?? defaultTopicPrefix();
  if (!isValidTopic(`${topicPrefix}-0`) || topicPrefix.length > 180) {
    throw new UsageError(
      `--topic-prefix must make valid topics: up to 180 of A-Z a-z 0-9 _ - . : / (got ${JSON.stringify(topicPrefix)})`,
    );
  }
  const connections = int('connections', v.connections, 100);
  const topics = int('topics', v.topics, 1);
  if (topics > connections) {
    throw new UsageError(`--topics (${topics}) must not exceed --connections (${connections})`);
  }
  const processes = int(
    'processes',
    v.processes,
    Math.max(1, Math.min(cpus().length, Math.ceil(connections / 5000))),
  );
  const options: LoadTestOptions = {
    urls,
    path,
    ...(v['publish-url'] !== undefined
      ? { publishUrl: httpUrl('--publish-url', v['publish-url']) }
      : {}),
    ...(redisUrl ? { redisUrl } : {}),
    ...(redisClusterNodes ? { redisClusterNodes } : {}),
    redisPrefix: prefix,
    ...(v['metrics-url']
      ? { metricsUrls: v['metrics-url'].map((u) => httpUrl('--metrics-url', u)) }
      : {}),
    connections,
    topics,
    topicPrefix,
    rate: int('rate', v.rate, 10),
    durationS: int('duration', v.duration, 10),
    ...(v.events !== undefined ? { events: int('events', v.events, 0) } : {}),
    rampPerSec: int('ramp', v.ramp, 1000),
    payloadBytes: int('payload', v.payload, 128),
    concurrency: int('concurrency', v.concurrency, 32),
    processes,
    ...((v.token ?? env.STREAMCAST_TOKEN)
      ? { token: (v.token ?? env.STREAMCAST_TOKEN) as string }
      : {}),
    reconnect: !v['no-reconnect'],
    drainTimeoutS: int('drain-timeout', v['drain-timeout'], 10),
    connectTimeoutS: int('connect-timeout', v['connect-timeout'], 30),
  };
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return {
    options,
    out: resolve(v.out ?? join('artifacts', 'loadtest', stamp)),
    json: v.json === true,
    quiet: v.quiet === true,
    targets: v.target ?? [],
  };
}

/** Every host the run would touch, for the address check. */
function hostsOf(o: LoadTestOptions): Array<[string, string]> {
  const out: Array<[string, string]> = o.urls.map((u) => ['--url', u.hostname]);
  if (o.publishUrl) out.push(['--publish-url', o.publishUrl.hostname]);
  if (o.redisUrl) out.push(['--redis', new URL(o.redisUrl).hostname]);
  for (const node of o.redisClusterNodes ?? []) out.push(['--redis-cluster', node.host]);
  for (const u of o.metricsUrls ?? []) out.push(['--metrics-url', u.hostname]);
  return out;
}

function n(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-';
}

function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return value < 10
    ? `${value.toFixed(2)} ms`
    : value < 100
      ? `${value.toFixed(1)} ms`
      : `${value.toFixed(0)} ms`;
}

/** The summary printed at the end (stdout). */
export function formatSummary(r: LoadTestResult, files: string[]): string {
  const o = r.options as { urls: string[]; topics: number; rate: number; durationS: number };
  const lines = [
    `${PROGRAM}: ${n(r.connections.asked)} connections to ${o.urls.join(', ')} over ${n(o.topics)} topic(s), ` +
      `${n(o.rate)} events/s for up to ${o.durationS} s (${r.publish.target})`,
    `connections  opened ${n(r.connections.opened)}  failed ${n(r.connections.failed)}  held ${n(r.connections.held)}  ` +
      `drops ${n(r.connections.drops)}  ramp ${r.connections.rampSeconds.toFixed(1)} s`,
    `publishing   ${n(r.publish.sent)} events in ${r.publish.seconds.toFixed(1)} s (${n(r.publish.eventsPerSec)}/s), ` +
      `${n(r.publish.failed)} failed`,
    `events       expected ${n(r.events.expected)}  delivered ${n(r.events.delivered)}  lost ${n(r.events.lost)}  ` +
      `duplicated ${n(r.events.duplicated)}  (${n(r.events.deliveriesPerSec)} deliveries/s)`,
    `latency      p50 ${ms(r.latencyMs.p50)}  p90 ${ms(r.latencyMs.p90)}  p99 ${ms(r.latencyMs.p99)}  ` +
      `max ${ms(r.latencyMs.max)}  (publish -> receive, ${n(r.latencyMs.count)} events)`,
  ];
  for (const s of r.servers) {
    if (!s.available) {
      lines.push(`server       ${s.url}: no streamcast /metrics`);
      continue;
    }
    const rss = s.end.process_resident_memory_bytes;
    lines.push(
      `server       ${s.url}: delivered ${n(s.deltas.sse_events_delivered_total ?? NaN)}, ` +
        `slow-client disconnects ${n(s.deltas.sse_slow_client_disconnects_total ?? NaN)}, ` +
        `resets ${n(s.deltas.sse_resets_total ?? NaN)}, connections ${n(s.end.sse_connections ?? NaN)}, ` +
        `RSS ${rss !== undefined ? `${(rss / 1e6).toFixed(0)} MB` : '-'}, ` +
        `CPU ${s.cpuShare !== undefined ? `${Math.round(s.cpuShare * 100)}%` : '-'}`,
    );
  }
  lines.push(r.ok ? 'result       OK' : `result       FAILED: ${r.problems.join('; ')}`);
  if (files.length > 0) lines.push(`files        ${files.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export async function loadtestCommand(argv: string[]): Promise<number> {
  const parsed = parseOptions(argv);
  if (!parsed) {
    process.stdout.write(HELP);
    return 0;
  }
  await checkAddresses(hostsOf(parsed.options), parsed.targets).catch((err: Error) => {
    throw new UsageError(err.message);
  });
  const progress = new ProgressLine(process.stderr, parsed.quiet);
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress.note('interrupted: stopping every client process (Ctrl-C again to quit at once)');
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: LoadTestResult;
  try {
    result = await runLoadTest(parsed.options, { onProgress: (live) => progress.update(live) });
  } finally {
    progress.done();
  }
  mkdirSync(parsed.out, { recursive: true });
  const jsonPath = join(parsed.out, 'result.json');
  const svgPath = join(parsed.out, 'report.svg');
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  const o = parsed.options;
  writeFileSync(
    svgPath,
    renderChart({
      title:
        `${n(o.connections)} SSE connections, ${n(o.topics)} topic(s), ${n(result.publish.eventsPerSec)} events/s — ` +
        `p50 ${ms(result.latencyMs.p50)}, p99 ${ms(result.latencyMs.p99)}, max ${ms(result.latencyMs.max)}`,
      subtitle:
        `${o.urls.map((u) => u.origin).join(', ')} · expected ${n(result.events.expected)}, delivered ` +
        `${n(result.events.delivered)}, lost ${n(result.events.lost)}, duplicated ${n(result.events.duplicated)} · ` +
        `${result.startedAt} · ${result.machine.cores} cores, Node ${result.machine.node}`,
      timeline: result.timeline,
      distribution: result.distribution,
      marks: [
        { percentile: 50, ms: result.latencyMs.p50 },
        { percentile: 90, ms: result.latencyMs.p90 },
        { percentile: 99, ms: result.latencyMs.p99 },
        { percentile: 99.9, ms: result.latencyMs.p999 },
      ],
    }),
  );
  const shown = [jsonPath, svgPath].map((p) => {
    const rel = relative(process.cwd(), p);
    return rel.startsWith('..') ? p : rel;
  });
  if (parsed.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(formatSummary(result, shown));
  return result.ok ? 0 : 1;
}

export function main(argv: string[]): void {
  runMain(PROGRAM, () => loadtestCommand(argv));
}

if (require.main === module) main(process.argv.slice(2));
