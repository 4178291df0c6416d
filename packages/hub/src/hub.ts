import type { Engine, HistoryPage, StoredEvent } from '@streamcast/engine';
import {
  HEARTBEAT,
  NotReady,
  RESET_EVENT,
  ZERO_ID,
  claimHolds,
  compareIds,
  encodeEventBody,
  encodeRetry,
  CURSOR_PREFIX,
  formatCursor,
  parsePrivate,
  placeCursor,
  positionSuffix,
  singleTopicCursor,
  topicFingerprint,
  stripFields,
  visibleMask,
  type CursorPlace,
  type ParsedCursor,
  type TopicPosition,
  type PrivateGroup,
  type StreamId,
  type Viewer,
} from '@streamcast/protocol';
import {
  DEFAULT_HUB_OPTIONS,
  type HubOptions,
  type HubStats,
  type ResetReason,
  type Sink,
} from './types';

/**
 * The per-process fan-out. One engine subscription per topic (a Channel, reference counted),
 * however many connections listen; each event is encoded once and the same bytes are written to
 * every connection of the topic.
 *
 * Correctness rests on one rule applied everywhere: an entry is delivered only if its `prev` is
 * the id last delivered (same epoch). Anything else is a gap, repaired from history, or a `reset`
 * when history no longer has it. Channels apply the rule to what the engine delivers live;
 * connections that are still catching up apply it to history and to live events buffered meanwhile.
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
  };
  private readonly channels = new Map<string, Channel>();
  private readonly connections = new Set<Connection>();
  private linkUp = true;
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
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
    this.timer = setInterval(() => this.sweep(), sweepMs);
    this.timer.unref();
  }

  /** Stops the sweep and ends every stream; the engine is closed by its owner. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const conn of [...this.connections]) conn.endWithRetry(this.options.retryMs);
  }

  /** True while events can be published and streams served. */
  isReady(): boolean {
    return !this.draining && this.linkUp && this.engine.isReady();
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
        conn.endWithRetry(100 + Math.floor(Math.random() * 900));
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
  async publish(topic: string, event: string, data: string, privateFields?: string): Promise<string> {
    const result = await this.engine.publish(topic, event, data, privateFields);
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
    if (!this.isReady()) {
      throw new NotReady(this.draining ? 'draining' : 'the engine link is down');
    }
    const conn = new Connection(this, sink, topics, viewer);
    this.connections.add(conn);
    this.stats.connectionsOpened++;
    sink.onClose(() => this.drop(conn));
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
      const plans = await Promise.all(conn.members.map((m, i) => this.place(m, places?.[i] ?? 'live')));
      if (conn.closed) return;
      conn.begin(preamble);
      if (!this.writeResets(conn, plans)) {
        // An id with no data sets the browser's Last-Event-ID without firing an event: a
        // client that drops before its first event still resumes from here, not live.
        conn.write(`id: ${conn.cursor()}\n\n`);
      }
      for (let i = 0; i < conn.members.length; i++) {
        const member = conn.members[i] as Member;
        const plan = plans[i] as Plan;
        const complete = await this.writeEntries(member, plan.entries);
        if (!complete || plan.more) await this.fill(member);
        await this.goLive(member);
        if (conn.closed) return;
      }
    } catch (err) {
      if (!conn.begun) {
        this.drop(conn);
        throw err instanceof NotReady ? err : new NotReady((err as Error).message);
      }
      // Headers are out: end the stream; the client reconnects with the last id it got.
      this.options.logger.warn({ err, topics }, 'stream ended while catching up');
      conn.sink.end();
    }
  }

  // ---- channels ------------------------------------------------------------------------------

  private acquire(topic: string): Channel {
    let channel = this.channels.get(topic);
    if (!channel) {
      channel = new Channel(topic, Math.min(RECENT_MAX_EVENTS, this.engine.retention.maxLen));
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
      const head = await this.engine.read(channel.topic, null, 0);
      channel.epoch = head.epoch;
      channel.lastId = head.lastId;
    } catch (err) {
      // Nothing is attached to a channel that never started: forget it so the next
      // subscriber tries afresh.
      channel.broken = true;
      if (this.channels.get(channel.topic) === channel) this.channels.delete(channel.topic);
      throw err;
    }
    await this.drainChannel(channel);
  }

  private onMessage(event: StoredEvent): void {
    const channel = this.channels.get(event.topic);
    if (!channel) return;
    if (channel.state !== 'live') {
      channel.buffer.push(event);
      return;
    }
    const fromHistory = channel.fromHistory;
    if (fromHistory && compareIds(event.id, channel.fromHistoryLast) > 0) {
      // Live delivery has passed what the last repair read: no more of it can come in late.
      channel.fromHistory = undefined;
    }
    if (event.epoch === channel.epoch && event.prev === channel.lastId) {
      this.dispatch(channel, event);
    } else if (event.epoch === channel.epoch && fromHistory?.has(event.id)) {
      // Delivered from history by a repair while its live message was in flight: skip.
    } else if (event.epoch === channel.epoch && compareIds(event.id, channel.lastId) <= 0) {
      // Older than what was delivered, yet not known as delivered: an entry of a history that
      // replaced ours (a failover to a master whose clock is behind). Only history can tell.
      this.options.logger.debug(
        { topic: channel.topic, id: event.id },
        'stale live event; checking history',
      );
      channel.buffer.push(event);
      void this.repair(channel, false);
    } else {
      this.options.logger.warn(
        { topic: channel.topic, expected: channel.lastId, prev: event.prev },
        'gap in live delivery; repairing from history',
      );
      channel.buffer.push(event);
      void this.repair(channel);
    }
  }

  /** Delivers buffered live events that chain on; anything that does not chain starts a repair. */
  private async drainChannel(channel: Channel): Promise<void> {
    for (;;) {
      if (channel.closed) return;
      const event = channel.buffer.shift();
      if (!event) {
        channel.state = 'live';
        return;
      }
      if (event.epoch === channel.epoch && event.prev === channel.lastId) {
        this.dispatch(channel, event);
      } else if (event.epoch === channel.epoch && compareIds(event.id, channel.lastId) <= 0) {
        continue;
      } else {
        channel.buffer.unshift(event);
        await this.repair(channel);
        return;
      }
    }
  }

  /**
   * Reads what the channel missed from history and delivers it, then drains the live buffer.
   * On engine errors the channel stays in repair and is retried on the next linkUp.
   * `counted`: a gap (sse_gap_repairs_total), not a check of a stale live event.
   */
  private async repair(channel: Channel, counted = true): Promise<void> {
    if (channel.repairing) return;
    channel.repairing = true;
    channel.state = 'repairing';
    if (counted) this.stats.gapRepairs++;
    channel.fromHistory = undefined;
    try {
      for (let rounds = 0; ; rounds++) {
        if (channel.closed) return;
        const page = await this.engine.read(channel.topic, channel.lastId, this.options.pageSize);
        if (channel.closed) return;
        const verdict = judge(channel.epoch, channel.lastId, page);
        if (verdict) {
          // History behind what this gateway already delivered, or without it, means it was
          // lost. The channel's streams continue from the reset, with no partial replay.
          const reason = verdict === 'cursor-unknown' ? 'history-lost' : verdict;
          this.resetChannel(channel, reason, page.epoch, resetPosition(channel, page));
        } else {
          for (const e of page.entries) {
            if (e.prev !== channel.lastId) break;
            this.dispatchFromHistory(channel, e);
          }
          if (page.entries.length >= this.options.pageSize) continue;
        }
        // Caught up with history; now the live buffer, which must chain on.
        while (channel.buffer.length > 0) {
          const event = channel.buffer[0] as StoredEvent;
          if (event.epoch === channel.epoch && compareIds(event.id, channel.lastId) <= 0) {
            channel.buffer.shift();
          } else if (event.epoch === channel.epoch && event.prev === channel.lastId) {
            channel.buffer.shift();
            this.dispatch(channel, event);
          } else {
            break;
          }
        }
        if (channel.resyncAgain) {
          // A resync arrived while this repair read: what it announced may be after that read.
          channel.resyncAgain = false;
          continue;
        }
        if (channel.buffer.length === 0) {
          channel.state = 'live';
          return;
        }
        if (rounds > 100) throw new Error(`repair of ${channel.topic} does not converge`);
      }
    } catch (err) {
      this.options.logger.warn({ err, topic: channel.topic }, 'repair failed; will retry');
      channel.needsRepair = true;
      // While the link is down, linkUp retries; a failed read on a live link retries here.
      if (this.linkUp) {
        setTimeout(() => {
          if (!channel.needsRepair || channel.closed || !this.linkUp) return;
          channel.needsRepair = false;
          void this.repair(channel);
        }, 1000).unref();
      }
    } finally {
      channel.repairing = false;
    }
  }

  /**
   * dispatch() of an entry read from history by a repair, remembered (the newest 4,096) until
   * live delivery passes it: its live message may still be on its way, and is then skipped.
   */
  private dispatchFromHistory(channel: Channel, event: StoredEvent): void {
    const seen = (channel.fromHistory ??= new Set());
    seen.add(event.id);
    if (seen.size > 4096) seen.delete(seen.values().next().value as string);
    channel.fromHistoryLast = event.id;
    this.dispatch(channel, event);
  }

  /** Sends one event to everyone on the channel: the same bytes to every single-topic stream. */
  private dispatch(channel: Channel, event: StoredEvent): void {
    channel.lastId = event.id;
    channel.remember(event);
    const suffix = positionSuffix(event);
    if (event.private !== undefined) {
      this.dispatchPrivate(channel, event, suffix);
    } else {
      const body = encodeEventBody(event.event, event.data);
      if (channel.solo.size > 0) {
        const frame = Buffer.from(`${channel.soloId}${suffix}\n${body}`);
        for (const conn of channel.solo) conn.write(frame);
      }
      for (const member of channel.multi) {
        member.epoch = event.epoch;
        member.lastId = event.id;
        member.suffix = suffix;
        member.conn.writeEvent(body);
      }
    }
    for (const member of channel.pending) member.hold(event);
    this.stats.delivered += channel.solo.size + channel.multi.size;
    this.settleWaiting(channel);
  }

  /**
   * dispatch() of an event with private fields: one body per variant (which groups of fields a
   * subscriber may see), each encoded once, and single-topic streams sorted by variant so every
   * stream of a variant gets the very same frame.
   */
  private dispatchPrivate(channel: Channel, event: StoredEvent, suffix: string): void {
    const groups = parsePrivate(event.private as string);
    const bodies = new Map<number, string>();
    const bodyFor = (conn: Connection): string => {
      const mask = conn.maskOf(groups);
      let body = bodies.get(mask);
      if (body === undefined) {
        body = encodeEventBody(event.event, stripFields(event.data, groups, mask));
        bodies.set(mask, body);
      }
      return body;
    };
    if (channel.solo.size > 0) {
      const byMask = new Map<number, Connection[]>();
      for (const conn of channel.solo) {
        const mask = conn.maskOf(groups);
        const conns = byMask.get(mask);
        if (conns) conns.push(conn);
        else byMask.set(mask, [conn]);
      }
      for (const conns of byMask.values()) {
        const frame = Buffer.from(`${channel.soloId}${suffix}\n${bodyFor(conns[0] as Connection)}`);
        for (const conn of conns) conn.write(frame);
      }
    }
    for (const member of channel.multi) {
      member.epoch = event.epoch;
      member.lastId = event.id;
      member.suffix = suffix;
      member.conn.writeEvent(bodyFor(member.conn));
    }
  }

  private resetChannel(channel: Channel, reason: ResetReason, epoch: string, id: StreamId): void {
    channel.epoch = epoch;
    channel.lastId = id;
    channel.forgetRecent();
    const data = JSON.stringify({ topics: [channel.topic], reason });
    const body = encodeEventBody(RESET_EVENT, data);
    if (channel.solo.size > 0) {
      const frame = Buffer.from(`id: ${singleTopicCursor(channel.topic, { epoch, id })}\n${body}`);
      for (const conn of channel.solo) {
        conn.members[0]?.setPosition(epoch, id);
        conn.write(frame);
      }
    }
    for (const member of channel.multi) {
      member.setPosition(epoch, id);
      member.conn.writeEvent(body);
    }
    this.stats.resets += channel.solo.size + channel.multi.size;
    this.options.logger.warn({ topic: channel.topic, reason }, 'history gap; streams reset');
    this.settleWaiting(channel);
  }

  // ---- connections ---------------------------------------------------------------------------

  /**
   * Where a new member starts: after its cursor position, or at the head (live) when the cursor
   * does not cover its topic, or at the head after a `reset` when it cannot be placed.
   */
  private async place(member: Member, place: CursorPlace): Promise<Plan> {
    const topic = member.channel.topic;
    const position = typeof place === 'object' ? place.position : undefined;
    const reset = place === 'unplaceable' ? 'cursor-unknown' : undefined;
    const fromMemory = this.placeFromMemory(member, position);
    if (fromMemory) return { reset, entries: fromMemory, more: false };
    if (!position) {
      const head = await this.engine.read(topic, null, 0);
      member.setPosition(head.epoch, head.lastId);
      return { reset, entries: [], more: false };
    }
    const page = await this.engine.read(topic, position.id, this.options.pageSize);
    const verdict = judge(position.epoch, position.id, page);
    if (verdict) {
      member.setPosition(page.epoch, page.lastId);
      return { reset: verdict, entries: [], more: false };
    }
    member.setPosition(position.epoch, position.id);
    const more = page.entries.length >= this.options.pageSize;
    // History that ends where the channel's memory begins extends it: the next stream resuming
    // from here (a storm brings hundreds per topic) is placed from memory.
    if (!more && member.channel.state === 'live') member.channel.learn(page.epoch, page.entries);
    return { reset: undefined, entries: page.entries, more };
  }

  /**
   * Places a member without asking the engine, when its live channel can: a new stream starts at
   * the channel's head (events stored but still on their way to the channel reach the member
   * through its buffer), and a resuming one whose position is among the channel's recent events
   * gets those after it. The channel delivered them in chain order, so they are exactly the
   * history after that position. Undefined when history must be read.
   */
  private placeFromMemory(member: Member, position: TopicPosition | undefined): StoredEvent[] | undefined {
    const channel = member.channel;
    if (channel.state !== 'live' || channel.closed) return undefined;
    channel.forgetAged(this.oldestRetainedMs());
    if (!position) {
      member.setPosition(channel.epoch, channel.lastId);
      return [];
    }
    if (position.epoch !== channel.epoch) return undefined;
    const entries = channel.recentAfter(position.id);
    if (entries) member.setPosition(position.epoch, position.id);
    return entries;
  }

  /** Writes one reset per reason for the topics that need it; false if there were none. */
  private writeResets(conn: Connection, plans: Plan[]): boolean {
    const byReason = new Map<ResetReason, string[]>();
    plans.forEach((plan, i) => {
      if (!plan.reset) return;
      const topics = byReason.get(plan.reset) ?? [];
      topics.push(conn.topics[i] as string);
      byReason.set(plan.reset, topics);
    });
    for (const [reason, topics] of byReason) {
      conn.writeEvent(encodeEventBody(RESET_EVENT, JSON.stringify({ topics, reason })));
      this.stats.resets++;
    }
    return byReason.size > 0;
  }

  /**
   * Writes history entries that chain on from the member's position, pausing while the client
   * drains; false if the chain broke (or the connection closed).
   */
  private async writeEntries(member: Member, entries: StoredEvent[]): Promise<boolean> {
    const conn = member.conn;
    const half = this.options.maxQueueBytes / 2;
    // One write for the lot (a resume storm is thousands of these), split only to pause.
    let out = '';
    for (const e of entries) {
      if (out.length + conn.sink.bufferedBytes > half) {
        if (out !== '') conn.write(out);
        out = '';
        if (conn.sink.bufferedBytes > half) await conn.sink.drained();
      }
      if (conn.closed || e.prev !== member.lastId) {
        if (out !== '') conn.write(out);
        return false;
      }
      member.setPosition(e.epoch, e.id);
      out += `id: ${conn.cursor()}\n${conn.bodyOf(e)}`;
      this.stats.delivered++;
    }
    if (out !== '') conn.write(out);
    return true;
  }

  /** Sends history after the member's position until it is caught up, resetting where needed. */
  private async fill(member: Member): Promise<void> {
    const conn = member.conn;
    for (let rounds = 0; rounds < 10_000; rounds++) {
      if (conn.closed) return;
      if (conn.sink.bufferedBytes > this.options.maxQueueBytes / 2) await conn.sink.drained();
      if (conn.closed) return;
      const topic = member.channel.topic;
      const page = await this.engine.read(topic, member.lastId, this.options.pageSize);
      if (conn.closed) return;
      const verdict = judge(member.epoch, member.lastId, page);
      if (verdict) {
        // No partial replay: the topic continues from the newest entry.
        member.setPosition(page.epoch, page.lastId);
        conn.writeEvent(encodeEventBody(RESET_EVENT, JSON.stringify({ topics: [topic], reason: verdict })));
        this.stats.resets++;
        return;
      }
      if (!(await this.writeEntries(member, page.entries))) continue;
      if (page.entries.length < this.options.pageSize) return;
    }
  }

  /**
   * Finishes a member's catch-up: delivers what it buffered, then hands it to the channel. If
   * the channel has not yet delivered up to the member's position (its live messages are still
   * in flight), the member waits, buffering, and dispatch() completes the hand-over once the
   * channel reaches it: going live earlier would deliver those in-flight events twice.
   */
  private async goLive(member: Member): Promise<void> {
    for (let rounds = 0; rounds < 1000; rounds++) {
      if (member.conn.closed) return;
      const step = this.tryGoLive(member);
      if (step === 'live') return;
      if (step === 'wait') {
        member.waiting = true;
        return;
      }
      await this.fill(member);
    }
    throw new Error(`stream on ${member.channel.topic} could not catch up`);
  }

  /** Synchronous, so nothing can slip in between the last buffered event and going live. */
  private tryGoLive(member: Member): 'live' | 'wait' | 'gap' {
    while (member.buffer.length > 0) {
      const event = member.buffer[0] as StoredEvent;
      if (event.epoch === member.epoch && compareIds(event.id, member.lastId) <= 0) {
        member.buffer.shift();
      } else if (event.epoch === member.epoch && event.prev === member.lastId) {
        member.buffer.shift();
        member.setPosition(event.epoch, event.id);
        member.conn.writeEvent(member.conn.bodyOf(event));
        this.stats.delivered++;
      } else {
        return 'gap';
      }
    }
    const channel = member.channel;
    if (channel.epoch !== member.epoch) return 'gap';
    const cmp = compareIds(member.lastId, channel.lastId);
    if (cmp > 0) return 'wait';
    if (cmp < 0) return 'gap';
    member.buffer = [];
    member.bufferBytes = 0;
    member.waiting = false;
    channel.pending.delete(member);
    if (member.conn.members.length === 1) channel.solo.add(member.conn);
    else channel.multi.add(member);
    member.live = true;
    return 'live';
  }

  /** After the channel moved: members waiting for it go live, or catch up again. */
  private settleWaiting(channel: Channel): void {
    if (channel.pending.size === 0) return;
    for (const member of [...channel.pending]) {
      if (!member.waiting || member.conn.closed) continue;
      const step = this.tryGoLive(member);
      if (step === 'gap') {
        member.waiting = false;
        this.goLive(member).catch((err) => {
          this.options.logger.warn({ err, topic: channel.topic }, 'stream ended while catching up');
          member.conn.sink.end();
        });
      }
    }
  }

  private drop(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
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
    conn.sink.destroy();
    this.drop(conn);
  }

  /** Entries older than this (ms since the epoch) may be gone from history: 0 when none age out. */
  private oldestRetainedMs(): number {
    const maxAgeS = this.engine.retention.maxAgeS;
    return maxAgeS > 0 ? Date.now() - maxAgeS * 1000 : 0;
  }

  private sweep(): void {
    this.clock = Date.now();
    const oldest = this.oldestRetainedMs();
    if (oldest > 0) for (const channel of this.channels.values()) channel.forgetAged(oldest);
    const quietSince = this.clock - this.options.heartbeatMs;
    let expired: Connection[] | undefined;
    let aged: Connection[] | undefined;
    for (const conn of this.connections) {
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
      conn.sink.end();
      this.drop(conn);
    }
    for (const conn of aged ?? []) {
      this.stats.lifetimeCloses++;
      // Come back soon (resuming from the cursor), not after the usual retry delay.
      conn.write(`${encodeRetry(100 + Math.floor(Math.random() * 900))}: stream lifetime reached\n\n`);
      conn.sink.end();
      this.drop(conn);
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
    this.options.logger.info({ topics: topics.length, reason }, 'topics resubscribed; repairing gaps');
    for (const topic of topics) {
      const channel = this.channels.get(topic);
      // A channel still starting reads the head after its listen; nothing delivered to miss.
      if (!channel || channel.closed || channel.state === 'starting') continue;
      if (channel.repairing) {
        channel.resyncAgain = true;
      } else if (this.linkUp) {
        void this.repair(channel);
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
        void this.repair(channel);
      }
    }
  }
}

