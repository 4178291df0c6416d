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
 *     1~<entry>~<entry>…        entry = <topic index>.<epoch>.<ms>.<seq>   (base 36)
 *
 * The topic index is the topic's place in the connection's sorted, distinct topic list (the
 * client resends the same URL). A single-topic connection's cursor is `1~0.<epoch>.<ms>.<seq>`,
 * which is exactly the id that publishing the event returned.
 */
export const CURSOR_MAX_LENGTH = 1024;
const CURSOR_ALPHABET_RE = /^[0-9a-z.~]*$/;
const VERSION = '1';
const EPOCH_RE = /^[0-9a-z]{1,16}$/;
const INDEX_RE = /^(0|[1-9a-z][0-9a-z]?)$/;

/** Decoded cursor: positions by topic index; `placeable: false` for a cursor of another format. */
export interface ParsedCursor {
  placeable: boolean;
  positions: Map<number, TopicPosition>;
}

/**
 * Validates a client-sent cursor. Too long or outside the alphabet → CURSOR_INVALID (400).
 * Anything else that does not decode is a cursor this deployment cannot place: the caller answers
 * with a `reset`, never a 4xx, because EventSource gives up for good on an error status.
 */
export function parseCursor(text: string): ParsedCursor {
  if (text.length > CURSOR_MAX_LENGTH) {
    throw new CursorInvalid(`is ${text.length} characters long (at most ${CURSOR_MAX_LENGTH})`);
  }
  if (!CURSOR_ALPHABET_RE.test(text)) {
    throw new CursorInvalid('has characters outside 0-9 a-z . ~');
  }
  const unplaceable: ParsedCursor = { placeable: false, positions: new Map() };
  const parts = text.split('~');
  if (parts[0] !== VERSION || parts.length < 2) return unplaceable;
  const positions = new Map<number, TopicPosition>();
  for (let i = 1; i < parts.length; i++) {
    const fields = (parts[i] as string).split('.');
    if (fields.length !== 4) return unplaceable;
    const [index36, epoch, ms36, seq36] = fields as [string, string, string, string];
    if (!INDEX_RE.test(index36) || !EPOCH_RE.test(epoch)) return unplaceable;
    const index = parseInt(index36, 36);
    const id = compactToId(ms36, seq36);
    if (id === undefined || positions.has(index)) return unplaceable;
    positions.set(index, { epoch, id });
  }
  return { placeable: true, positions };
}

/** One topic's part of a cursor, without its index: `.<epoch>.<ms>.<seq>`. */
export function positionSuffix(position: TopicPosition): string {
  return `.${position.epoch}.${idToCompact(position.id)}`;
}

/** Builds a cursor from each topic's suffix (see positionSuffix), in topic-index order. */
export function formatCursor(suffixes: readonly string[]): string {
  let out = VERSION;
  for (let i = 0; i < suffixes.length; i++) out += `~${i.toString(36)}${suffixes[i]}`;
  return out;
}

/** The id a publish returns: the cursor of a connection to that topic alone. */
export function singleTopicCursor(position: TopicPosition): string {
  return formatCursor([positionSuffix(position)]);
}
