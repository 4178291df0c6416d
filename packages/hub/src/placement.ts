import type { HistoryPage, StoredEvent } from '@streamcast/engine';
import {
  RESET_EVENT,
  compareIds,
  encodeEventBody,
  positionSuffix,
  type CursorPlace,
  type StreamId,
  type TopicPosition,
} from '@streamcast/protocol';
import type { Channel } from './channel';
import type { Connection, Member } from './connection';
import type { ResetReason } from './types';

/*
 * Where a new or resuming stream starts, and its hand-over to live delivery. Each topic of a
 * stream (a Member) is placed after its cursor position, from the channel's recent events or
 * from history; history is written while the member holds live events; then the member goes
 * live exactly where the channel stands, so nothing is delivered twice or skipped. Topics the
 * history cannot continue get a `reset`, never a partial replay.
 *
 * Nothing here dispatches live events (channel.ts does) or opens and closes streams (hub.ts).
 */

/** How one member starts: a reset first (or not), then history entries, then maybe more. */
export interface Plan {
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
export function judge(epoch: string, after: StreamId, page: HistoryPage): ResetReason | undefined {
  if (page.epoch !== epoch) return 'history-lost';
  const cmp = compareIds(after, page.lastId);
  if (cmp > 0) return 'cursor-unknown';
  const first = page.entries[0];
  if (!first) return cmp < 0 ? 'history-trimmed' : undefined;
  if (first.prev === after) return undefined;
  return compareIds(first.prev, after) < 0 ? 'history-lost' : 'history-trimmed';
}

/**
 * Where a new member starts: after its cursor position, or at the head (live) when the cursor
 * does not cover its topic, or at the head after a `reset` when it cannot be placed.
 */
export async function placeMember(member: Member, place: CursorPlace): Promise<Plan> {
  const hub = member.conn.hub;
  const topic = member.channel.topic;
  const position = typeof place === 'object' ? place.position : undefined;
  const reset = place === 'unplaceable' ? 'cursor-unknown' : undefined;
  const fromMemory = placeFromMemory(member, position);
  if (fromMemory) return { reset, entries: fromMemory, more: false };
  if (!position) {
    const head = await hub.read(topic, null, 0);
    member.setPosition(head.epoch, head.lastId);
    return { reset, entries: [], more: false };
  }
  const page = await hub.read(topic, position.id, hub.options.pageSize);
  const verdict = judge(position.epoch, position.id, page);
  if (verdict) {
    member.setPosition(page.epoch, page.lastId);
    return { reset: verdict, entries: [], more: false };
  }
  member.setPosition(position.epoch, position.id);
  const more = page.entries.length >= hub.options.pageSize;
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
function placeFromMemory(
  member: Member,
  position: TopicPosition | undefined,
): StoredEvent[] | undefined {
  const channel = member.channel;
  if (channel.state !== 'live' || channel.closed) return undefined;
  channel.forgetAged(channel.hub.oldestRetainedMs());
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
export function writeResets(conn: Connection, plans: Plan[]): boolean {
  const byReason = new Map<ResetReason, string[]>();
  plans.forEach((plan, i) => {
    if (!plan.reset) return;
    const topics = byReason.get(plan.reset) ?? [];
    topics.push(conn.topics[i] as string);
    byReason.set(plan.reset, topics);
  });
  for (const [reason, topics] of byReason) {
    conn.writeEvent(encodeEventBody(RESET_EVENT, JSON.stringify({ topics, reason })));
    conn.hub.countResets(reason, 1);
  }
  return byReason.size > 0;
}

/**
 * Writes history entries that chain on from the member's position, pausing while the client
 * drains; false if the chain broke (or the connection closed). A single-topic stream gets the
 * frames its channel keeps for such streams (Channel.soloFrame); a multi-topic one, each entry
 * under its own cursor.
 */
export async function writeEntries(member: Member, entries: StoredEvent[]): Promise<boolean> {
  const conn = member.conn;
  const channel = member.channel;
  const solo = conn.members.length === 1;
  const half = conn.hub.options.maxQueueBytes / 2;
  // One write for the lot (a resume storm is thousands of these), split only to pause.
  let text = '';
  const frames: Buffer[] = [];
  let bytes = 0;
  let from = 0;
  const flush = (to: number): void => {
    if (frames.length > 0)
      conn.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames, bytes));
    else if (text !== '') conn.write(text);
    text = '';
    frames.length = 0;
    bytes = 0;
    // Solo entries moved the position without its cursor suffix (the frames carry it).
    if (solo) member.setPosition(member.epoch, member.lastId);
    for (; from < to; from++) conn.hub.delivered((entries[from] as StoredEvent).id, 1, true);
  };
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as StoredEvent;
    if (bytes + text.length + conn.sink.bufferedBytes > half) {
      flush(i);
      if (conn.sink.bufferedBytes > half) await conn.sink.drained();
    }
    if (conn.closed || e.prev !== member.lastId) {
      flush(i);
      return false;
    }
    if (solo) {
      member.epoch = e.epoch;
      member.lastId = e.id;
      const frame =
        e.private === undefined
          ? channel.soloFrame(e)
          : channel.soloFrameOf(positionSuffix(e), conn.bodyOf(e));
      frames.push(frame);
      bytes += frame.length;
    } else {
      member.setPosition(e.epoch, e.id);
      text += `id: ${conn.cursor()}\n${conn.bodyOf(e)}`;
    }
  }
  flush(entries.length);
  return true;
}