interface Plan {
  reset: ResetReason | undefined;
  entries: StoredEvent[];
  more: boolean;
}

/**
 * Whether history after (epoch, after) can be delivered as it is (undefined), or why not: another
 * epoch (lost); `after` ahead of the stream (a lost write, or a made-up cursor); the first entry
 * after it chaining on something else. Its `prev` then tells why: newer than `after`, the entries
 * in between were trimmed; older, `after` never was in this history (writes acknowledged by a
 * master that a failover or a crash lost; ids grow with time, so `after` lies between two entries
 * that are adjacent here).
 */
function judge(epoch: string, after: StreamId, page: HistoryPage): ResetReason | undefined {
  if (page.epoch !== epoch) return 'history-lost';
  const cmp = compareIds(after, page.lastId);
  if (cmp > 0) return 'cursor-unknown';
  const first = page.entries[0];
  if (!first) return cmp < 0 ? 'history-trimmed' : undefined;
  if (first.prev === after) return undefined;
  return compareIds(first.prev, after) < 0 ? 'history-lost' : 'history-trimmed';
}

/**
 * Where a live channel's reset places its streams: just before the first live event that came in
 * since the gap (buffered while the repair waited for history, which may take several reads when
 * Redis is just back), so the reset covers only what this gateway never received and what came in
 * live is delivered; with nothing buffered, the head of history. Buffered events that may have
 * been delivered already (same epoch, not after the last id) are passed over.
 */
