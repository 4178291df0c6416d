import type { Broadcaster } from '@streamcast/broadcaster';
import {
  bounceStream,
  onResponseClose,
  readStreamRequest,
  refusalOf,
  serveStream,
  type Admission,
  type Guard,
  type StreamRequest,
} from '@streamcast/http';
import { traced, type Hub } from '@streamcast/hub';
import { checkMaxTopics } from '@streamcast/protocol';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/** `P` types `req.params`: `sse<{ symbol: string }>({ … })`. */
export interface SseOptions<P = Request['params']> {
  /** What serves the stream: made by `createBroadcaster` (or give its `hub`). */
  broadcaster?: Pick<Broadcaster, 'hub'>;
  hub?: Hub;
  /**
   * The topics of this request. Throw an error with a 4xx `statusCode` and an upper-case `code`
   * (e.g. `new ParamInvalid(…)` from `@streamcast/protocol`) to refuse the request with it.
   * @default the request's `?topic=` parameters, as the gateway's `/events`
   */
  topics?: (req: Request<P>) => readonly unknown[] | Promise<readonly unknown[]>;
  /** Written right after the `retry:` line, before any event: a greeting, for instance. */
  preamble?: string | ((req: Request<P>) => string | undefined);
  /** Extra response headers (CORS and the like); headers the app set before also stay. */
  headers?: Record<string, string>;
  /** Most distinct topics one stream may ask for. @default 32 */
  maxTopics?: number;
  /**
   * Authentication, topic claims and stream limits, as the gateway's (one `Guard` for the
   * app, shared by its routes). The client IP is `req.ip` (Express's `trust proxy` applies);
   * the token is read from `Authorization: Bearer`, the `sse_token` cookie or `?token=`.
   * @default none: every topic open, no limits
   */
  guard?: Guard;
}

/**
 * An Express handler that answers the request as an event stream on the broadcaster, with the
 * gateway's framing, heartbeats, resume (`Last-Event-ID` header, else `lastEventId` query
 * parameter), reset and limits. Bad input is refused before anything reaches the engine, with
 * the API's `{"error": {"code", "message"}}` and its 4xx status.
 *
 * ```ts
 * app.get('/api/stocks/:symbol', sse<{ symbol: string }>({
 *   broadcaster,
 *   topics: (req) => [`stocks/${req.params.symbol.toUpperCase()}`],
 * }));
 * ```
 */
export function sse<P = Request['params']>(options: SseOptions<P>): RequestHandler<P> {
  const hub = options.hub ?? options.broadcaster?.hub;
  if (!hub) throw new TypeError('sse(): give `broadcaster` (from createBroadcaster) or `hub`');
  const maxTopics = checkMaxTopics(options.maxTopics, 'sse()');

  return async function sseHandler(
    req: Request<P>,
    res: Response,
    next: NextFunction,
  ): Promise<void> {
    let request: StreamRequest;
    let admission: Admission | undefined;
    try {
      // The raw query string, not req.query: the app's query parser may turn repeated or
      // bracketed parameters into objects, and a cursor given twice must be refused.
      const query = new URLSearchParams(rawQuery(req.url));
      const topics = options.topics ? await options.topics(req) : query.getAll('topic');
      const cursors = query.getAll('lastEventId');
      request = readStreamRequest(
        topics,
        req.headers['last-event-id'],
        cursors.length > 1 ? cursors : cursors[0],
        maxTopics,
      );
      const guard = options.guard;
      if (guard) {
        const tokens = query.getAll('token');
        const topics = request.topics;
        admission = await traced(
          hub.options.tracing,
          'streamcast.auth',
          { 'streamcast.topics': topics.length },
          () =>
            guard.admitStream(
              {
                headers: req.headers,
                queryToken: tokens.length > 1 ? tokens : tokens[0],
                ip: req.ip ?? req.socket.remoteAddress,
              },
              topics,
            ),
        );
      }
    } catch (err) {
      if ((err as { code?: unknown }).code === 'NOT_READY') {
        // The key set cannot be fetched: "try again", as while Redis is away.
        bounceStream(res, hub.options.retryMs, options.headers);
        return;
      }
      const refusal = refusalOf(err);
      if (!refusal) return next(err);
      if (refusal.retryAfter !== undefined)
        res.setHeader('retry-after', String(refusal.retryAfter));
      res.status(refusal.statusCode).json(refusal.body);
      return;
    }
    if (admission) onResponseClose(res, admission.release);
    const preamble =
      typeof options.preamble === 'function' ? options.preamble(req) : options.preamble;
    await serveStream(hub, res, request, {
      headers: options.headers,
      preamble,
      expiresAt: admission?.expiresAt,
      viewer: admission?.principal?.claims,
    });
  };
}

function rawQuery(url: string): string {
  const at = url.indexOf('?');
  return at === -1 ? '' : url.slice(at + 1);
}
