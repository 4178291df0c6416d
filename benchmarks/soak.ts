/**
 * `npm run soak`: many subscribers on two gateways for a long time, steady publishing, periodic
 * connection churn (clients drop and resume with Last-Event-ID, on either gateway). Samples each
 * gateway's RSS and V8 heap, and checks every subscriber got every event of its topics exactly
 * once and in order. Prints the samples and a verdict; exit code 1 when it fails. Not run by
 * `npm test` or CI: it takes SOAK_MINUTES.
 *
 *   SOAK_MINUTES=30 SOAK_SUBSCRIBERS=1000 npm run soak
 *
 * | variable | default | meaning |
 * | SOAK_MINUTES | 30 | duration of steady publishing |
 * | SOAK_SUBSCRIBERS | 1000 | streams open at any time (a tenth of them on two topics) |
 * | SOAK_TOPICS | 20 | topics published to, round robin |
 * | SOAK_RATE | 40 | events per second, all topics together |
 * | SOAK_CHURN_S / SOAK_CHURN_PCT | 15 / 5 | every SOAK_CHURN_S, this share of streams drops and resumes |
 * | SOAK_SAMPLE_S | 10 | memory sampling interval |
 * | SOAK_GATEWAYS | 2 | gateway processes |
 * | SOAK_WARMUP_S | a quarter of the run, at most 300 | samples before this are not judged |
 * | REDIS_URL | (a redis-server of its own) | the Redis to use |
 *
 * Verdict, for every gateway, comparing the first and the last quarter of the samples taken after
 * the warm-up: the median RSS within 10%, and the heap's floor (the smallest `heap used` of the
 * quarter: the live set after a collection; a sample at a random point of the GC sawtooth says
 * little) within 10%; and 0 events lost, 0 delivered twice, 0 resets. The heap's medians are
 * printed too.
 *
 * Heap and heap total come from the gateways' /metrics (`nodejs_heap_size_used_bytes`,
 * `nodejs_heap_size_total_bytes`), RSS from /proc/<pid>/status.
 */
import { readFileSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { createPublisher } from '@streamcast/publisher';
import {
  RedisProcess,
  readMetric,
  sleep,
  startGatewayProcess,
  testPrefix,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';
import { createParser } from 'eventsource-parser';
import { median } from './lib/rounds';
import { gatewayLaunch } from './lib/servers';

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`${name} must be a number (got ${raw})`);
  }
  return value;
};

const params = {
  minutes: num('SOAK_MINUTES', 30),
  subscribers: num('SOAK_SUBSCRIBERS', 1000),
  topics: num('SOAK_TOPICS', 20),
  rate: num('SOAK_RATE', 40),
  churnS: num('SOAK_CHURN_S', 15),
  churnPct: num('SOAK_CHURN_PCT', 5),
  sampleS: num('SOAK_SAMPLE_S', 10),
  gateways: num('SOAK_GATEWAYS', 2),
  warmupS: num('SOAK_WARMUP_S', -1),
};

const topicName = (i: number) => `soak-${i}`;

/** One subscriber: a raw stream that checks its own sequence per topic and resumes when dropped. */
class Subscriber {
  readonly topics: string[];
  /** Last seq received per topic (undefined: none yet). */
  private readonly last = new Map<string, number>();
  lastId: string | undefined;
  received = 0;
  lost = 0;
  duplicates = 0;
  resets = 0;
  reconnects = 0;
  unexpectedCloses = 0;
  private req: ClientRequest | undefined;
  private res: IncomingMessage | undefined;
  private closing = false;
  stopped = false;

  constructor(
    readonly index: number,
    private gateway: string,
    topics: string[],
  ) {
    this.topics = [...topics].sort();
    // Every subscriber is connected before the first publish: each topic's first event is seq 0.
    for (const topic of this.topics) this.last.set(topic, -1);
  }