function resetPosition(channel: Channel, page: HistoryPage): StreamId {
  for (const event of channel.buffer) {
    if (event.epoch !== page.epoch) continue;
    if (event.epoch === channel.epoch && compareIds(event.id, channel.lastId) <= 0) continue;
    // Read before that event's predecessor was stored: the history in between comes next read.
    return compareIds(event.prev, page.lastId) <= 0 ? event.prev : page.lastId;
  }
  return page.lastId;
}

class Channel {
  refs = 0;
  epoch = '';
  lastId: StreamId = ZERO_ID;
  state: 'starting' | 'live' | 'repairing' = 'starting';
  /** Live events that arrived while starting or repairing. */
  buffer: StoredEvent[] = [];
  /** Ids the last repair delivered from history, until live delivery passes the newest. */
  fromHistory: Set<string> | undefined;
  fromHistoryLast: StreamId = ZERO_ID;
  /** Live single-topic connections: they all get the very same frame. */
  readonly solo = new Set<Connection>();
  /** Live members of multi-topic connections: same body, per-connection cursor. */
  readonly multi = new Set<Member>();
  /** Members still catching up: they hold live events until they are done. */
  readonly pending = new Set<Member>();
  ready: Promise<void> = Promise.resolve();
  repairing = false;
  needsRepair = false;
  /** A resync came in during a repair: read history once more before going live. */
  resyncAgain = false;
  closed = false;
  broken = false;
  /**
   * The newest events this channel delivered, oldest first, ending at `lastId`: a resuming
   * stream positioned among them catches up from memory instead of reading history.
   */
  private recent: StoredEvent[] = [];
  private recentBytes = 0;

