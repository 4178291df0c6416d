import { CursorInvalid } from './errors';
import { formatCursor, parseCursor, positionSuffix, singleTopicCursor } from './cursor';
import { compareIds, idToCompact, compactToId } from './stream-id';

describe('cursor', () => {
  it('round-trips every topic position through one compact, URL-safe string', () => {
    const positions = [
      { epoch: 'abc123', id: '1700000000000-0' },
      { epoch: 'abc123', id: '1700000000001-17' },
      { epoch: 'zz9', id: '0-0' },
    ];
    const text = formatCursor(positions.map(positionSuffix));
    expect(text).toMatch(/^[0-9a-z.~]+$/);
    expect(encodeURIComponent(text)).toBe(text);
    const parsed = parseCursor(text);
    expect(parsed.placeable).toBe(true);
    expect([...parsed.positions.entries()]).toEqual(positions.map((p, i) => [i, p]));
  });

  it('gives a single-topic connection the same cursor that publishing returns', () => {
    const position = { epoch: 'e1', id: '1700000000000-3' };
    expect(formatCursor([positionSuffix(position)])).toBe(singleTopicCursor(position));
  });

  it('handles stream ids beyond 2^53', () => {
    const id = '18446744073709551615-18446744073709551615';
    const [ms, seq] = idToCompact(id).split('.') as [string, string];
    expect(compactToId(ms, seq)).toBe(id);
  });

  it.each([
    ['too long', '1~'.padEnd(1025, '0')],
    ['upper case', '1~0.ABC.1.0'],
    ['a NUL byte', '1~0.abc.1.0\u0000'],
    ['a space', '1~0.abc 1.0'],
    ['a newline', '1~0.abc.1.0\n'],
  ])('refuses a cursor with %s as CURSOR_INVALID', (_name, text) => {
    expect(() => parseCursor(text)).toThrow(CursorInvalid);
  });

  it.each([
    ['another version', '2~0.abc.1.0'],
    ['no entries', '1'],
    ['a short entry', '1~0.abc.1'],
    ['a repeated index', '1~0.abc.1.0~0.abc.2.0'],
    ['a leading zero', '1~0.abc.01.0'],
    ['a number beyond 64 bits', '1~0.abc.zzzzzzzzzzzzz.0'],
  ])('takes a well-formed cursor with %s as one it cannot place', (_name, text) => {
    expect(parseCursor(text).placeable).toBe(false);
  });

  it('orders stream ids numerically, not as text', () => {
    expect(compareIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareIds('10-10', '10-10')).toBe(0);
  });
});
