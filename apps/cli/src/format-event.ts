import { cursorPositions, idToCompact } from '@streamcast/protocol';

/** One event as tail prints it: the JSON line form, and what the pretty form is made of. */
export interface TailEvent {
  /** The connection cursor sent with the event (empty when the event had none). */
  id: string;
  event: string;
  /** Parsed from the JSON text the gateway sends; the raw text if it was not JSON. */
  data: unknown;
}

/**
 * Which topic an event came from, and its short position (`<ms>.<seq>`): the one entry of the
 * cursor that moved since the previous one. Cursors are opaque to outside clients; this tool is
 * part of the project and only uses it to label output, falling back to nothing. `topics`:
 * distinct and sorted, as the gateway orders them.
 */
export function locateEvent(
  topics: readonly string[],
  previous: string | undefined,
  current: string,
): { topic?: string; position?: string } {
  const now = cursorPositions(current, topics);
  if (!now) return {};
  const before = previous === undefined ? undefined : cursorPositions(previous, topics);
  const moved = [...now].filter(([topic, position]) => {
    const old = before?.get(topic);
    return !old || old.epoch !== position.epoch || old.id !== position.id;
  });
  const [only] = moved.length === 1 ? moved : topics.length === 1 ? [...now] : [];
  if (!only) return {};
  return { topic: only[0], position: idToCompact(only[1].id) };
}

export interface PrettyOptions {
  colors: boolean;
  /** Terminal width: data that does not fit after the header goes on indented lines below. */
  columns: number;
  topic?: string;
  position?: string;
  now?: Date;
}

const paint = (on: boolean, code: string, text: string) =>
  on ? `\x1b[${code}m${text}\x1b[0m` : text;

/** `12:04:05.123  news  headline  #mwwam29w.0  {"title":"hello"}`, long data indented below. */
export function formatPretty(event: TailEvent, options: PrettyOptions): string {
  const { colors } = options;
  const time = (options.now ?? new Date()).toTimeString().slice(0, 8);
  const millis = String((options.now ?? new Date()).getMilliseconds()).padStart(3, '0');
  const id = options.position ?? (event.id.length > 12 ? `…${event.id.slice(-12)}` : event.id);
  const parts = [
    paint(colors, '2', `${time}.${millis}`),
    options.topic === undefined ? undefined : paint(colors, '36', options.topic),
    paint(colors, '1;33', event.event),
    id ? paint(colors, '2', `#${id}`) : undefined,
  ].filter((p): p is string => p !== undefined);
  const header = parts.join('  ');
  // eslint-disable-next-line no-control-regex -- colour codes start with ESC: it is what is matched
  const visible = header.replace(/\x1b\[[0-9;]*m/g, '').length;
  const compact = typeof event.data === 'string' ? event.data : JSON.stringify(event.data);
  if (visible + 2 + compact.length <= options.columns && !compact.includes('\n')) {
    return `${header}  ${compact}\n`;
  }
  const pretty = typeof event.data === 'string' ? event.data : JSON.stringify(event.data, null, 2);
  return `${header}\n${pretty.replace(/^/gm, '    ')}\n`;
}