  /** The topic's name in cursors (topicFingerprint). */
  readonly fingerprint: string;
  /** How a single-topic stream's event frame starts: `id: 2~<fingerprint>`, then the suffix. */
  readonly soloId: string;

  /** `maxRecent`: at most this many recent events (no more than history keeps). */
  constructor(
    readonly topic: string,
    private readonly maxRecent = RECENT_MAX_EVENTS,
  ) {
    this.fingerprint = topicFingerprint(topic);
    this.soloId = `id: ${CURSOR_PREFIX}${this.fingerprint}`;
  }

  remember(event: StoredEvent): void {
    this.recent.push(event);
    this.recentBytes += event.data.length + RECENT_ENTRY_OVERHEAD;
    while (this.recent.length > this.maxRecent || this.recentBytes > RECENT_MAX_BYTES) {
      const dropped = this.recent.shift() as StoredEvent;
      this.recentBytes -= dropped.data.length + RECENT_ENTRY_OVERHEAD;
    }
  }

  /**
   * Drops recent events stored before `oldestMs` (their ids start with the time they were
   * stored): history no longer has them, so neither may memory serve them.
   */
  forgetAged(oldestMs: number): void {
    const recent = this.recent;
    while (recent.length > 0 && idMs((recent[0] as StoredEvent).id) < oldestMs) {
      const dropped = recent.shift() as StoredEvent;
      this.recentBytes -= dropped.data.length + RECENT_ENTRY_OVERHEAD;
    }
  }