  open(): Promise<void> {
    this.closing = false;
    const query = this.topics.map((t) => `topic=${encodeURIComponent(t)}`).join('&');
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.lastId) headers['last-event-id'] = this.lastId;
    return new Promise((resolve, reject) => {
      const req = request(`${this.gateway}/events?${query}`, { headers, agent: false });
      this.req = req;
      req.once('error', (err) => {
        if (!this.res) reject(err);
      });
      req.once('response', (res) => {
        this.res = res;
        if (res.statusCode !== 200) {
          reject(new Error(`stream answered ${res.statusCode}`));
          res.resume();
          return;
        }
        const parser = createParser({
          onEvent: (e) => this.onEvent(e.event ?? 'message', e.data, e.id),
        });
        res.setEncoding('utf8');
        let started = false;
        res.on('data', (chunk: string) => {
          parser.feed(chunk);
          if (!started) {
            started = true;
            resolve();
          }
        });
        res.on('error', () => {});
        res.once('close', () => {
          this.res = undefined;
          if (this.stopped) return;
          if (!this.closing) this.unexpectedCloses++;
          // Back after a moment, like EventSource; `retry:` is 3 s, a test need not wait that long.
          setTimeout(() => void this.reopen(), this.closing ? Math.random() * 1000 : 200);
        });
      });
      req.end();
    });
  }

  private async reopen(): Promise<void> {
    if (this.stopped) return;
    this.reconnects++;
    try {
      await this.open();
    } catch {
      setTimeout(() => void this.reopen(), 500);
    }
  }

  /** Drops the connection (churn); it comes back with its Last-Event-ID, maybe elsewhere. */
  churn(gateway: string): void {
    this.closing = true;
    this.gateway = gateway;
    this.req?.destroy();
  }

  stop(): void {
    this.stopped = true;
    this.req?.destroy();
  }

  private onEvent(type: string, data: string, id: string | undefined): void {
    if (id) this.lastId = id;
    if (type === 'reset') {
      this.resets++;
      return;
    }
    if (type !== 'n') return;
    const { t, s } = JSON.parse(data) as { t: string; s: number };
    this.received++;
    const prev = this.last.get(t);
    if (prev !== undefined) {
      if (s <= prev) this.duplicates++;
      else if (s > prev + 1) this.lost += s - prev - 1;
    }
    if (prev === undefined || s > prev) this.last.set(t, s);
  }

  /** Events still missing at the end: those after the last one received, up to `final`. */
  missing(final: Map<string, number>): number {
    let missing = 0;
    for (const topic of this.topics) {
      const end = final.get(topic) ?? -1;
      missing += Math.max(0, end - (this.last.get(topic) ?? -1));
    }
    return missing;
  }

  caughtUp(final: Map<string, number>): boolean {
    return this.topics.every((t) => {
      const end = final.get(t);
      return end === undefined || this.last.get(t) === end;
    });
  }
}

interface Sample {
  atS: number;
  rss: number[];
  heap: number[];
  heapTotal: number[];
  connections: number;
  published: number;
  received: number;
}

