import { CursorInvalid } from './errors';
import { compactToId, idToCompact, type StreamId } from './stream-id';

/**
 * Where one topic of a connection stands: the history it belongs to (`epoch`, which changes when
 * the history is lost, e.g. Redis restarted empty) and the last entry delivered from it.
 */
export interface TopicPosition {
  epoch: string;
  id: StreamId;
}

/**
 * The connection cursor, sent as every event's `id:`. EventSource sends back only the last id it
 * saw, so one cursor covers every topic of a connection:
 *
 *     2~<entry>~<entry>…        entry = <fingerprint>.<epoch>.<ms>.<seq>   (base 36)
 *
 * Each entry names its topic by a 6-character fingerprint of the topic's name (see
 * topicFingerprint), so a position is only ever applied to the topic it came from, whatever
 * topics the next request asks for and in whatever order. Entries follow the connection's sorted
 * topic list. A single-topic connection's cursor is `2~<fp>.<epoch>.<ms>.<seq>`, which is exactly
 * the id that publishing the event returned. About 30 characters per topic: 32 topics stay well
 * under CURSOR_MAX_LENGTH.
 *
 * The previous format, `1~<index>.<epoch>.<ms>.<seq>` (entries by index into the sorted topic
 * list), is still read: see placeCursor. Gateways of that version read a `2~` cursor as one they
 * cannot place (`reset`, never a misplaced position), so a rolling upgrade is safe both ways.
 */
export const CURSOR_MAX_LENGTH = 1024;
/** The most topics one connection may have: their cursor (about 30 characters each) must fit. */
export const CURSOR_MAX_TOPICS = 32;

/** `maxTopics` of a server option, checked: 1–CURSOR_MAX_TOPICS (default), else a TypeError. */
export function checkMaxTopics(maxTopics: number | undefined, who: string): number {
  const value = maxTopics ?? CURSOR_MAX_TOPICS;
  if (!Number.isInteger(value) || value < 1 || value > CURSOR_MAX_TOPICS) {
    throw new TypeError(
      `${who}: maxTopics must be an integer from 1 to ${CURSOR_MAX_TOPICS} (a cursor must fit in ${CURSOR_MAX_LENGTH} characters)`,
    );
  }
  return value;
}
const CURSOR_ALPHABET_RE = /^[0-9a-z.~]*$/;
const VERSION = '2';
const LEGACY_VERSION = '1';
const EPOCH_RE = /^[0-9a-z]{1,16}$/;
const FINGERPRINT_RE = /^[0-9a-z]{6}$/;
const INDEX_RE = /^(0|[1-9a-z][0-9a-z]?)$/;

/** A decoded cursor (see parseCursor); which topics it places is for placeCursor to say. */
export type ParsedCursor =
  /** Current format: positions by topic fingerprint; `ambiguous` fingerprints appear twice. */
  | { format: 'topics'; positions: Map<string, TopicPosition>; ambiguous: Set<string> }
  /** The previous format: positions by index into the connection's sorted topic list. */
  | { format: 'indexed'; positions: Map<number, TopicPosition> }
  /** Well-formed, but nothing here can place it (another version, a malformed entry). */
  | { format: 'unplaceable' };

/** Where one requested topic starts, as its cursor says (see placeCursor). */
export type CursorPlace =
  /** Resume after this position (if history still has it). */
  | { position: TopicPosition }
  /** The cursor does not cover the topic: start live, no reset. */
  | 'live'
  /** The cursor covers the topic but cannot say where: `reset` (cursor-unknown), then live. */
  | 'unplaceable';

/**
 * Validates a client-sent cursor. Too long or outside the alphabet → CURSOR_INVALID (400).
 * Anything else that does not decode is a cursor this deployment cannot place: the caller answers
 * with a `reset`, never a 4xx, because EventSource gives up for good on an error status. Never
 * throws anything but CursorInvalid.
 */
export function parseCursor(text: string): ParsedCursor {
  if (text.length > CURSOR_MAX_LENGTH) {
    throw new CursorInvalid(`is ${text.length} characters long (at most ${CURSOR_MAX_LENGTH})`);
  }
  if (!CURSOR_ALPHABET_RE.test(text)) {
    throw new CursorInvalid('has characters outside 0-9 a-z . ~');
  }
  const unplaceable: ParsedCursor = { format: 'unplaceable' };
  const parts = text.split('~');
  if (parts.length < 2) return unplaceable;
  const version = parts[0];
  if (version !== VERSION && version !== LEGACY_VERSION) return unplaceable;
  const keyRe = version === VERSION ? FINGERPRINT_RE : INDEX_RE;
  const entries: [string, TopicPosition][] = [];
  for (let i = 1; i < parts.length; i++) {
    const fields = (parts[i] as string).split('.');
    if (fields.length !== 4) return unplaceable;
    const [key, epoch, ms36, seq36] = fields as [string, string, string, string];
    if (!keyRe.test(key) || !EPOCH_RE.test(epoch)) return unplaceable;
    const id = compactToId(ms36, seq36);
    if (id === undefined) return unplaceable;
    entries.push([key, { epoch, id }]);
  }
  if (version === LEGACY_VERSION) {
    const positions = new Map<number, TopicPosition>();
    for (const [key, position] of entries) {
      const index = parseInt(key, 36);
      if (positions.has(index)) return unplaceable;
      positions.set(index, position);
    }
    return { format: 'indexed', positions };
  }
  const positions = new Map<string, TopicPosition>();
  const ambiguous = new Set<string>();
  for (const [fingerprint, position] of entries) {
    if (positions.has(fingerprint)) ambiguous.add(fingerprint);
    positions.set(fingerprint, position);
  }
  return { format: 'topics', positions, ambiguous };
}

