import type { Engine, HistoryPage, StoredEvent } from '@streamcast/engine';
import {
  HEARTBEAT,
  NotReady,
  encodeRetry,
  placeCursor,
  singleTopicCursor,
  type ParsedCursor,
  type StreamId,
  type Viewer,
} from '@streamcast/protocol';
import { Channel, RECENT_MAX_EVENTS } from './channel';
import { Connection, Member } from './connection';
import {
  CLOSE_REASONS,
  COMMAND_BUCKETS_S,
  DELIVERY_BUCKETS_S,
  DurationHistogram,
  storedMs,
  type CloseReason,
} from './latency';
import { fill, goLive, placeMember, writeEntries, writeResets, type Plan } from './placement';
import {
  DEFAULT_HUB_OPTIONS,
  type HubOptions,
  type HubStats,
  type ResetReason,
  type Sink,
} from './types';

/** The sweep runs in this many slices per period, each over its share of the streams. */
const SWEEP_SLICES = 10;

/**
 * The per-process fan-out. One engine subscription per topic (a Channel, reference counted),
 * however many connections listen; each event is encoded once and the same bytes are written to
 * every connection of the topic.
 *
 * Correctness rests on one rule applied everywhere: an entry is delivered only if its `prev` is
 * the id last delivered (same epoch). Anything else is a gap, repaired from history, or a `reset`
 * when history no longer has it. Channels apply the rule to what the engine delivers live;
 * connections that are still catching up apply it to history and to live events buffered meanwhile.
 *
 * This file is the façade and the lifecycle: streams opened (subscribe) and dropped, channels
 * acquired and released, the sweep (heartbeats, token expiry, lifetime), drain, and the engine's
 * link events. One topic's live delivery is channel.ts; one stream's writes and cursor are
 * connection.ts; where a stream starts and how it goes live is placement.ts. The hub never
 * writes an event itself: channels and placement do, so the delivery rule lives in two places
 * only.
 */
export class Hub {
  readonly options: HubOptions;
  readonly stats: HubStats = {
    published: 0,
    delivered: 0,
    resets: 0,
    slowDisconnects: 0,
    connectionsOpened: 0,
    gapRepairs: 0,
    expired: 0,
    lifetimeCloses: 0,
    resetReasons: { 'history-trimmed': 0, 'history-lost': 0, 'cursor-unknown': 0 },
    closes: Object.fromEntries(CLOSE_REASONS.map((r) => [r, 0])) as Record<CloseReason, number>,
  };
  /**
   * Durations for /metrics: from an event's stored time (its id) to its frame being handed to
   * the stream's socket, live or while catching up; to its pub/sub message reaching this
   * process; and the engine's publish and history reads, round trip.
   */
  readonly timings = {
    live: new DurationHistogram(DELIVERY_BUCKETS_S),
    catchup: new DurationHistogram(DELIVERY_BUCKETS_S),
    pubsub: new DurationHistogram(DELIVERY_BUCKETS_S),
    publish: new DurationHistogram(COMMAND_BUCKETS_S),
    read: new DurationHistogram(COMMAND_BUCKETS_S),
  };
  private readonly channels = new Map<string, Channel>();
  private readonly connections = new Set<Connection>();
  private linkUp = true;
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
  /** Where the sweep's pass over the connections stands; undefined: a new pass begins. */
  private sweepCursor: Iterator<Connection> | undefined;
  /** Slices of the sweep so far: the channels' recent events are aged once a period. */
  private sweepSlices = 0;
  /** Coarse clock for heartbeats, advanced by the sweep: no Date.now() per write. */
  clock = Date.now();

  constructor(
    readonly engine: Engine,
    options: Partial<HubOptions> = {},
  ) {
    this.options = { ...DEFAULT_HUB_OPTIONS, ...options };
    engine.setHandlers({
      message: (event) => this.onMessage(event),
      linkDown: (reason) => this.onLinkDown(reason),
      linkUp: () => this.onLinkUp(),
      resync: (topics, reason) => this.onResync(topics, reason),
    });
  }

  async start(): Promise<void> {
    await this.engine.start();
    const sweepMs = Math.min(1000, this.options.heartbeatMs);
    this.timer = setInterval(() => this.sweep(), sweepMs / SWEEP_SLICES);
    this.timer.unref();
  }

  /** Stops the sweep and ends every stream; the engine is closed by its owner. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const conn of [...this.connections]) {
      this.end(conn, 'shutdown', () => conn.endWithRetry(this.options.retryMs));
    }
  }

  /** True while events can be published and streams served. */
  isReady(): boolean {
    return !this.draining && this.linkUp && this.engine.isReady();
  }

