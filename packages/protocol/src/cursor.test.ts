import { collidingTopics } from '@streamcast/testing';
import { CursorInvalid } from './errors';
import {
  CURSOR_MAX_LENGTH,
  checkMaxTopics,
  cursorPositions,
  formatCursor,
  parseCursor,
  placeCursor,
  positionSuffix,
  singleTopicCursor,
  topicFingerprint,
  type CursorPlace,
  type TopicPosition,
} from './cursor';
import { compareIds, idToCompact, compactToId } from './stream-id';

const entry = (topic: string, position: TopicPosition) => ({
  fingerprint: topicFingerprint(topic),
  suffix: positionSuffix(position),
});
const cursorOf = (positions: Record<string, TopicPosition>) =>
  formatCursor(
    Object.keys(positions)
      .sort()
      .map((t) => entry(t, positions[t] as TopicPosition)),
  );
const placed = (position: TopicPosition): CursorPlace => ({ position });

/** The epochs and ids a deployment makes today: 10 random base-36 characters, ms-seq ids. */
const EPOCH = 'k3x9ab12cd';
const now = (seq = 0): string => `${Date.now()}-${seq}`;

describe('cursor', () => {
  it('round-trips every topic position through one compact, URL-safe string', () => {
    const positions = {
      'stocks/AAPL': { epoch: 'abc123', id: '1700000000000-0' },
      chat: { epoch: 'abc123', id: '1700000000001-17' },
      news: { epoch: 'zz9', id: '0-0' },
    };
    const text = cursorOf(positions);
    expect(text).toMatch(/^2(~[0-9a-z]{6}\.[0-9a-z]+\.[0-9a-z]+\.[0-9a-z]+){3}$/);
    expect(encodeURIComponent(text)).toBe(text);
    const topics = Object.keys(positions).sort();
    expect(placeCursor(parseCursor(text), topics)).toEqual(
      topics.map((t) => placed(positions[t as keyof typeof positions])),
    );
  });

  it('gives a single-topic connection the same cursor that publishing returns', () => {
    const position = { epoch: 'e1', id: '1700000000000-3' };
    expect(formatCursor([entry('news', position)])).toBe(singleTopicCursor('news', position));
    expect(singleTopicCursor('news', position)).toBe(
      `2~${topicFingerprint('news')}.e1.${idToCompact(position.id)}`,
    );
  });

  it('applies a position only to the topic it came from, whatever the request asks', () => {
    const x = { epoch: EPOCH, id: now(1) };
    const y = { epoch: EPOCH, id: now(2) };
    const text = cursorOf({ x, y });
    const parsed = parseCursor(text);
    expect(placeCursor(parsed, ['x', 'y'])).toEqual([placed(x), placed(y)]);
    expect(placeCursor(parsed, ['x', 'z'])).toEqual([placed(x), 'live']);
    expect(placeCursor(parsed, ['x'])).toEqual([placed(x)]);
    expect(placeCursor(parsed, ['z'])).toEqual(['live']);
    expect(placeCursor(parsed, ['x', 'y', 'z'])).toEqual([placed(x), placed(y), 'live']);
    // Entries are found by name, not by place: the order of the cursor's entries does not matter.
    const reversed = formatCursor([entry('y', y), entry('x', x)]);
    expect(placeCursor(parseCursor(reversed), ['x', 'y'])).toEqual([placed(x), placed(y)]);
    expect(cursorPositions(text, ['x', 'z'])).toEqual(new Map([['x', x]]));
  });

  it('resets, never misplaces, topics whose fingerprints collide', () => {
    const [a, b] = collidingTopics();
    expect(topicFingerprint(a)).toBe(topicFingerprint(b));
    const p = { epoch: EPOCH, id: now() };
    // A cursor with one entry for the shared fingerprint, on a request with both topics.
    const one = parseCursor(formatCursor([entry(a, p)]));
    expect(placeCursor(one, [a, b].sort())).toEqual(['unplaceable', 'unplaceable']);
    // A cursor of a connection to both (two entries, one fingerprint), on either topic alone.
    const both = parseCursor(formatCursor([entry(a, p), entry(b, p)]));
    expect(placeCursor(both, [a])).toEqual(['unplaceable']);
    expect(placeCursor(both, [b, 'other'].sort())).toEqual(
      [b, 'other'].sort().map((t) => (t === b ? 'unplaceable' : 'live')),
    );
    // The same, with a colliding fingerprint forced on any two names.
    const forced = (topic: string) =>
      topic === 'p' || topic === 'q' ? 'aaaaaa' : topicFingerprint(topic);
    const pq = parseCursor(`2~aaaaaa.${EPOCH}.${idToCompact(p.id)}`);
    expect(placeCursor(pq, ['p', 'q', 'r'], forced)).toEqual([
      'unplaceable',
      'unplaceable',
      'live',
    ]);
  });

  describe('cursors of the previous format (1~<index>…)', () => {
    const legacy = (...positions: TopicPosition[]) =>
      `1${positions.map((p, i) => `~${i.toString(36)}${positionSuffix(p)}`).join('')}`;
    const x = { epoch: EPOCH, id: now(1) };
    const y = { epoch: EPOCH, id: now(2) };

    it('places a single-topic cursor on its topic, and a multi-topic one on as many topics', () => {
      expect(placeCursor(parseCursor(legacy(x)), ['x'])).toEqual([placed(x)]);
      expect(placeCursor(parseCursor(legacy(x, y)), ['x', 'y'])).toEqual([placed(x), placed(y)]);
    });

    it('resets every topic where it cannot say which entry is which topic', () => {
      expect(placeCursor(parseCursor(legacy(x)), ['x', 'y'])).toEqual([
        'unplaceable',
        'unplaceable',
      ]);
      expect(placeCursor(parseCursor(legacy(x, y)), ['x'])).toEqual(['unplaceable']);
      expect(placeCursor(parseCursor(legacy(x, y)), ['x', 'y', 'z'])).toEqual([
        'unplaceable',
        'unplaceable',
        'unplaceable',
      ]);
      expect(placeCursor(parseCursor('1~1.e1.1.0'), ['x'])).toEqual(['unplaceable']);
    });
  });

  it('lets servers take at most the 32 topics whose cursor fits', () => {
    expect(checkMaxTopics(undefined, 'test')).toBe(32);
    expect(checkMaxTopics(5, 'test')).toBe(5);
    for (const bad of [0, 33, 1.5, Number.NaN])
      expect(() => checkMaxTopics(bad, 'test')).toThrow(TypeError);
  });

  it('handles stream ids beyond 2^53', () => {
    const id = '18446744073709551615-18446744073709551615';
    const [ms, seq] = idToCompact(id).split('.') as [string, string];
    expect(compactToId(ms, seq)).toBe(id);
  });

  it.each([
    ['too long', '2~'.padEnd(1025, '0')],
    ['upper case', '2~aaaaaa.ABC.1.0'],
    ['a NUL byte', '2~aaaaaa.abc.1.0\u0000'],
    ['a space', '2~aaaaaa.abc 1.0'],
    ['a newline', '1~0.abc.1.0\n'],
  ])('refuses a cursor with %s as CURSOR_INVALID', (_name, text) => {
    expect(() => parseCursor(text)).toThrow(CursorInvalid);
  });

  it.each([
    ['another version', '3~aaaaaa.abc.1.0'],
    ['no entries', '2'],
    ['a short entry', '2~aaaaaa.abc.1'],
    ['a short fingerprint', '2~aaaaa.abc.1.0'],
    ['an index where a fingerprint belongs', '2~0.abc.1.0'],
    ['a repeated index', '1~0.abc.1.0~0.abc.2.0'],
    ['a leading zero', '2~aaaaaa.abc.01.0'],
    ['a number beyond 64 bits', '2~aaaaaa.abc.zzzzzzzzzzzzz.0'],
  ])('takes a well-formed cursor with %s as one it cannot place', (_name, text) => {
    expect(placeCursor(parseCursor(text), ['a', 'b'])).toEqual(['unplaceable', 'unplaceable']);
  });

  it('orders stream ids numerically, not as text', () => {
    expect(compareIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareIds('10-10', '10-10')).toBe(0);
  });

  describe('properties', () => {
    const random = seeded(15);
    const TOPIC_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:/';
    const randomTopic = () => {
      const length = 1 + Math.floor(random() * 200);
      let out = '';
      for (let i = 0; i < length; i++)
        out += TOPIC_CHARS[Math.floor(random() * TOPIC_CHARS.length)];
      return out;
    };
    const randomEpoch = () => {
      let out = '';
      for (let i = 0; i < 10; i++) out += Math.floor(random() * 36).toString(36);
      return out;
    };

    it('round-trips random topic sets of up to 32 topics of up to 200 characters, within the length bound', () => {
      for (let round = 0; round < 200; round++) {
        const count = 1 + Math.floor(random() * 32);
        const topics = [...new Set(Array.from({ length: count }, randomTopic))].sort();
        if (new Set(topics.map(topicFingerprint)).size !== topics.length) continue; // collision: see above
        // Ids as the engines make them now: the time in ms, a small sequence number.
        const positions = topics.map(() => ({
          epoch: randomEpoch(),
          id: `${Date.now() - Math.floor(random() * 86_400_000)}-${Math.floor(random() * 1296)}`,
        }));
        const text = formatCursor(topics.map((t, i) => entry(t, positions[i] as TopicPosition)));
        expect(text.length).toBeLessThan(CURSOR_MAX_LENGTH);
        expect(encodeURIComponent(text)).toBe(text);
        expect(placeCursor(parseCursor(text), topics)).toEqual(positions.map(placed));
        // A subset of the topics, plus one the cursor does not cover (when no fingerprint collides).
        const extra = randomTopic();
        const all = [...new Set([...topics, extra])];
        if (new Set(all.map(topicFingerprint)).size !== all.length) continue;
        const subset = [...new Set([...topics.filter(() => random() < 0.5), extra])].sort();
        expect(placeCursor(parseCursor(text), subset)).toEqual(
          subset.map((t) =>
            topics.includes(t) ? placed(positions[topics.indexOf(t)] as TopicPosition) : 'live',
          ),
        );
      }
    });

    it('reads every malformed input as CURSOR_INVALID or a cursor it cannot place, never another throw', () => {
      const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz.~';
      const valid = cursorOf({ x: { epoch: EPOCH, id: now(3) }, y: { epoch: EPOCH, id: now(4) } });
      for (let round = 0; round < 2000; round++) {
        let text: string;
        const kind = round % 4;
        if (kind === 0) {
          // Random characters of the alphabet.
          text = Array.from(
            { length: Math.floor(random() * 80) },
            () => alphabet[Math.floor(random() * alphabet.length)],
          ).join('');
        } else if (kind === 1) {
          // A valid cursor with one character changed, dropped or doubled.
          const at = Math.floor(random() * valid.length);
          const ch = alphabet[Math.floor(random() * alphabet.length)] as string;
          text = [
            valid.slice(0, at) + ch + valid.slice(at + 1),
            valid.slice(0, at) + valid.slice(at + 1),
            valid.slice(0, at) + ch + valid.slice(at),
          ][round % 3] as string;
        } else if (kind === 2) {
          // Any characters at all, any length up to past the bound.
          text = Array.from({ length: Math.floor(random() * 1100) }, () =>
            String.fromCharCode(Math.floor(random() * 0x3000)),
          ).join('');
        } else {
          text = `${random() < 0.5 ? '1' : '2'}~${valid.slice(2).split('~').reverse().join('~')}${'~'.repeat(Math.floor(random() * 3))}`;
        }
        let outcome: 'invalid' | CursorPlace[];
        try {
          outcome = placeCursor(parseCursor(text), ['x', 'y']);
        } catch (err) {
          expect(err).toBeInstanceOf(CursorInvalid);
          outcome = 'invalid';
        }
        if (outcome !== 'invalid') {
          for (const place of outcome) {
            if (typeof place === 'object') {
              expect(place.position.id).toMatch(/^\d+-\d+$/);
              expect(place.position.epoch).toMatch(/^[0-9a-z]{1,16}$/);
            } else {
              expect(['live', 'unplaceable']).toContain(place);
            }
          }
        }
      }
    });

    it('keeps cursors of 1, 8 and 32 topics short', () => {
      const lengthFor = (count: number) =>
        formatCursor(
          Array.from({ length: count }, (_, i) =>
            entry(`topic-${i}`, { epoch: EPOCH, id: now(Math.min(i, 40)) }),
          ),
        ).length;
      expect(lengthFor(1)).toBeLessThanOrEqual(30);
      expect(lengthFor(8)).toBeLessThanOrEqual(8 * 30);
      expect(lengthFor(32)).toBeLessThanOrEqual(32 * 30 + 1);
    });
  });
});

/** A small deterministic PRNG (mulberry32), so a failing case can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
