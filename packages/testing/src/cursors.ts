import {
  compareIds,
  cursorPositions,
  formatCursor,
  parseCursor,
  positionSuffix,
  topicFingerprint,
  type TopicPosition,
} from '@streamcast/protocol';
import type { SseEvent } from './sse-client';

/**
 * Cursor tools for tests. Cursors are opaque to clients; tests look inside them to make the cases
 * a browser can bring: another deployment's cursor, the previous format, colliding topics.
 */

/** The same cursor with every entry moved to `epoch` (a cursor of another deployment, say). */
export function withEpoch(cursor: string, epoch = 'zzzzzz'): string {
  const parsed = parseCursor(cursor);
  if (parsed.format !== 'topics') throw new Error(`not a current cursor: ${cursor}`);
  return formatCursor(
    [...parsed.positions].map(([fingerprint, p]) => ({
      fingerprint,
      suffix: positionSuffix({ ...p, epoch }),
    })),
  );
}

/**
 * The cursor in the previous format (`1~<index>…`), as browsers still hold it from before the
 * upgrade: entries by index into `topics` (distinct and sorted, the connection's list).
 */
export function legacyCursor(cursor: string, topics: readonly string[]): string {
  const positions = cursorPositions(cursor, topics);
  if (!positions) throw new Error(`not a cursor: ${cursor}`);
  return `1${topics
    .map((t, i) => {
      const p = positions.get(t);
      if (!p) throw new Error(`cursor ${cursor} has no entry for ${t}`);
      return `~${i.toString(36)}${positionSuffix(p)}`;
    })
    .join('')}`;
}

/** The position `cursor` gives `topic` (undefined when it has none). */
export function positionIn(cursor: string, topic: string): TopicPosition | undefined {
  return cursorPositions(cursor, [topic])?.get(topic);
}

/** A cursor covering the topics of `cursors` (each a cursor of one of them), in topic order. */
export function joinCursors(cursors: Record<string, string>): string {
  const topics = Object.keys(cursors).sort();
  return formatCursor(
    topics.map((t) => {
      const p = positionIn(cursors[t] as string, t);
      if (!p) throw new Error(`cursor for ${t} does not cover it`);
      return { fingerprint: topicFingerprint(t), suffix: positionSuffix(p) };
    }),
  );
}

/**
 * Two topic names with the same fingerprint (a real collision, found by a birthday search over
 * about 60,000 names of the form `<prefix><n>`; a few hundred ms).
 */
export function collidingTopics(prefix = 'room/'): [string, string] {
  const seen = new Map<string, string>();
  for (let i = 0; ; i++) {
    const topic = `${prefix}${i}`;
    const fp = topicFingerprint(topic);
    const other = seen.get(fp);
    if (other !== undefined) return [other, topic];
    seen.set(fp, topic);
  }
}

export interface StoredSeq {
  /** Where the entry is in its topic's history. */
  position: TopicPosition;
  seq: number;
}

/** The stored entries of a producer loop's topic (its ids are single-topic cursors), by seq. */
export function storedSeqs(ids: readonly string[], topic: string): StoredSeq[] {
  return ids.map((id, seq) => ({ position: positionIn(id, topic) as TopicPosition, seq }));
}

/**
 * API.md: after a `reset`, "those topics continue live from there, with no partial replay". For
 * each reset of `topic` in `events`, the topic's events up to its next reset must be exactly the
 * `stored` entries after the reset's position (its `id:`), in order, once: nothing stored before it
 * replayed, nothing after it missing (the last segment whole, earlier ones a prefix). Throws on the
 * first difference; returns how many resets were checked.
 */
export function expectExactlyAfterResets(
  events: readonly SseEvent[],
  topic: string,
  stored: readonly StoredSeq[],
  options: { event?: string; seq?: (data: any) => number; topic?: (data: any) => string } = {},
): number {
  const type = options.event ?? 'n';
  const seqOf = options.seq ?? ((data: { seq: number }) => data.seq);
  const ours = events.filter((e) => {
    if (e.event === 'reset')
      return (JSON.parse(e.data) as { topics: string[] }).topics.includes(topic);
    return e.event === type && (!options.topic || options.topic(JSON.parse(e.data)) === topic);
  });
  let checked = 0;
  ours.forEach((e, i) => {
    if (e.event !== 'reset') return;
    const at = e.id === undefined ? undefined : positionIn(e.id, topic);
    if (!at)
      throw new Error(`reset #${checked} of ${topic} has no position for it in its id ${e.id}`);
    const rest = ours.slice(i + 1);
    const end = rest.findIndex((later) => later.event === 'reset');
    const got = (end < 0 ? rest : rest.slice(0, end)).map((later) => seqOf(JSON.parse(later.data)));
    const after = stored
      .filter((s) => s.position.epoch === at.epoch && compareIds(s.position.id, at.id) > 0)
      .map((s) => s.seq);
    const expected = end < 0 ? after : after.slice(0, got.length);
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      throw new Error(
        `after reset #${checked} of ${topic} (at ${at.epoch}/${at.id}): got seqs [${got.join(', ')}], ` +
          `expected exactly those stored after it [${expected.join(', ')}]`,
      );
    }
    checked++;
  });
  return checked;
}