function rssOf(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : Number.NaN;
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

async function main(): Promise<number> {
  const durationMs = params.minutes * 60_000;
  const warmupMs =
    params.warmupS >= 0 ? params.warmupS * 1000 : Math.min(5 * 60_000, durationMs / 4);
  process.stdout.write(
    [
      `# soak: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${mib(totalmem())} MiB, ` +
        `Node ${process.version}`,
      `# ${params.minutes} min, ${params.subscribers} subscribers, ${params.topics} topics, ` +
        `${params.rate} events/s, churn ${params.churnPct}% every ${params.churnS} s, ` +
        `${params.gateways} gateways, warm-up ${(warmupMs / 1000).toFixed(0)} s`,
      '',
    ].join('\n'),
  );
  let redis: RedisProcess | undefined;
  const gateways: GatewayProcess[] = [];
  const subscribers: Subscriber[] = [];
  // Keeps the process alive while child processes (unref'd) are awaited.
  const keepAlive = setInterval(() => {}, 60_000);
  try {
    let redisUrl = process.env.REDIS_URL;
    if (!redisUrl) {
      redis = await RedisProcess.start();
      redisUrl = redis.url;
    }
    const prefix = testPrefix();
    const env = { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, LOG_LEVEL: 'warn' };
    for (let i = 0; i < params.gateways; i++)
      gateways.push(await startGatewayProcess(env, gatewayLaunch()));
    const gatewayUrl = (i: number) => (gateways[i % gateways.length] as GatewayProcess).url;

    for (let i = 0; i < params.subscribers; i++) {
      const topics = [topicName(i % params.topics)];
      if (i % 10 === 9) topics.push(topicName((i + 1) % params.topics));
      subscribers.push(new Subscriber(i, gatewayUrl(i), topics));
    }
    for (let i = 0; i < subscribers.length; i += 50) {
      await Promise.all(subscribers.slice(i, i + 50).map((s) => s.open()));
    }
    process.stderr.write(`soak: ${subscribers.length} subscribers connected\n`);

    const publisher = await createPublisher({ redisUrl, keyPrefix: prefix, validate: false });
    const final = new Map<string, number>();
    let published = 0;
    let publishFailures = 0;
    let running = true;
    const started = Date.now();
    const pad = 'x'.repeat(200);
    const publishing = (async () => {
      const intervalMs = 1000 / params.rate;
      let next = Date.now();
      for (let i = 0; running; i++) {
        const topic = topicName(i % params.topics);
        const s = (final.get(topic) ?? -1) + 1;
        try {
          await publisher.publish(topic, 'n', { t: topic, s, pad });
          final.set(topic, s);
          published++;
        } catch {
          publishFailures++;
          i--; // same topic and seq again
        }
        next += intervalMs;
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
      }
    })();

    const churn = setInterval(() => {
      const count = Math.round((subscribers.length * params.churnPct) / 100);
      for (let k = 0; k < count; k++) {
        const sub = subscribers[Math.floor(Math.random() * subscribers.length)] as Subscriber;
        sub.churn(gatewayUrl(Math.floor(Math.random() * gateways.length)));
      }
    }, params.churnS * 1000);

    const samples: Sample[] = [];
    const perGateway = gateways.flatMap((_, i) => [`rss${i} MiB`, `heap${i} MiB`, `total${i} MiB`]);
    const columns = ['t (s)', ...perGateway, 'streams', 'published', 'received', 'lost'];
    process.stdout.write(`${columns.join('\t')}\n`);
    const sample = async () => {
      const metric = (name: string) =>
        Promise.all(gateways.map((g) => readMetric(g.url, name).catch(() => Number.NaN)));
      const heap = await metric('nodejs_heap_size_used_bytes');
      const heapTotal = await metric('nodejs_heap_size_total_bytes');
      const connections = (
        await Promise.all(gateways.map((g) => readMetric(g.url, 'sse_connections').catch(() => 0)))
      ).reduce((a, b) => a + b, 0);
      const s: Sample = {
        atS: Math.round((Date.now() - started) / 1000),
        rss: gateways.map((g) => rssOf(g.child.pid)),
        heap,
        heapTotal,
        connections,
        published,
        received: subscribers.reduce((a, sub) => a + sub.received, 0),
      };
      samples.push(s);
      const lost = subscribers.reduce((a, sub) => a + sub.lost, 0);
      const memory = s.rss.flatMap((r, i) => [
        mib(r),
        mib(s.heap[i] as number),
        mib(s.heapTotal[i] as number),
      ]);
      const row = [s.atS, ...memory, s.connections, s.published, s.received, lost];
      process.stdout.write(`${row.join('\t')}\n`);
    };
    await sample();
    while (Date.now() - started < durationMs) {
      await sleep(Math.min(params.sampleS * 1000, durationMs - (Date.now() - started)));
      await sample();
    }
    running = false;
    clearInterval(churn);
    await publishing;
    await publisher.close();

    // Let every subscriber catch up with the last event of its topics (churned ones reconnect).
    await waitFor(
      () => subscribers.every((s) => s.caughtUp(final)),
      () => `${subscribers.filter((s) => !s.caughtUp(final)).length} subscribers to catch up`,
      60_000,
      200,
    ).catch((err: Error) => process.stderr.write(`soak: ${err.message}\n`));

    const total = (f: (s: Subscriber) => number) => subscribers.reduce((a, s) => a + f(s), 0);
    const lost = total((s) => s.lost) + total((s) => s.missing(final));
    const duplicates = total((s) => s.duplicates);
    const resets = total((s) => s.resets);
    const steady = samples.filter((s) => s.atS * 1000 >= warmupMs);
    const quarter = Math.max(3, Math.floor(steady.length / 4));
    const early = steady.slice(0, quarter);
    const late = steady.slice(-quarter);
    const floor = (values: number[]) => Math.min(...values);
    const change = (of: (values: number[]) => number, pick: (s: Sample) => number) => {
      const [a, b] = [of(early.map(pick)), of(late.map(pick))];
      return { text: `${mib(a)} → ${mib(b)}`, pct: (b / a - 1) * 100 };
    };
    const lines: string[] = [
      '',
      `first quarter after warm-up: ${early[0]?.atS ?? '?'}-${early.at(-1)?.atS ?? '?'} s; ` +
        `last quarter: ${late[0]?.atS ?? '?'}-${late.at(-1)?.atS ?? '?'} s`,
      '',
      '| gateway | RSS median (MiB) | change | heap floor (MiB) | change ' +
        '| heap median (MiB) | change |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    ];
    let flat = steady.length >= 6;
    const pct = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(1)}%`;
    for (let i = 0; i < gateways.length; i++) {
      const rss = change(median, (s) => s.rss[i] as number);
      const heapFloor = change(floor, (s) => s.heap[i] as number);
      const heapMedian = change(median, (s) => s.heap[i] as number);
      flat &&= Math.abs(rss.pct) <= 10 && Math.abs(heapFloor.pct) <= 10;
      lines.push(
        `| ${i} | ${rss.text} | ${pct(rss.pct)} | ${heapFloor.text} | ${pct(heapFloor.pct)} ` +
          `| ${heapMedian.text} | ${pct(heapMedian.pct)} |`,
      );
    }
    const elapsedS = (Date.now() - started) / 1000;
    lines.push(
      '',
      `published ${published} events in ${elapsedS.toFixed(0)} s ` +
        `(${publishFailures} publish failures), ` +
        `delivered ${total((s) => s.received)}, reconnects ${total((s) => s.reconnects)} ` +
        `(${total((s) => s.unexpectedCloses)} not asked for)`,
      `lost ${lost}, delivered twice ${duplicates}, resets ${resets}`,
    );
    const ok = flat && lost === 0 && duplicates === 0 && resets === 0;
    const memory = flat
      ? 'flat within 10%'
      : steady.length < 6
        ? 'not enough samples after warm-up'
        : 'NOT flat';
    lines.push(
      `verdict: ${ok ? 'PASS' : 'FAIL'} (memory ${memory} after ${(warmupMs / 1000).toFixed(0)} s warm-up)`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    return ok ? 0 : 1;
  } finally {
    for (const s of subscribers) s.stop();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
    clearInterval(keepAlive);
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