  /**
   * Prepends history entries (of `epoch`, in order) that end where the recent events begin,
   * within the bounds; anything else is ignored.
   */
  learn(epoch: string, entries: readonly StoredEvent[]): void {
    const last = entries[entries.length - 1];
    if (epoch !== this.epoch || !last) return;
    if (last.id !== (this.recent.length > 0 ? (this.recent[0] as StoredEvent).prev : this.lastId)) return;
    let bytes = this.recentBytes;
    let from = entries.length;
    while (from > 0 && this.recent.length + entries.length - from < this.maxRecent) {
      const entry = entries[from - 1] as StoredEvent;
      if (from < entries.length && (entries[from] as StoredEvent).prev !== entry.id) break;
      const size = entry.data.length + RECENT_ENTRY_OVERHEAD;
      if (bytes + size > RECENT_MAX_BYTES) break;
      bytes += size;
      from--;
    }
    if (from === entries.length) return;
    this.recent = entries.slice(from).concat(this.recent);
    this.recentBytes = bytes;
  }

  /** After a reset: what was delivered before is no history of the new position. */
  forgetRecent(): void {
    this.recent = [];
    this.recentBytes = 0;
  }

  /**
   * The delivered events after `id` (same epoch), or undefined when `id` is not the head, nor
   * among the recent events, nor the one just before them.
   */
  recentAfter(id: StreamId): StoredEvent[] | undefined {
    if (id === this.lastId) return [];
    const recent = this.recent;
    if (recent.length === 0) return undefined;
    if ((recent[0] as StoredEvent).prev === id) return recent.slice();
    for (let i = recent.length - 1; i >= 0; i--) {
      if ((recent[i] as StoredEvent).id === id) return recent.slice(i + 1);
    }
    return undefined;
  }
}