/** Sends history after the member's position until it is caught up, resetting where needed. */
export async function fill(member: Member): Promise<void> {
  const conn = member.conn;
  for (let rounds = 0; rounds < 10_000; rounds++) {
    if (conn.closed) return;
    if (conn.sink.bufferedBytes > conn.hub.options.maxQueueBytes / 2) await conn.sink.drained();
    if (conn.closed) return;
    const topic = member.channel.topic;
    const page = await conn.hub.read(topic, member.lastId, conn.hub.options.pageSize);
    if (conn.closed) return;
    const verdict = judge(member.epoch, member.lastId, page);
    if (verdict) {
      // No partial replay: the topic continues from the newest entry.
      member.setPosition(page.epoch, page.lastId);
      conn.writeEvent(
        encodeEventBody(RESET_EVENT, JSON.stringify({ topics: [topic], reason: verdict })),
      );
      conn.hub.countResets(verdict, 1);
      return;
    }
    if (!(await writeEntries(member, page.entries))) continue;
    if (page.entries.length < conn.hub.options.pageSize) return;
  }
}

/**
 * Finishes a member's catch-up: delivers what it buffered, then hands it to the channel. If
 * the channel has not yet delivered up to the member's position (its live messages are still
 * in flight), the member waits, buffering, and dispatch() completes the hand-over once the
 * channel reaches it: going live earlier would deliver those in-flight events twice.
 */
export async function goLive(member: Member): Promise<void> {
  for (let rounds = 0; rounds < 1000; rounds++) {
    if (member.conn.closed) return;
    const step = tryGoLive(member);
    if (step === 'live') return;
    if (step === 'wait') {
      member.waiting = true;
      return;
    }
    await fill(member);
  }
  throw new Error(`stream on ${member.channel.topic} could not catch up`);
}

/** Synchronous, so nothing can slip in between the last buffered event and going live. */
function tryGoLive(member: Member): 'live' | 'wait' | 'gap' {
  while (member.buffer.length > 0) {
    const event = member.buffer[0] as StoredEvent;
    if (event.epoch === member.epoch && compareIds(event.id, member.lastId) <= 0) {
      member.buffer.shift();
    } else if (event.epoch === member.epoch && event.prev === member.lastId) {
      member.buffer.shift();
      member.setPosition(event.epoch, event.id);
      member.conn.writeEvent(member.conn.bodyOf(event));
      member.conn.hub.delivered(event.id, 1, true);
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
export function settleWaiting(channel: Channel): void {
  if (channel.pending.size === 0) return;
  for (const member of [...channel.pending]) {
    if (!member.waiting || member.conn.closed) continue;
    const step = tryGoLive(member);
    if (step === 'gap') {
      member.waiting = false;
      goLive(member).catch((err) => {
        channel.hub.options.logger.warn(
          { err, topic: channel.topic },
          'stream ended while catching up',
        );
        channel.hub.end(member.conn, 'error');
      });
    }
  }
}
