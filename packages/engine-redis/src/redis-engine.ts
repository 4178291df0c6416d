import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_RETENTION,
  newEpoch,
  type Engine,
  type EngineHandlers,
  type HistoryPage,
  type PublishResult,
  type RetentionOptions,
  type StoredEvent,
} from '@streamcast/engine';
import type { StreamId } from '@streamcast/protocol';
import Redis, { type Cluster, type RedisOptions } from 'ioredis';
import { topicKeys, topicOfChannel } from './keys';

export interface RedisEngineOptions {
  /**
   * The command connection. Create it with `redisClientOptions()` so that commands fail fast
   * while Redis is unreachable instead of queueing (a publish must answer 503, not hang).
   */
  client: Redis;
  /** Prefix of every key and channel. @default 'sse' */
  keyPrefix?: string;
  retention?: RetentionOptions;
  /**
   * End-to-end liveness probe: every `intervalMs` the engine publishes to a channel of its own
   * and expects its subscriber connection to receive it within `timeoutMs`. Otherwise (a
   * stalled link, a subscription Redis forgot) it reports linkDown, rebuilds its connections and
   * resubscribes, and the hub repairs the gap from history. @default { intervalMs: 1000, timeoutMs: 3000 }
   */
  probe?: { intervalMs: number; timeoutMs: number };
  /** Receives the engine's warnings. */
  onWarning?: (message: string, detail?: object) => void;
}

/** Connection options every client of the broadcaster's Redis should use. */
export function redisClientOptions(overrides: RedisOptions = {}): RedisOptions {
  return {
    // Fail fast while disconnected: a publish answers 503 within a bound, never hangs.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 3000,
    // A publish whose reply was lost must not be sent twice behind the caller's back.
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times: number) => Math.min(100 * times, 1000),
    // A master demoted to replica (a failover) refuses writes: reconnect, which finds the new
    // master (through Sentinels or DNS); the write itself is not resent.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
    ...overrides,
  };
}

type Entry = [id: string, fields: string[]];

interface Scripts {
  ssePublish(
    log: string,
    meta: string,
    epoch: string,
    channel: string,
    event: string,
    data: string,
    maxLen: number,
    maxAgeMs: number,
    privateFields: string,
    trace: string,
  ): Promise<[string, string]>;
  sseRead(
    log: string,
    meta: string,
    epoch: string,
    after: string,
    count: number,
    metaTtlS: number,
    maxLen: number,
    maxAgeMs: number,
  ): Promise<[string, string, Entry[]]>;
}

const LUA_DIR = join(__dirname, 'lua');

/**
 * History in one Redis Stream per topic, live delivery over Redis pub/sub. One dedicated
 * subscriber connection per process with one SUBSCRIBE per listened topic; when it drops, the
 * engine tells its host (linkDown), resubscribes everything on return, then says linkUp so the
 * host repairs any gap from history.
 */
export class RedisEngine implements Engine {
  readonly kind = 'redis' as const;
  private readonly client: Redis;
  private readonly scripts: Scripts;
  private readonly prefix: string;
  readonly retention: RetentionOptions;
  private subscriber: Redis | undefined;
  private readonly listened = new Set<string>();
  private handlers: EngineHandlers | undefined;
  private linkDown = false;
  /** When the link went down (ms since the epoch), for the watchdog in probe(). */
  private linkDownAt = 0;
  private downReportedAt = 0;
  /** A resubscription (onSubscriberReady) is in flight. */
  private resubscribing = false;
  private started = false;
  private closed = false;
  private readonly probeChannel: string;
  private readonly probeOptions: { intervalMs: number; timeoutMs: number };
  private probeTimer: NodeJS.Timeout | undefined;
  private probeSeq = 0;
  /** Sequence number of the probe in flight (0: none) and when it was sent. */
  private probePending = 0;
  private probeSentAt = 0;
  /** Whether the in-flight probe's PUBLISH came back, and to how many subscribers. */
  private probePublished: number | undefined;
  private readonly warn: (message: string, detail?: object) => void;

  constructor(options: RedisEngineOptions) {
    this.client = options.client;
    this.prefix = options.keyPrefix ?? 'sse';
    this.retention = options.retention ?? DEFAULT_RETENTION;
    for (const [name, file] of [
      ['ssePublish', 'publish-3.lua'],
      ['sseRead', 'read-3.lua'],
    ] as const) {
      this.client.defineCommand(name, {
        numberOfKeys: 2,
        lua: readFileSync(join(LUA_DIR, file), 'utf8'),
      });
    }
    this.scripts = this.client as unknown as Scripts;
    this.probeChannel = `${this.prefix}:probe:${newEpoch()}`;
    this.probeOptions = options.probe ?? { intervalMs: 1000, timeoutMs: 3000 };
    this.warn = options.onWarning ?? (() => {});
  }

  setHandlers(handlers: EngineHandlers): void {
    this.handlers = handlers;
  }