  /** True while the engine link is up (a failed channel repair retries only then). @internal */
  get engineLinkUp(): boolean {
    return this.linkUp;
  }

  /** True once drain() began: no new streams, readiness 503. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Closes every stream, in batches spread over `windowMs`, so that clients reconnect through
   * the balancer to other gateways without a stampede on one. Each stream is first sent a
   * short, jittered `retry:`. New streams are refused meanwhile (200 + `retry:` + close).
   */
  async drain(windowMs: number): Promise<void> {
    this.draining = true;
    const conns = [...this.connections];
    for (let i = conns.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [conns[i], conns[j]] = [conns[j] as Connection, conns[i] as Connection];
    }
    const batches = Math.max(1, Math.min(conns.length, Math.floor(windowMs / 100)));
    const perBatch = Math.ceil(conns.length / batches);
    for (let b = 0; b * perBatch < conns.length; b++) {
      for (const conn of conns.slice(b * perBatch, (b + 1) * perBatch)) {
        if (conn.closed) continue;
        this.end(conn, 'drain', () => conn.endWithRetry(100 + Math.floor(Math.random() * 900)));
      }
      if ((b + 1) * perBatch < conns.length) {
        await new Promise((resolve) => setTimeout(resolve, windowMs / batches));
      }
    }
  }

  /** Number of open streams. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Number of topics with a live engine subscription (for leak checks). */
  get channelCount(): number {
    return this.channels.size;
  }

  /**
   * Stores an event and fans it out. `data` is JSON text; `privateFields` (from the protocol's
   * normalizePrivate) marks fields only some subscribers see. Resolves to the event's id: the
   * cursor a single-topic connection to this topic would carry after it.
   */
  async publish(
    topic: string,
    event: string,
    data: string,
    privateFields?: string,
  ): Promise<string> {
    const tracing = this.options.tracing;
    if (!tracing) return this.store(topic, event, data, privateFields);
    return tracing.inSpan(
      'streamcast.publish',
      {
        'messaging.system': 'streamcast',
        'messaging.destination.name': topic,
        'streamcast.event': event,
      },
      (traceparent) => this.store(topic, event, data, privateFields, traceparent),
    );
  }

  private async store(
    topic: string,
    event: string,
    data: string,
    privateFields?: string,
    trace?: string,
  ): Promise<string> {
    const started = performance.now();
    const result = await this.engine.publish(topic, event, data, privateFields, trace);
    this.timings.publish.observe(performance.now() - started);
    this.stats.published++;
    return singleTopicCursor(topic, result);
  }

  /**
   * Opens a stream on `topics` (distinct and sorted, see normalizeTopics) for `sink`, resuming
   * each topic the `cursor` places (see placeCursor: topics it does not cover start live, those it
   * covers but cannot place get a `reset`); `preamble` is written right after the `retry:` line; `viewer`,
   * the claims of the subscriber's token, decides which private fields it sees. Resolves once
   * history is sent and the stream is live. Throws NOT_READY, before anything was written, when
   * the engine cannot serve.
   */
  async subscribe(
    sink: Sink,
    topics: readonly string[],
    cursor?: ParsedCursor,
    preamble?: string,
    viewer?: Viewer,
  ): Promise<void> {
    const tracing = this.options.tracing;
    if (!tracing) return this.open(sink, topics, cursor, preamble, viewer);
    return tracing.inSpan(
      'streamcast.subscribe',
      { 'streamcast.topics': topics.length, 'streamcast.resumed': cursor !== undefined },
      () => this.open(sink, topics, cursor, preamble, viewer),
    );
  }

  /** subscribe(), without its span. */
  private async open(
    sink: Sink,
    topics: readonly string[],
    cursor?: ParsedCursor,
    preamble?: string,
    viewer?: Viewer,
  ): Promise<void> {
    if (!this.isReady()) {
      throw new NotReady(this.draining ? 'draining' : 'the engine link is down');
    }
    const conn = new Connection(this, sink, topics, viewer);
    this.connections.add(conn);
    this.stats.connectionsOpened++;
    sink.onClose(() => this.drop(conn, conn.ending ?? 'client'));
    // Live first: every topic's channel listening, and this connection buffering its events,
    // before any history is read. An event is then either in what we read or in the buffer.
    for (let i = 0; i < topics.length; i++) {
      const channel = this.acquire(topics[i] as string);
      const member = new Member(conn, channel);
      conn.members.push(member);
      channel.pending.add(member);
    }
    try {
      await Promise.all(conn.members.map((m) => m.channel.ready));
      if (conn.closed) return;
      const places = cursor ? placeCursor(cursor, topics) : undefined;
      const plans = await Promise.all(
        conn.members.map((m, i) => placeMember(m, places?.[i] ?? 'live')),
      );
      if (conn.closed) return;
      conn.begin(preamble);
      if (!writeResets(conn, plans)) {
        // An id with no data sets the browser's Last-Event-ID without firing an event: a
        // client that drops before its first event still resumes from here, not live.
        conn.write(`id: ${conn.cursor()}\n\n`);
      }
      for (let i = 0; i < conn.members.length; i++) {
        const member = conn.members[i] as Member;
        const plan = plans[i] as Plan;
        const complete = await writeEntries(member, plan.entries);
        if (!complete || plan.more) await fill(member);
        await goLive(member);
        if (conn.closed) return;
      }
    } catch (err) {
      if (!conn.begun) {
        this.drop(conn, 'error');
        throw err instanceof NotReady ? err : new NotReady((err as Error).message);
      }
      // Headers are out: end the stream; the client reconnects with the last id it got.
      this.options.logger.warn({ err, topics }, 'stream ended while catching up');
      this.end(conn, 'error');
    }
  }

