/**
 * Stream entry ids in the Redis Streams form `<ms>-<seq>` (decimal, no leading zeros). Both
 * engines use this form, so ordering and cursors work the same whichever one is running.
 */
export type StreamId = string;

/** The position before the first entry of any stream. */
export const ZERO_ID: StreamId = '0-0';

const ID_RE = /^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$/;

export function isStreamId(text: string): boolean {
  return ID_RE.test(text);
}

function compareDecimal(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders two stream ids: negative when `a` comes first, 0 when equal, positive after. */
export function compareIds(a: StreamId, b: StreamId): number {
  const i = a.indexOf('-');
  const j = b.indexOf('-');
  return (
    compareDecimal(a.slice(0, i), b.slice(0, j)) || compareDecimal(a.slice(i + 1), b.slice(j + 1))
  );
}

/** Compact base-36 form used inside cursors: `<ms36>.<seq36>`. */
export function idToCompact(id: StreamId): string {
  const dash = id.indexOf('-');
  return `${toBase36(id.slice(0, dash))}.${toBase36(id.slice(dash + 1))}`;
}

/** Inverse of idToCompact; undefined when the text is not a valid compact id. */
export function compactToId(ms36: string, seq36: string): StreamId | undefined {
  const ms = fromBase36(ms36);
  const seq = fromBase36(seq36);
  if (ms === undefined || seq === undefined) return undefined;
  return `${ms}-${seq}`;
}

function toBase36(decimal: string): string {
  return decimal.length <= 15 ? Number(decimal).toString(36) : BigInt(decimal).toString(36);
}

const BASE36_RE = /^(0|[1-9a-z][0-9a-z]{0,12})$/;
const MAX_U64 = (1n << 64n) - 1n;

function fromBase36(text: string): string | undefined {
  if (!BASE36_RE.test(text)) return undefined;
  if (text.length <= 10) return parseInt(text, 36).toString();
  let value = 0n;
  for (const ch of text) value = value * 36n + BigInt(parseInt(ch, 36));
  return value <= MAX_U64 ? value.toString() : undefined;
}