/** The time part of a stream id, `<ms>-<seq>`. */
function idMs(id: StreamId): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/** Bounds of a channel's recent events (Channel.remember). */
const RECENT_MAX_EVENTS = 128;
const RECENT_MAX_BYTES = 64 * 1024;
const RECENT_ENTRY_OVERHEAD = 128;

/** One topic of one connection. */
class Member {
  epoch = '';
  lastId: StreamId = ZERO_ID;
  /** This topic's part of the connection cursor, `.<epoch>.<ms>.<seq>`. */
  suffix = '';
  buffer: StoredEvent[] = [];
  bufferBytes = 0;
  live = false;
  /** Caught up, waiting for the channel to deliver up to this member's position. */
  waiting = false;

  constructor(
    readonly conn: Connection,
    readonly channel: Channel,
  ) {}

  /** The topic's name in the cursor (formatCursor reads it with `suffix`). */
  get fingerprint(): string {
    return this.channel.fingerprint;
  }

  setPosition(epoch: string, id: StreamId): void {
    this.epoch = epoch;
    this.lastId = id;
    this.suffix = positionSuffix({ epoch, id });
  }

  /** Keeps a live event until the member is caught up; too much of it means a slow client. */
  hold(event: StoredEvent): void {
    this.buffer.push(event);
    this.bufferBytes += event.data.length + 64;
    if (this.bufferBytes > this.conn.hub.options.maxQueueBytes) this.conn.hub.tooSlow(this.conn);
  }
}