  // ---- channels ------------------------------------------------------------------------------

  private acquire(topic: string): Channel {
    let channel = this.channels.get(topic);
    if (!channel) {
      channel = new Channel(this, topic, Math.min(RECENT_MAX_EVENTS, this.engine.retention.maxLen));
      this.channels.set(topic, channel);
      channel.ready = this.startChannel(channel);
      // A failed start is seen by every subscriber awaiting `ready`; don't also make it unhandled.
      channel.ready.catch(() => {});
    }
    channel.refs++;
    return channel;
  }

  private release(channel: Channel): void {
    if (--channel.refs > 0) return;
    channel.closed = true;
    if (this.channels.get(channel.topic) === channel) this.channels.delete(channel.topic);
    // A newer channel for the topic (after this one failed to start) keeps the subscription.
    if (this.channels.has(channel.topic)) return;
    this.engine.unlisten(channel.topic).catch((err) => {
      this.options.logger.warn({ err, topic: channel.topic }, 'unlisten failed');
    });
  }

  private async startChannel(channel: Channel): Promise<void> {
    try {
      await this.engine.listen(channel.topic);
      const head = await this.read(channel.topic, null, 0);
      channel.epoch = head.epoch;
      channel.lastId = head.lastId;
    } catch (err) {
      // Nothing is attached to a channel that never started: forget it so the next
      // subscriber tries afresh.
      channel.broken = true;
      if (this.channels.get(channel.topic) === channel) this.channels.delete(channel.topic);
      throw err;
    }
    await channel.drainBuffer();
  }

  private onMessage(event: StoredEvent): void {
    this.timings.pubsub.observe(Date.now() - storedMs(event.id));
    this.channels.get(event.topic)?.receive(event);
  }

  /** The engine's history read, timed for /metrics. @internal */
  async read(topic: string, after: StreamId | null, count: number): Promise<HistoryPage> {
    const started = performance.now();
    try {
      return await this.engine.read(topic, after, count);
    } finally {
      this.timings.read.observe(performance.now() - started);
    }
  }

  /** Counts `n` deliveries of the event `id`, just handed to their sockets. @internal */
  delivered(id: StreamId, n: number, catchingUp = false): void {
    if (n === 0) return;
    this.stats.delivered += n;
    (catchingUp ? this.timings.catchup : this.timings.live).observe(Date.now() - storedMs(id), n);
  }

  /** Counts `n` resets sent for `reason`. @internal */
  countResets(reason: ResetReason, n: number): void {
    this.stats.resets += n;
    this.stats.resetReasons[reason] += n;
  }

  /**
   * The `limit` topics with the most streams here, most first, with their stream counts (for an
   * opted-in, capped, per-topic metric).
   */
  busiestTopics(limit: number): Array<[topic: string, streams: number]> {
    if (limit <= 0) return [];
    const all: Array<[string, number]> = [];
    for (const channel of this.channels.values()) {
      all.push([channel.topic, channel.solo.size + channel.multi.size + channel.pending.size]);
    }
    all.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return all.slice(0, limit);
  }

  /** Bytes written to streams and not yet taken by the kernel, over every stream. */
  queuedBytes(): number {
    let bytes = 0;
    for (const conn of this.connections) bytes += conn.sink.bufferedBytes;
    return bytes;
  }

  // ---- connections ---------------------------------------------------------------------------

  /**
   * Ends a stream for `reason` (by default after what was written) and forgets it. The reason is
   * set first: a sink that reports its close at once (in `close`) is counted under it too.
   * @internal
   */
  end(conn: Connection, reason: CloseReason, close = () => conn.sink.end()): void {
    conn.ending = reason;
    close();
    this.drop(conn, reason);
  }

