import type { ServerResponse } from 'node:http';
import type { Hub } from '@streamcast/hub';
import {
  CursorInvalid,
  STREAM_HEADERS,
  encodeRetry,
  normalizeTopics,
  parseCursor,
  type ParsedCursor,
} from '@streamcast/protocol';
import { ResponseSink } from './response-sink';

export interface StreamRequest {
  /** Distinct topics, sorted: cursor indexes refer to this order. */
  topics: string[];
  cursor: ParsedCursor | undefined;
}

/**
 * Validates what a subscription asks for, before anything reaches the engine. The
 * `Last-Event-ID` header (sent by EventSource on reconnect) wins over the `lastEventId` query
 * parameter (for a first connection). Throws the protocol's 400 errors.
 */
export function readStreamRequest(
  topics: readonly unknown[],
  headerCursor: string | string[] | undefined,
  queryCursor: unknown,
  maxTopics: number,
): StreamRequest {
  const normalized = normalizeTopics(topics, maxTopics);
  const text = pickCursor(headerCursor, queryCursor);
  return { topics: normalized, cursor: text === undefined ? undefined : parseCursor(text) };
}

function pickCursor(header: string | string[] | undefined, query: unknown): string | undefined {
  if (Array.isArray(header)) throw new CursorInvalid('was sent in more than one header');
  if (header !== undefined && header !== '') return header;
  if (query === undefined || query === '') return undefined;
  if (typeof query !== 'string') throw new CursorInvalid('was given more than once');
  return query;
}

export interface ServeOptions {
  /** Extra response headers (CORS and the like). */
  headers?: Record<string, string>;
  /** Bytes written right after the `retry:` line, before any event (e.g. a greeting). */
  preamble?: string;
}

/**
 * Answers one HTTP request as an event stream on the hub. When the hub cannot serve (engine
 * unreachable), answers 200 with only a `retry:` line and closes: EventSource then retries,
 * through the balancer elsewhere, where a 503 would make it give up for good.
 */
export async function serveStream(
  hub: Hub,
  res: ServerResponse,
  request: StreamRequest,
  options: ServeOptions = {},
): Promise<void> {
  const sink = new ResponseSink(res, options.headers);
  try {
    await hub.subscribe(sink, request.topics, request.cursor, options.preamble);
  } catch {
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(200, { ...STREAM_HEADERS, ...options.headers });
      res.end(encodeRetry(hub.options.retryMs));
    }
  }
}