class Connection {
  readonly members: Member[] = [];
  begun = false;
  closed = false;
  lastWrite = 0;
  /** When the stream is closed for its age (HubOptions.maxLifetimeMs), in ms since the epoch. */
  readonly endsAt: number;

  /** Which claims the viewer holds, as asked by events with private fields. */
  private claims: Map<string, boolean> | undefined;

  constructor(
    readonly hub: Hub,
    readonly sink: Sink,
    readonly topics: readonly string[],
    readonly viewer: Viewer,
  ) {
    const lifetime = hub.options.maxLifetimeMs;
    this.endsAt = lifetime > 0 ? hub.clock + lifetime * (0.8 + 0.2 * Math.random()) : Infinity;
  }

  /** The groups of private fields this connection may see (see visibleMask). */
  maskOf(groups: PrivateGroup[] | null): number {
    return visibleMask(groups, (claim) => {
      const claims = (this.claims ??= new Map());
      let holds = claims.get(claim);
      if (holds === undefined) {
        holds = claimHolds(this.viewer, claim);
        claims.set(claim, holds);
      }
      return holds;
    });
  }

  /** The `event:`/`data:` lines of `event` as this connection may see it. */
  bodyOf(event: StoredEvent): string {
    if (event.private === undefined) return encodeEventBody(event.event, event.data);
    const groups = parsePrivate(event.private);
    return encodeEventBody(event.event, stripFields(event.data, groups, this.maskOf(groups)));
  }

