import type { HistoryPage, StoredEvent } from '@streamcast/engine';
import {
  CURSOR_PREFIX,
  RESET_EVENT,
  ZERO_ID,
  compareIds,
  encodeEventBody,
  parsePrivate,
  positionSuffix,
  singleTopicCursor,
  stripFields,
  topicFingerprint,
  type StreamId,
} from '@streamcast/protocol';
import type { Connection, Member } from './connection';
import type { Hub } from './hub';
import { storedMs } from './latency';
import { judge, settleWaiting } from './placement';
import type { ResetReason } from './types';

/** Live deliveries counted (and timed) together, see Channel.dispatch. */
const DELIVERY_CHUNK = 64;

/** Bounds of a channel's recent events (Channel.remember). */
export const RECENT_MAX_EVENTS = 128;
const RECENT_MAX_BYTES = 64 * 1024;
const RECENT_ENTRY_OVERHEAD = 128;

/**
 * One topic's subscription in this process, shared by every stream on the topic (reference
 * counted by the hub). It owns the topic's live contiguity: what the engine delivers is
 * dispatched only if it chains on the last id delivered (same epoch); anything else buffers and
 * is repaired from history, or reset when history lost it. It also keeps the topic's recent
 * events, from which resuming streams are placed without reading history.
 *
 * It never writes to a stream that is still catching up (those hold events, see Member.hold,
 * until placement hands them over), and never subscribes or unsubscribes on the engine: the hub
 * does, as the first stream comes and the last one goes.
 */
export class Channel {
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

  /**
   * The frames of recent events as single-topic streams get them (soloFrame), built when a
   * stream first catches up through them, and gone with the events.
   */
  private readonly soloFrames = new WeakMap<StoredEvent, Buffer>();

  /** The topic's name in cursors (topicFingerprint). */
  readonly fingerprint: string;
  /** How a single-topic stream's event frame starts: `id: 2~<fingerprint>`, then the suffix. */
  private readonly soloId: string;

  /** `maxRecent`: at most this many recent events (no more than history keeps). */
  constructor(
    /** The hub this channel delivers for: its engine, options and counters. */
    readonly hub: Hub,
    readonly topic: string,
    private readonly maxRecent = RECENT_MAX_EVENTS,
  ) {
    this.fingerprint = topicFingerprint(topic);
    this.soloId = `id: ${CURSOR_PREFIX}${this.fingerprint}`;
  }

  // ---- live contiguity -----------------------------------------------------------------------

  /** An event the engine delivered live for this topic. */
  receive(event: StoredEvent): void {
    if (this.state !== 'live') {
      this.buffer.push(event);
      return;
    }
    const fromHistory = this.fromHistory;
    if (fromHistory && compareIds(event.id, this.fromHistoryLast) > 0) {
      // Live delivery has passed what the last repair read: no more of it can come in late.
      this.fromHistory = undefined;
    }
    if (event.epoch === this.epoch && event.prev === this.lastId) {
      this.dispatch(event);
    } else if (event.epoch === this.epoch && fromHistory?.has(event.id)) {
      // Delivered from history by a repair while its live message was in flight: skip.
    } else if (event.epoch === this.epoch && compareIds(event.id, this.lastId) <= 0) {
      // Older than what was delivered, yet not known as delivered: an entry of a history that
      // replaced ours (a failover to a master whose clock is behind). Only history can tell.
      this.hub.options.logger.debug(
        { topic: this.topic, id: event.id },
        'stale live event; checking history',
      );
      this.buffer.push(event);
      void this.repair(false);
    } else {
      this.hub.options.logger.warn(
        { topic: this.topic, expected: this.lastId, prev: event.prev },
        'gap in live delivery; repairing from history',
      );
      this.buffer.push(event);
      void this.repair();
    }
  }

