import { DEFAULT_EVENT } from './names';

/**
 * SSE wire format. Frames are built once per event and the same bytes go to every connection;
 * nothing here runs per subscriber.
 */

/** `event:` and `data:` lines and the closing blank line of one event (everything but `id:`). */
export function encodeEventBody(event: string, data: string): string {
  let out = event === DEFAULT_EVENT ? '' : `event: ${event}\n`;
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) return `${out}data: ${data}\n\n`;
  // One data line per line of the text: a raw newline would otherwise end the field early.
  for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

export function encodeIdLine(cursor: string): string {
  return `id: ${cursor}\n`;
}

export function encodeRetry(ms: number): string {
  return `retry: ${ms}\n\n`;
}

/** A comment line: ignored by EventSource, keeps proxies from closing an idle stream. */
export const HEARTBEAT = Buffer.from(':\n\n');

/** Response headers of every event stream (see API.md, "Subscribing"). */
export const STREAM_HEADERS: Readonly<Record<string, string>> = {
  // Exactly as API.md writes it: an event stream is UTF-8 by definition, a charset adds nothing.
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};