  /** Forgets a stream that ended (or is ending) for `reason`. */
  private drop(conn: Connection, reason: CloseReason): void {
    if (conn.closed) return;
    conn.closed = true;
    this.stats.closes[reason]++;
    this.connections.delete(conn);
    for (const member of conn.members) {
      const channel = member.channel;
      channel.solo.delete(conn);
      channel.multi.delete(member);
      channel.pending.delete(member);
      member.buffer = [];
      this.release(channel);
    }
  }

  /** Drops a connection whose send queue is over the bound. */
  tooSlow(conn: Connection): void {
    if (conn.closed) return;
    this.stats.slowDisconnects++;
    this.options.logger.info(
      { topics: conn.topics, queued: conn.sink.bufferedBytes },
      'slow client disconnected',
    );
    this.end(conn, 'slow', () => conn.sink.destroy());
  }

  /**
   * Entries older than this (ms since the epoch) may be gone from history: 0 when none age out.
   * @internal
   */
  oldestRetainedMs(): number {
    const maxAgeS = this.engine.retention.maxAgeS;
    return maxAgeS > 0 ? Date.now() - maxAgeS * 1000 : 0;
  }

  /**
   * One slice of the sweep: heartbeats, token expiry and lifetime for the next tenth of the
   * streams, so every stream is seen once per sweep period (1 s, or HEARTBEAT_S if shorter) and
   * streams that opened together (a reconnection storm) do not all get their heartbeat in one
   * turn of the event loop (about 30 µs a write on loopback: 10,000 of them, some 300 ms).
   */
  private sweep(): void {
    this.clock = Date.now();
    if (this.sweepSlices++ % SWEEP_SLICES === 0) {
      const oldest = this.oldestRetainedMs();
      if (oldest > 0) for (const channel of this.channels.values()) channel.forgetAged(oldest);
    }
    this.sweepCursor ??= this.connections.values();
    const quietSince = this.clock - this.options.heartbeatMs;
    let expired: Connection[] | undefined;
    let aged: Connection[] | undefined;
    // A set's iterator goes on across slices: streams ended meanwhile are skipped, new ones come
    // at the end of this pass. At least one step, so that a pass over no streams ends too.
    for (
      let left = Math.max(1, Math.ceil(this.connections.size / SWEEP_SLICES));
      left > 0;
      left--
    ) {
      const next = this.sweepCursor.next();
      if (next.done === true) {
        this.sweepCursor = undefined;
        break;
      }
      const conn = next.value;
      if (!conn.begun) continue;
      const expiresAt = conn.sink.expiresAt;
      if (expiresAt !== undefined && expiresAt <= this.clock) {
        (expired ??= []).push(conn);
      } else if (conn.endsAt <= this.clock) {
        (aged ??= []).push(conn);
      } else if (conn.lastWrite <= quietSince) {
        conn.write(HEARTBEAT);
      }
    }
    // Ended after the loop: ending drops the connection from the set being iterated.
    for (const conn of expired ?? []) {
      this.stats.expired++;
      conn.write(': token expired\n\n');
      this.end(conn, 'token_expired');
    }
    for (const conn of aged ?? []) {
      this.stats.lifetimeCloses++;
      // Come back soon (resuming from the cursor), not after the usual retry delay.
      conn.write(
        `${encodeRetry(100 + Math.floor(Math.random() * 900))}: stream lifetime reached\n\n`,
      );
      this.end(conn, 'lifetime');
    }
  }

  private onLinkDown(reason: string): void {
    if (!this.linkUp) return;
    this.linkUp = false;
    this.options.logger.warn({ reason }, 'engine link down; streams kept, repairing on return');
    for (const channel of this.channels.values()) {
      channel.state = 'repairing';
      channel.needsRepair = true;
    }
  }

  private onResync(topics: readonly string[], reason: string): void {
    this.options.logger.info(
      { topics: topics.length, reason },
      'topics resubscribed; repairing gaps',
    );
    for (const topic of topics) {
      const channel = this.channels.get(topic);
      // A channel still starting reads the head after its listen; nothing delivered to miss.
      if (!channel || channel.closed || channel.state === 'starting') continue;
      if (channel.repairing) {
        channel.resyncAgain = true;
      } else if (this.linkUp) {
        void channel.repair();
      } else {
        channel.needsRepair = true;
      }
    }
  }

  private onLinkUp(): void {
    this.linkUp = true;
    this.options.logger.info({ channels: this.channels.size }, 'engine link up; repairing gaps');
    for (const channel of this.channels.values()) {
      if (channel.needsRepair) {
        channel.needsRepair = false;
        void channel.repair();
      }
    }
  }
}