  async start(): Promise<void> {
    if (this.client.status !== 'ready') await waitReady(this.client);
    const subscriber = this.client.duplicate({
      // We resubscribe ourselves, so we know when it is done and can repair gaps after it.
      autoResubscribe: false,
      enableOfflineQueue: false,
      commandTimeout: undefined,
      connectionName: 'sse-subscriber',
    });
    this.subscriber = subscriber;
    subscriber.on('message', (channel: string, message: string) =>
      this.onMessage(channel, message),
    );
    subscriber.on('error', () => {
      // Reconnection is ioredis's job; 'close' and 'ready' tell us what matters.
    });
    subscriber.on('close', () => this.onSubscriberClose());
    subscriber.on('ready', () => void this.onSubscriberReady());
    await waitReady(subscriber);
    await subscriber.subscribe(this.probeChannel);
    this.started = true;
    this.probeTimer = setInterval(() => this.probe(), this.probeOptions.intervalMs);
    this.probeTimer.unref();
  }

  async publish(
    topic: string,
    event: string,
    data: string,
    privateFields?: string,
    trace?: string,
  ): Promise<PublishResult> {
    const keys = topicKeys(this.prefix, topic);
    const [epoch, id] = await this.scripts.ssePublish(
      keys.log,
      keys.meta,
      newEpoch(),
      keys.live,
      event,
      data,
      this.retention.maxLen,
      this.retention.maxAgeS * 1000,
      privateFields ?? '',
      trace ?? '',
    );
    return { epoch, id };
  }

  async read(topic: string, after: StreamId | null, limit: number): Promise<HistoryPage> {
    const keys = topicKeys(this.prefix, topic);
    const [epoch, lastId, raw] = await this.scripts.sseRead(
      keys.log,
      keys.meta,
      newEpoch(),
      after ?? '',
      limit,
      Math.max(this.retention.maxAgeS, 3600),
      this.retention.maxLen,
      this.retention.maxAgeS * 1000,
    );
    const entries: StoredEvent[] = raw.map(([id, fields]) => toStored(topic, epoch, id, fields));
    return { epoch, lastId, entries };
  }

  async listen(topic: string): Promise<void> {
    this.listened.add(topic);
    const subscriber = this.requireSubscriber();
    try {
      await subscriber.subscribe(topicKeys(this.prefix, topic).live);
    } catch (err) {
      this.listened.delete(topic);
      throw err;
    }
  }

  async unlisten(topic: string): Promise<void> {
    this.listened.delete(topic);
    const subscriber = this.requireSubscriber();
    if (subscriber.status !== 'ready') return; // resubscription skips it
    await subscriber.unsubscribe(topicKeys(this.prefix, topic).live);
  }

  isReady(): boolean {
    return (
      this.started &&
      !this.closed &&
      !this.linkDown &&
      this.client.status === 'ready' &&
      this.subscriber?.status === 'ready'
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.listened.clear();
    const subscriber = this.subscriber;
    if (subscriber) {
      subscriber.removeAllListeners('close');
      subscriber.removeAllListeners('ready');
      subscriber.disconnect();
    }
  }

  /** Topics with a live subscription (for leak checks). */
  get listenedCount(): number {
    return this.listened.size;
  }

  /** One probe step: check the probe in flight, or send the next one. */
  private probe(): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.probePending !== 0) {
      // Redis answered the PUBLISH with 0 receivers: it no longer knows our subscription.
      const forgotten = this.probePublished === 0;
      if (forgotten || now - this.probeSentAt > this.probeOptions.timeoutMs) {
        this.probeFailed(forgotten ? 'probe reached no subscriber' : 'probe timed out');
      }
      return;
    }
    if (this.linkDown) {
      // Down, yet the subscriber is connected: its resubscription failed (or never ran) on a
      // connection that stayed up, so no 'ready' will come to retry it. Retry it here, or the
      // gateway would stay unready for good after a failover.
      const stuck =
        this.subscriber?.status === 'ready' &&
        !this.resubscribing &&
        now - this.linkDownAt > this.probeOptions.timeoutMs;
      if (stuck) {
        this.warn('redis link still down with the subscriber connected; resubscribing again');
        this.linkDownAt = now;
        void this.onSubscriberReady();
      } else if (now - Math.max(this.downReportedAt, this.linkDownAt) >= 5000) {
        // What the connections are doing, every 5 s while down: for whoever reads the log.
        this.downReportedAt = now;
        const downForMs = now - this.linkDownAt;
        const rebuild = downForMs > 3 * this.probeOptions.timeoutMs;
        this.warn('redis link still down', {
          downForMs,
          subscriber: this.subscriber?.status,
          commands: this.client.status,
          rebuilding: rebuild,
        });
        // Its reconnection has not come through for a while: start it afresh (a new Sentinel
        // lookup, a new connection), at most every 5 s.
        if (rebuild) this.subscriber?.disconnect(true);
      }
      return;
    }
    if (this.subscriber?.status !== 'ready') return; // reconnecting already
    this.probePending = ++this.probeSeq;
    this.probeSentAt = now;
    this.probePublished = undefined;
    const seq = this.probeSeq;
    this.client.publish(this.probeChannel, String(seq)).then(
      (receivers) => {
        if (this.probePending === seq) this.probePublished = receivers;
      },
      () => {
        // No answer: the timeout above decides.
      },
    );
  }

  private probeFailed(reason: string): void {
    const commandLinkStuck = this.probePublished === undefined;
    this.probePending = 0;
    this.warn('redis liveness probe failed; rebuilding connections', { reason, commandLinkStuck });
    if (!this.linkDown) {
      this.linkDown = true;
      this.linkDownAt = Date.now();
      this.handlers?.linkDown(reason);
    }
    // Drop and redo the connections: ioredis reconnects, 'ready' resubscribes, linkUp repairs.
    this.subscriber?.disconnect(true);
    if (commandLinkStuck) this.client.disconnect(true);
  }

  private requireSubscriber(): Redis {
    if (!this.subscriber) throw new Error('engine not started');
    return this.subscriber;
  }

  private onMessage(channel: string, message: string): void {
    if (channel === this.probeChannel) {
      if (Number(message) === this.probePending) this.probePending = 0;
      return;
    }
    const topic = topicOfChannel(this.prefix, channel);
    if (topic === undefined || !this.listened.has(topic)) return;
    const event = parseLive(topic, message);
    if (event) this.handlers?.message(event);
  }

  private onSubscriberClose(): void {
    if (this.closed || !this.started || this.linkDown) return;
    this.linkDown = true;
    this.linkDownAt = Date.now();
    this.handlers?.linkDown('subscriber connection closed');
  }

  private async onSubscriberReady(): Promise<void> {
    if (this.closed || !this.started || !this.linkDown || this.resubscribing) return;
    const subscriber = this.requireSubscriber();
    this.resubscribing = true;
    try {
      const channels = [...this.listened].map((t) => topicKeys(this.prefix, t).live);
      await subscriber.subscribe(this.probeChannel, ...channels);
    } catch (err) {
      // The connection dropped again (the next 'ready' retries), or the command failed on a
      // connection that stayed up (the watchdog in probe() retries).
      this.warn('redis resubscribe failed', { err: (err as Error).message });
      return;
    } finally {
      this.resubscribing = false;
    }
    if (subscriber.status !== 'ready') return;
    this.linkDown = false;
    this.handlers?.linkUp();
  }
}