/**
 * Where each of a request's topics (distinct and sorted, as normalizeTopics gives them) starts:
 *
 * - current format: the entry with the topic's fingerprint, if any ('live' without one; entries
 *   of topics not requested are ignored). A fingerprint that two requested topics share, or that
 *   the cursor holds twice, cannot tell them apart: 'unplaceable' for those topics, never a
 *   position that may belong to another topic;
 * - previous format: placed by index when the cursor has exactly one entry per requested topic
 *   (a single-topic cursor on a single topic, or a multi-topic cursor resent with its own topic
 *   list, as EventSource does); otherwise it cannot say which entry is which topic: every topic
 *   'unplaceable';
 * - a cursor nothing can place: every topic 'unplaceable'.
 */
export function placeCursor(
  cursor: ParsedCursor,
  topics: readonly string[],
  fingerprintOf: (topic: string) => string = topicFingerprint,
): CursorPlace[] {
  switch (cursor.format) {
    case 'unplaceable':
      return topics.map(() => 'unplaceable');
    case 'indexed': {
      const { positions } = cursor;
      const aligned = positions.size === topics.length && topics.every((_, i) => positions.has(i));
      return topics.map((_, i) =>
        aligned ? { position: positions.get(i) as TopicPosition } : 'unplaceable',
      );
    }
    case 'topics': {
      const fingerprints = topics.map(fingerprintOf);
      const shared = new Set(fingerprints.filter((fp, i) => fingerprints.indexOf(fp) !== i));
      return fingerprints.map((fp) => {
        const position = cursor.positions.get(fp);
        if (!position) return 'live';
        if (shared.has(fp) || cursor.ambiguous.has(fp)) return 'unplaceable';
        return { position };
      });
    }
  }
}

/**
 * One topic's part of a cursor after its fingerprint: `.<epoch>.<ms>.<seq>`. Kept apart so
 * fan-out builds cursors by concatenation, without re-encoding positions per event.
 */
export function positionSuffix(position: TopicPosition): string {
  return `.${position.epoch}.${idToCompact(position.id)}`;
}

/** A cursor's version and first separator: `formatCursor` output starts with it. */
export const CURSOR_PREFIX = `${VERSION}~`;

/** One topic's entry as formatCursor takes it. */
export interface CursorEntry {
  /** topicFingerprint of the topic. */
  fingerprint: string;
  /** positionSuffix of where it stands. */
  suffix: string;
}

/** Builds a cursor from each topic's entry, in the connection's (sorted) topic order. */
export function formatCursor(entries: readonly CursorEntry[]): string {
  let out = VERSION;
  for (const entry of entries) out += `~${entry.fingerprint}${entry.suffix}`;
  return out;
}

/** The id a publish returns: the cursor of a connection to that topic alone. */
export function singleTopicCursor(topic: string, position: TopicPosition): string {
  return `${CURSOR_PREFIX}${topicFingerprint(topic)}${positionSuffix(position)}`;
}

/**
 * The positions a cursor gives `topics` (distinct and sorted), by topic name, for tools that label
 * output (streamcast-tail); undefined for a cursor that is not one of ours.
 */
export function cursorPositions(
  text: string,
  topics: readonly string[],
): Map<string, TopicPosition> | undefined {
  let parsed: ParsedCursor;
  try {
    parsed = parseCursor(text);
  } catch {
    return undefined;
  }
  if (parsed.format === 'unplaceable') return undefined;
  const positions = new Map<string, TopicPosition>();
  placeCursor(parsed, topics).forEach((place, i) => {
    if (typeof place === 'object') positions.set(topics[i] as string, place.position);
  });
  return positions;
}

const FINGERPRINT_SPACE = 36 ** 6;

/**
 * A topic's name in a cursor: 6 base-36 characters (2.2 billion values) from FNV-1a over the
 * name's characters, mixed by MurmurHash3's finaliser. Two topics of one request sharing one is
 * rare (32 topics: about 1 in 4 million) and costs a `reset` of those two, never a misplaced
 * position (placeCursor). `@streamcast/client` computes the same function to tell which topic an
 * event came from; the two are checked against each other in its tests.
 */
export function topicFingerprint(topic: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) {
    h ^= topic.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) % FINGERPRINT_SPACE).toString(36).padStart(6, '0');
}
