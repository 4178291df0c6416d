import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Hub } from '@streamcast/hub';
import {
  CursorInvalid,
  STREAM_HEADERS,
  encodeRetry,
  errorBody,
  normalizeTopics,
  parseCursor,
  type ErrorBody,
  type ParsedCursor,
  type Viewer,
} from '@streamcast/protocol';
import { ResponseSink } from './response-sink';

export interface StreamRequest {
  /** Distinct topics, sorted: the order of the stream's cursor entries. */
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
  headers?: OutgoingHttpHeaders;
  /** Bytes written right after the `retry:` line, before any event (e.g. a greeting). */
  preamble?: string;
  /** When the stream ends (its token expires), in ms since the epoch. */
  expiresAt?: number;
  /** The claims of the subscriber's token: which private fields it sees. */
  viewer?: Viewer;
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
  if (res.req?.method === 'HEAD') {
    // A HEAD response carries no body: answer the headers and end, rather than hold a stream
    // that could never deliver anything (Express and Fastify route HEAD to GET handlers).
    res.writeHead(200, { ...STREAM_HEADERS, ...options.headers });
    res.end();
    return;
  }
  const sink = new ResponseSink(res, options.headers, options.expiresAt);
  try {
    await hub.subscribe(sink, request.topics, request.cursor, options.preamble, options.viewer);
  } catch {
    bounceStream(res, hub.options.retryMs, options.headers);
  }
}

/**
 * The answer to a stream request while this process cannot serve it: 200 with only a `retry:`
 * line, then the end, so that EventSource tries again (through the balancer, elsewhere) where
 * a 503 would make it give up for good.
 */
export function bounceStream(
  res: ServerResponse,
  retryMs: number,
  headers: OutgoingHttpHeaders = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { ...STREAM_HEADERS, ...headers });
  res.end(encodeRetry(retryMs));
}

/**
 * Runs `listener` once the response is gone, at once if it is already: the client may have
 * left while the request was being authorised.
 */
export function onResponseClose(res: ServerResponse, listener: () => void): void {
  if (res.destroyed || res.closed) listener();
  else res.once('close', listener);
}

/** A request refused with one of the API's codes, as status and JSON body. */
export interface Refusal {
  statusCode: number;
  body: ErrorBody;
  /** Seconds, for a `Retry-After` header (429 answers). */
  retryAfter?: number;
}

/**
 * The API answer for an error thrown while reading a stream request: our 4xx errors (and any
 * error carrying a 4xx `statusCode` and an upper-case `code`, such as `new ParamInvalid(…)`
 * thrown by a host's topic lookup) become their status and `{"error": {"code", "message"}}`.
 * Anything else is not the client's fault: undefined, for the host's error handling.
 */
export function refusalOf(err: unknown): Refusal | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { statusCode, code, message } = err as Record<string, unknown>;
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode >= 500) return undefined;
  if (typeof code !== 'string' || !/^[A-Z][A-Z_]+$/.test(code)) return undefined;
  if (code.startsWith('FST_')) return undefined;
  const refusal: Refusal = {
    statusCode,
    body: errorBody(code, typeof message === 'string' ? message : code),
  };
  const retryAfter = (err as { retryAfter?: unknown }).retryAfter;
  if (typeof retryAfter === 'number') refusal.retryAfter = retryAfter;
  return refusal;
}
