import type { StoredEvent } from '@streamcast/engine';
import {
  ZERO_ID,
  claimHolds,
  encodeEventBody,
  encodeRetry,
  formatCursor,
  parsePrivate,
  positionSuffix,
  stripFields,
  visibleMask,
  type PrivateGroup,
  type StreamId,
  type Viewer,
} from '@streamcast/protocol';
import type { Channel } from './channel';
import type { Hub } from './hub';
import type { CloseReason } from './latency';
import type { Sink } from './types';

/*
 * One stream and its topics, as the hub and its channels write to them: positions, the cursor
 * (every event's `id:`), private-field visibility, and the send queue's bound. Nothing here
 * decides what to send or where a stream starts (channel.ts and placement.ts do), and nothing
 * here reads the engine.
 */

/** One topic of one connection. */
export class Member {
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

/**
 * One client stream: its sink, its topics (one Member each), the cursor over all of them, and
 * its writes, bounded by the hub's send-queue limit (a client past it is dropped, and resumes).
 */
export class Connection {
  readonly members: Member[] = [];
  begun = false;
  closed = false;
  /** Why the hub is ending this stream, for the close it causes (else: the client left). */
  ending: CloseReason | undefined;
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
    // From now, not from hub.clock: the sweep advances that once a second, and a stream opened
    // just before the next sweep would lose up to that second of its lifetime.
    this.endsAt = lifetime > 0 ? Date.now() + lifetime * (0.8 + 0.2 * Math.random()) : Infinity;
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
