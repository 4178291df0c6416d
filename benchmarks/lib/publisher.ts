import { Agent, request } from 'node:http';
import Redis from 'ioredis';
import type { ClientPool } from './client-pool';

/** Where events go: the gateway's POST /publish, or straight to a Redis channel. */
export interface PublishTarget {
  readonly name: string;
  /** Publishes one event whose data is the JSON text `data`. */
  publish(data: string): Promise<void>;
  close(): Promise<void>;
}

/** POST /publish on a gateway over keep-alive connections. */
export function httpTarget(baseUrl: string, topic: string, sockets: number): PublishTarget {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const head = `{"topic":${JSON.stringify(topic)},"data":`;
  return {
    name: 'POST /publish',
    publish: (data) =>
      new Promise((resolve, reject) => {
        const body = `${head}${data}}`;
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: '/publish',
            method: 'POST',
            agent,
            headers: {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            res.resume();
            res.once('end', () =>
              res.statusCode === 200
                ? resolve()
                : reject(new Error(`publish answered ${res.statusCode}`)),
            );
          },
        );
        req.once('error', reject);
        req.end(body);
      }),
    close: async () => agent.destroy(),
  };
}

/** PUBLISH on a Redis channel (the naive design's publisher). */
export function redisTarget(redisUrl: string, channel: string): PublishTarget {
  const redis = new Redis(redisUrl);
  redis.on('error', () => {});
  return {
    name: 'Redis PUBLISH',
    publish: async (data) => {
      await redis.publish(channel, data);
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

export interface DriveOptions {
  target: PublishTarget;
  pool: ClientPool;
  /** Run number written in every event; clients ignore other runs' events. */
  run: number;
  /** Events per second; undefined: as fast as the window and concurrency allow. */
  rate?: number;
  /** Never more than this many events ahead of the slowest open subscriber. */
  window: number;
  /** Publishes in flight at once. */
  concurrency: number;
  payloadBytes: number;
}

export const now = (): number => performance.timeOrigin + performance.now();

/**
 * A closed-loop publisher. Events carry `{"r": run, "s": seq, "t": send time in epoch ms with
 * sub-ms precision, "p": padding}`. It keeps at most `window` events ahead of the slowest
 * subscriber (from the clients' progress reports), so no subscriber's send queue on the server
 * can grow to MAX_QUEUE_BYTES: a saturated server slows the publisher down instead of dropping
 * clients.
 */
export class Publisher {
  /** Events handed to the target. */
  sent = 0;
  /** Events the target confirmed. */
  acked = 0;
  failed = 0;
  lastError: Error | undefined;
  private inFlight = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private idle: (() => void) | undefined;
  private readonly padding: string;

  constructor(private readonly options: DriveOptions) {
    // `{"r":1,"s":123456,"t":1700000000000.123,"p":""}` is about 48 characters.
    this.padding = 'x'.repeat(Math.max(0, options.payloadBytes - 48));
  }

  start(): void {
    this.startedAt = now();
    // Progress reports arrive every 25 ms; the rate needs ms resolution.
    this.timer = setInterval(() => this.pump(), 1);
    this.pump();
  }

  /** Stops publishing; resolves once every publish in flight is answered. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => (this.idle = resolve));
  }

  private pump(): void {
    const { pool, run, rate, window, concurrency } = this.options;
    const allowed =
      rate === undefined ? Infinity : Math.floor(((now() - this.startedAt) / 1000) * rate) + 1;
    const floor = pool.minReceived(run);
    while (
      !this.stopped &&
      this.inFlight < concurrency &&
      this.sent < allowed &&
      this.sent - floor < window
    ) {
      this.send();
    }
  }

  private send(): void {
    const seq = this.sent++;
    this.inFlight++;
    const data = `{"r":${this.options.run},"s":${seq},"t":${now()},"p":"${this.padding}"}`;
    this.options.target.publish(data).then(
      () => this.done(true),
      (err: Error) => {
        this.lastError = err;
        this.done(false);
      },
    );
  }

  private done(ok: boolean): void {
    this.inFlight--;
    if (ok) this.acked++;
    else this.failed++;
    if (this.stopped) {
      if (this.inFlight === 0) this.idle?.();
      return;
    }
    this.pump();
  }
}