/**
 * Resolves once the client is ready. Rejects if it ends first, or if Redis refuses its
 * credentials (NOAUTH, WRONGPASS): retrying cannot fix those, so a process fails fast at start
 * with Redis's own message instead of waiting for ever.
 */
export function waitReady(redis: Redis | Cluster): Promise<void> {
  return new Promise((resolve, reject) => {
    if (redis.status === 'ready') return resolve();
    const done = () => {
      redis.off('ready', onReady);
      redis.off('end', onEnd);
      redis.off('error', onError);
    };
    const onReady = () => {
      done();
      resolve();
    };
    const onEnd = () => {
      done();
      reject(new Error('redis connection ended before it was ready'));
    };
    const onError = (err: Error & { lastNodeError?: Error }) => {
      // A Cluster reports why it could not load the slot map in lastNodeError.
      const cause = err.lastNodeError ?? err;
      if (!AUTH_ERROR.test(cause.message)) return;
      done();
      reject(cause);
    };
    redis.on('ready', onReady);
    redis.on('end', onEnd);
    redis.on('error', onError);
  });
}

const AUTH_ERROR = /^(NOAUTH|WRONGPASS)\b|invalid password|invalid username-password/i;

export function toStored(topic: string, epoch: string, id: string, fields: string[]): StoredEvent {
  let event = 'message';
  let data = 'null';
  let prev = '';
  let privateFields: string | undefined;
  let trace: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1] as string;
    switch (fields[i]) {
      case 'e':
        event = value;
        break;
      case 'd':
        data = value;
        break;
      case 'p':
        prev = value;
        break;
      case 'v':
        privateFields = value;
        break;
      case 't':
        trace = value;
        break;
    }
  }
  const stored: StoredEvent = { topic, epoch, id, prev, event, data };
  if (privateFields !== undefined) stored.private = privateFields;
  if (trace !== undefined) stored.trace = trace;
  return stored;
}

/** Parses "<id>\n<prev>\n<epoch>\n<event>[ <private>]\n<data>" (see publish-3.lua). */
export function parseLive(topic: string, message: string): StoredEvent | undefined {
  const a = message.indexOf('\n');
  const b = message.indexOf('\n', a + 1);
  const c = message.indexOf('\n', b + 1);
  const d = message.indexOf('\n', c + 1);
  if (a < 0 || b < 0 || c < 0 || d < 0) return undefined;
  const stored: StoredEvent = {
    topic,
    id: message.slice(0, a),
    prev: message.slice(a + 1, b),
    epoch: message.slice(b + 1, c),
    event: message.slice(c + 1, d),
    data: message.slice(d + 1),
  };
  const space = stored.event.indexOf(' ');
  if (space !== -1) {
    stored.private = stored.event.slice(space + 1);
    stored.event = stored.event.slice(0, space);
  }
  const traced = stored.epoch.indexOf(' ');
  if (traced !== -1) {
    stored.trace = stored.epoch.slice(traced + 1);
    stored.epoch = stored.epoch.slice(0, traced);
  }
  return stored;
}