  begin(preamble = ''): void {
    this.begun = true;
    this.sink.begin();
    this.write(encodeRetry(this.hub.options.retryMs) + preamble);
  }

  /** The cursor covering every topic of this connection, as it stands. */
  cursor(): string {
    return formatCursor(this.members);
  }

  write(chunk: Buffer | string): void {
    if (this.closed) return;
    // Checked before writing: a queue already past the bound means the client is behind. One
    // frame may take it past the bound, so an event larger than the bound still goes out.
    if (this.sink.bufferedBytes > this.hub.options.maxQueueBytes) {
      this.hub.tooSlow(this);
      return;
    }
    this.sink.write(chunk);
    this.lastWrite = this.hub.clock;
  }

  /**
   * Ends the stream with a `retry:` line, so the client comes back after `ms`. A stream that has
   * not begun yet (still being placed) gets its headers first: a response without the stream's
   * content type would make EventSource give up for good.
   */
  endWithRetry(ms: number): void {
    if (!this.closed && !this.begun) {
      this.begun = true;
      this.sink.begin();
    }
    this.write(encodeRetry(ms));
    this.sink.end();
  }

  /** Writes an event body under this connection's current cursor. */
  writeEvent(body: string): void {
    this.write(`id: ${this.cursor()}\n${body}`);
  }
}
