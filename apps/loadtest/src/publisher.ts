import { Agent, request } from 'node:http';
import { createPublisher } from '@streamcast/publisher';
import type { RedisClusterConnection } from '@streamcast/engine-redis';
import Redis from 'ioredis';

/** Wall-clock time in epoch ms with sub-ms precision, comparable across processes. */
export const now = (): number => performance.timeOrigin + performance.now();

/** Where events go. `topic` indexes the topic list the target was made with. */
export interface PublishTarget {
  readonly name: string;
  /** Publishes one event on topic number `topic`; `data` is JSON text. */
  publish(topic: number, data: string): Promise<void>;
  close(): Promise<void>;
}

function post(
  agent: Agent,
  url: URL,
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<void> {
  return send(agent, url, path, body, headers, false).then(() => undefined);
}

/** POSTs `body`; resolves to the 2xx answer's JSON. */
function postJson(
  agent: Agent,
  url: URL,
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<unknown> {
  return send(agent, url, path, body, headers, true).then((text) => JSON.parse(text) as unknown);
}

/**
 * POSTs `body` and resolves on a 2xx answer, to its text when `whole` (else only the first
 * few hundred characters are kept, for an error message); rejects otherwise.
 */
function send(
  agent: Agent,
  url: URL,
  path: string,
  body: string,
  headers: Record<string, string>,
  whole: boolean,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        agent,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (whole || text.length < 300) text += c;
        });
        res.once('end', () =>
          res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300
            ? resolve(text)
            : reject(new Error(`${path} answered ${res.statusCode}: ${text.trim().slice(0, 200)}`)),
        );
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`${path}: no answer within 10 s`)));
    req.once('error', reject);
    req.end(body);
  });
}

/** `POST /publish` on a gateway, over up to `sockets` keep-alive connections. */
export function httpTarget(
  baseUrl: string,
  topics: readonly string[],
  sockets: number,
  headers: Record<string, string> = {},
): PublishTarget {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const heads = topics.map((t) => `{"topic":${JSON.stringify(t)},"data":`);
  const all = { ...headers, 'content-type': 'application/json' };
  return {
    name: `POST ${url.origin}/publish`,
    publish: (topic, data) => post(agent, url, '/publish', `${heads[topic]}${data}}`, all),
    close: async () => agent.destroy(),
  };
}

/**
 * Batch publish (`POST /publish` with a JSON array) on a gateway: events are gathered for
 * `windowMs` from the first one (or until `maxEvents`), then sent as one request; each publish
 * resolves with its own entry of the answer. One connection, so batches are stored in the order
 * they were gathered, and one topic's events in publish order.
 */
export function httpBatchTarget(
  baseUrl: string,
  topics: readonly string[],
  windowMs: number,
  maxEvents = 1000,
  headers: Record<string, string> = {},
): PublishTarget {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const heads = topics.map((t) => `{"topic":${JSON.stringify(t)},"data":`);
  const all = { ...headers, 'content-type': 'application/json' };
  let events: string[] = [];
  let waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const body = `[${events.join(',')}]`;
    const sent = waiting;
    events = [];
    waiting = [];
    void postJson(agent, url, '/publish', body, all).then(
      (answer) => {
        const results = (answer as { results?: Array<{ error?: { code: string } }> }).results;
        sent.forEach((w, i) => {
          const error = results?.[i]?.error;
          if (results?.[i] === undefined) w.reject(new Error('no result for this event'));
          else if (error) w.reject(new Error(`publish refused: ${error.code}`));
          else w.resolve();
        });
      },
      (err: Error) => {
        for (const w of sent) w.reject(err);
      },
    );
  };
  return {
    name: `POST ${url.origin}/publish, batches of ${windowMs} ms`,
    publish: (topic, data) =>
      new Promise<void>((resolve, reject) => {
        events.push(`${heads[topic]}${data}}`);
        waiting.push({ resolve, reject });
        if (events.length >= maxEvents) flush();
        else timer ??= setTimeout(flush, windowMs);
      }),
    close: async () => {
      clearTimeout(timer);
      agent.destroy();
    },
  };
}

/** Nchan's publisher location: `POST <base>/pub/<topic>` with the data as the body. */
export function nchanTarget(
  baseUrl: string,
  topics: readonly string[],
  sockets: number,
): PublishTarget {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const paths = topics.map((t) => `/pub/${encodeURIComponent(t)}`);
  const headers = { 'content-type': 'application/json' };
  return {
    name: `POST ${url.origin}/pub/<topic> (Nchan)`,
    publish: (topic, data) => post(agent, url, paths[topic] as string, data, headers),
    close: async () => agent.destroy(),
  };
}