  /** Delivers buffered live events that chain on; anything that does not chain starts a repair. */
  async drainBuffer(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const event = this.buffer.shift();
      if (!event) {
        this.state = 'live';
        return;
      }
      if (event.epoch === this.epoch && event.prev === this.lastId) {
        this.dispatch(event);
      } else if (event.epoch === this.epoch && compareIds(event.id, this.lastId) <= 0) {
        continue;
      } else {
        this.buffer.unshift(event);
        await this.repair();
        return;
      }
    }
  }

  /**
   * Reads what the channel missed from history and delivers it, then drains the live buffer.
   * On engine errors the channel stays in repair and is retried on the next linkUp.
   * `counted`: a gap (sse_gap_repairs_total), not a check of a stale live event.
   */
  async repair(counted = true): Promise<void> {
    if (this.repairing) return;
    this.repairing = true;
    this.state = 'repairing';
    if (counted) this.hub.stats.gapRepairs++;
    this.fromHistory = undefined;
    try {
      for (let rounds = 0; ; rounds++) {
        if (this.closed) return;
        const page = await this.hub.read(this.topic, this.lastId, this.hub.options.pageSize);
        if (this.closed) return;
        const verdict = judge(this.epoch, this.lastId, page);
        if (verdict) {
          // History behind what this gateway already delivered, or without it, means it was
          // lost. The channel's streams continue from the reset, with no partial replay.
          const reason = verdict === 'cursor-unknown' ? 'history-lost' : verdict;
          this.reset(reason, page.epoch, resetPosition(this, page));
        } else {
          for (const e of page.entries) {
            if (e.prev !== this.lastId) break;
            this.dispatchFromHistory(e);
          }
          if (page.entries.length >= this.hub.options.pageSize) continue;
        }
        // Caught up with history; now the live buffer, which must chain on.
        while (this.buffer.length > 0) {
          const event = this.buffer[0] as StoredEvent;
          if (event.epoch === this.epoch && compareIds(event.id, this.lastId) <= 0) {
            this.buffer.shift();
          } else if (event.epoch === this.epoch && event.prev === this.lastId) {
            this.buffer.shift();
            this.dispatch(event);
          } else {
            break;
          }
        }
        if (this.resyncAgain) {
          // A resync arrived while this repair read: what it announced may be after that read.
          this.resyncAgain = false;
          continue;
        }
        if (this.buffer.length === 0) {
          this.state = 'live';
          return;
        }
        if (rounds > 100) throw new Error(`repair of ${this.topic} does not converge`);
      }
    } catch (err) {
      this.hub.options.logger.warn({ err, topic: this.topic }, 'repair failed; will retry');
      this.needsRepair = true;
      // While the link is down, linkUp retries; a failed read on a live link retries here.
      if (this.hub.engineLinkUp) {
        setTimeout(() => {
          if (!this.needsRepair || this.closed || !this.hub.engineLinkUp) return;
          this.needsRepair = false;
          void this.repair();
        }, 1000).unref();
      }
    } finally {
      this.repairing = false;
    }
  }

  /**
   * dispatch() of an entry read from history by a repair, remembered (the newest 4,096) until
   * live delivery passes it: its live message may still be on its way, and is then skipped.
   */
  private dispatchFromHistory(event: StoredEvent): void {
    const seen = (this.fromHistory ??= new Set());
    seen.add(event.id);
    if (seen.size > 4096) seen.delete(seen.values().next().value as string);
    this.fromHistoryLast = event.id;
    this.dispatch(event);
  }

  /** Sends one event to everyone on the channel: the same bytes to every single-topic stream. */
  private dispatch(event: StoredEvent): void {
    const tracing = this.hub.options.tracing;
    const startMs = tracing && event.trace !== undefined ? Date.now() : 0;
    this.lastId = event.id;
    this.remember(event);
    const suffix = positionSuffix(event);
    if (event.private !== undefined) {
      this.dispatchPrivate(event, suffix);
    } else {
      const hub = this.hub;
      const id = event.id;
      const body = encodeEventBody(event.event, event.data);
      // Counted (with the time) every DELIVERY_CHUNK writes: a few clock reads per event.
      // forEach, not for...of: at low rates this runs in V8's baseline tier, where a Set's
      // iterator allocates a result object per stream.
      let n = 0;
      if (this.solo.size > 0) {
        const frame = this.soloFrameOf(suffix, body);
        this.solo.forEach((conn) => {
          conn.write(frame);
          if (++n === DELIVERY_CHUNK) {
            hub.delivered(id, n);
            n = 0;
          }
        });
      }
      if (this.multi.size > 0) {
        const epoch = event.epoch;
        this.multi.forEach((member) => {
          member.epoch = epoch;
          member.lastId = id;
          member.suffix = suffix;
          member.conn.writeEvent(body);
          if (++n === DELIVERY_CHUNK) {
            hub.delivered(id, n);
            n = 0;
          }
        });
      }
      hub.delivered(id, n);
    }
    for (const member of this.pending) member.hold(event);
    if (tracing && event.trace !== undefined) {
      // One span per event and gateway (not per stream), linked to the publish's.
      tracing.linked(
        'streamcast.deliver',
        event.trace,
        {
          'messaging.system': 'streamcast',
          'messaging.destination.name': this.topic,
          'messaging.message.id': event.id,
          'streamcast.streams': this.solo.size + this.multi.size,
        },
        startMs,
      );
    }
    settleWaiting(this);
  }

  /**
   * dispatch() of an event with private fields: one body per variant (which groups of fields a
   * subscriber may see), each encoded once, and single-topic streams sorted by variant so every
   * stream of a variant gets the very same frame.
   */
  private dispatchPrivate(event: StoredEvent, suffix: string): void {
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
    if (this.solo.size > 0) {
      const byMask = new Map<number, Connection[]>();
      for (const conn of this.solo) {
        const mask = conn.maskOf(groups);
        const conns = byMask.get(mask);
        if (conns) conns.push(conn);
        else byMask.set(mask, [conn]);
      }
      for (const conns of byMask.values()) {
        const frame = this.soloFrameOf(suffix, bodyFor(conns[0] as Connection));
        for (const conn of conns) conn.write(frame);
        this.hub.delivered(event.id, conns.length);
      }
    }
    for (const member of this.multi) {
      member.epoch = event.epoch;
      member.lastId = event.id;
      member.suffix = suffix;
      member.conn.writeEvent(bodyFor(member.conn));
    }
    this.hub.delivered(event.id, this.multi.size);
  }

  private reset(reason: ResetReason, epoch: string, id: StreamId): void {
    this.epoch = epoch;
    this.lastId = id;
    this.forgetRecent();
    const data = JSON.stringify({ topics: [this.topic], reason });
    const body = encodeEventBody(RESET_EVENT, data);
    if (this.solo.size > 0) {
      const frame = Buffer.from(`id: ${singleTopicCursor(this.topic, { epoch, id })}\n${body}`);
      for (const conn of this.solo) {
        conn.members[0]?.setPosition(epoch, id);
        conn.write(frame);
      }
    }
    for (const member of this.multi) {
      member.setPosition(epoch, id);
      member.conn.writeEvent(body);
    }
    this.hub.countResets(reason, this.solo.size + this.multi.size);
    this.hub.options.logger.warn({ topic: this.topic, reason }, 'history gap; streams reset');
    settleWaiting(this);
  }

  // ---- recent events -------------------------------------------------------------------------

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
    while (recent.length > 0 && storedMs((recent[0] as StoredEvent).id) < oldestMs) {
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
    if (last.id !== (this.recent.length > 0 ? (this.recent[0] as StoredEvent).prev : this.lastId))
      return;
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

  /**
   * The frame of `event` (without private fields) for a single-topic stream: the bytes
   * dispatch() writes to each of them. Built once per event for the streams that catch up
   * through it (a storm resumes hundreds per topic), not once per stream.
   */
  soloFrame(event: StoredEvent): Buffer {
    let frame = this.soloFrames.get(event);
    if (frame === undefined) {
      frame = this.soloFrameOf(positionSuffix(event), encodeEventBody(event.event, event.data));
      this.soloFrames.set(event, frame);
    }
    return frame;
  }

  /**
   * A single-topic stream's frame of an event at `suffix` (positionSuffix) with these `event:`
   * and `data:` lines: every such frame, live or caught up, is built here, so both are the same
   * bytes.
   */
  soloFrameOf(suffix: string, body: string): Buffer {
    return Buffer.from(`${this.soloId}${suffix}\n${body}`);
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