/** Straight into the engine: the Redis that the gateways share (as producers publish). */
export async function engineTarget(
  redis: string | RedisClusterConnection,
  keyPrefix: string,
  topics: readonly string[],
): Promise<PublishTarget> {
  const publisher = await createPublisher({
    ...(typeof redis === 'string' ? { redisUrl: redis } : { redisOptions: redis }),
    keyPrefix,
    validate: false,
  });
  const where =
    typeof redis === 'string'
      ? `Redis ${new URL(redis).host}`
      : `Redis Cluster ${redis.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  return {
    name: `engine (${where}, prefix ${keyPrefix})`,
    publish: async (topic, data) => {
      await publisher.publish(topics[topic] as string, 'message', JSON.parse(data));
    },
    close: () => publisher.close(),
  };
}

/** PUBLISH on Redis channels (the naive design's publisher). */
export function redisTarget(redisUrl: string, channels: readonly string[]): PublishTarget {
  const redis = new Redis(redisUrl);
  redis.on('error', () => {});
  return {
    name: 'Redis PUBLISH',
    publish: async (topic, data) => {
      await redis.publish(channels[topic] as string, data);
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

/**
 * What was published on one topic: per sequence number, when it was sent and whether the
 * target confirmed it. The clients' ranges are checked against this.
 */
export class TopicLedger {
  seq = 0;
  sentAt = new Float64Array(1024);
  acked = new Uint8Array(1024);
  ackedCount = 0;

  next(at: number): number {
    const seq = this.seq++;
    if (seq >= this.sentAt.length) {
      const sentAt = new Float64Array(this.sentAt.length * 2);
      sentAt.set(this.sentAt);
      this.sentAt = sentAt;
      const acked = new Uint8Array(this.acked.length * 2);
      acked.set(this.acked);
      this.acked = acked;
    }
    this.sentAt[seq] = at;
    return seq;
  }

  /** The first sequence number sent after `at` (epoch ms); `seq` when none. */
  firstSentAfter(at: number): number {
    let lo = 0;
    let hi = this.seq;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.sentAt[mid] as number) > at) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** prefix[i] = acknowledged events among sequence numbers 0..i-1. */
  ackedPrefix(): Int32Array {
    const prefix = new Int32Array(this.seq + 1);
    for (let i = 0; i < this.seq; i++)
      prefix[i + 1] = (prefix[i] as number) + (this.acked[i] as number);
    return prefix;
  }
}

/** How far the slowest subscriber is, for a closed-loop publisher (ClientPool has it). */
export interface ProgressSource {
  /** The lowest next sequence number over open subscribers that received something. */
  minReceived(run: number): number;
}

export interface PublisherOptions {
  target: PublishTarget;
  /** Topics, published to in turn; sequence numbers are per topic. */
  topics: number;
  /** Run number written in every event; clients ignore other runs' events. */
  run: number;
  /** Events per second over all topics; undefined: as fast as window and concurrency allow. */
  rate?: number;
  /** Closed loop: never more than this many events (per topic) ahead of the slowest subscriber. */
  window?: number;
  progress?: ProgressSource;
  /** Publishes in flight at once. */
  concurrency: number;
  /** Size of each event's JSON data. */
  payloadBytes: number;
  /** Stop after this many events. */
  maxEvents?: number;
}

/**
 * Publishes events carrying `{"r": run, "s": per-topic sequence number, "t": send time (epoch
 * ms, sub-ms precision), "p": padding}`, at a rate (open loop) and/or at most `window` events
 * ahead of the slowest subscriber (closed loop: a saturated server slows the publisher down
 * instead of letting send queues grow until it drops subscribers).
 */
export class Publisher {
  /** Events handed to the target. */
  sent = 0;
  /** Events the target confirmed. */
  acked = 0;
  failed = 0;
  lastError: Error | undefined;
  readonly ledgers: TopicLedger[];
  startedAt = 0;
  stoppedAt = 0;
  private inFlight = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private idle: (() => void) | undefined;
  private readonly padding: string;
  private readonly finished: Promise<void>;
  private finish: () => void = () => {};

  constructor(private readonly options: PublisherOptions) {
    // `{"r":1,"s":123456,"t":1700000000000.123,"p":""}` is about 48 characters.
    this.padding = 'x'.repeat(Math.max(0, options.payloadBytes - 48));
    this.ledgers = Array.from({ length: options.topics }, () => new TopicLedger());
    this.finished = new Promise((resolve) => (this.finish = resolve));
  }

  start(): void {
    this.startedAt = now();
    // Progress reports arrive every 25 ms; the rate needs ms resolution.
    this.timer = setInterval(() => this.pump(), 1);
    this.pump();
  }

  /** Resolves once maxEvents were sent and answered (never without maxEvents). */
  done(): Promise<void> {
    return this.finished;
  }

  /** Stops publishing; resolves once every publish in flight is answered. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.stoppedAt = now();
    }
    if (this.timer) clearInterval(this.timer);
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => (this.idle = resolve));
  }

  private pump(): void {
    const { progress, run, rate, window, concurrency, maxEvents } = this.options;
    const allowed =
      rate === undefined ? Infinity : Math.floor(((now() - this.startedAt) / 1000) * rate) + 1;
    const limit = Math.min(allowed, maxEvents ?? Infinity);
    const floor = window !== undefined && progress ? progress.minReceived(run) : 0;
    const ahead = window ?? Infinity;
    while (!this.stopped && this.inFlight < concurrency && this.sent < limit) {
      const topic = this.sent % this.options.topics;
      if ((this.ledgers[topic] as TopicLedger).seq - floor >= ahead) break;
      this.send(topic);
    }
  }

  private send(topic: number): void {
    const ledger = this.ledgers[topic] as TopicLedger;
    const at = now();
    const seq = ledger.next(at);
    this.sent++;
    this.inFlight++;
    const data = `{"r":${this.options.run},"s":${seq},"t":${at},"p":"${this.padding}"}`;
    this.options.target.publish(topic, data).then(
      () => {
        ledger.acked[seq] = 1;
        ledger.ackedCount++;
        this.settle(true);
      },
      (err: Error) => {
        this.lastError = err;
        this.settle(false);
      },
    );
  }

  private settle(ok: boolean): void {
    this.inFlight--;
    if (ok) this.acked++;
    else this.failed++;
    const max = this.options.maxEvents;
    if (max !== undefined && this.sent >= max && this.inFlight === 0) this.finish();
    if (this.stopped) {
      if (this.inFlight === 0) this.idle?.();
      return;
    }
    this.pump();
  }
}
