import {
  PUBLISH_FIELDS,
  createBroadcaster,
  publishBatchToHub,
  publishToHub,
  type Broadcaster,
  type PublishOptions,
  type BroadcasterOptions,
} from '@streamcast/broadcaster';
import type { OutgoingHttpHeaders } from 'node:http';
import cors from '@fastify/cors';
import type { AuthRequest, Principal } from '@streamcast/auth';
import { traced, type Hub } from '@streamcast/hub';
import {
  BodyInvalid,
  BodyTooLarge,
  Internal,
  NotFound,
  NotReady,
  UnsupportedMediaType,
  assertTopic,
  checkMaxTopics,
  errorBody,
} from '@streamcast/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import {
  Guard,
  bounceStream,
  createMetrics,
  lingerOnClose,
  onResponseClose,
  poll,
  readPollTimeout,
  readStreamRequest,
  serveStream,
  type Admission,
  type ServeOptions,
} from '@streamcast/http';

/**
 * Where the plugin gets its broadcaster, first match wins: `hub` (a started hub the caller owns,
 * as the gateway does), `broadcaster` (from `createBroadcaster`, owned by the caller), else one
 * it creates from the broadcaster options below and closes with the app: on `redis`, or on
 * `redisUrl`, or on the host's `fastify.redis` when `@fastify/redis` was registered first, or
 * else on the in-process memory engine.
 */
export interface StreamcastOptions extends BroadcasterOptions {
  hub?: Hub;
  broadcaster?: Broadcaster;
  /** Most distinct topics one stream may ask for. @default 32 */
  maxTopics?: number;
  /** Largest accepted request body. @default 1048576 */
  maxBodyBytes?: number;
  /** A publish that has not been stored after this long answers 503. @default 5000 */
  publishTimeoutMs?: number;
  /** Register GET /events. @default true */
  events?: boolean;
  /** Register GET /poll, the long-polling fallback for clients without EventSource. @default true */
  poll?: boolean;
  /** Register POST /publish. @default true */
  publish?: boolean;
  /** Register GET /healthz, /readyz and /metrics. @default true */
  operations?: boolean;
  /**
   * /metrics: `sse_topic_streams{topic}` for at most this many topics (the busiest); 0: no
   * metric has a topic label. @default 0
   */
  metricsTopics?: number;
  /**
   * Answer every error of the app, and unknown routes (404 NOT_FOUND), in the API's JSON shape.
   * Turn off in a host app that has its own error or not-found handler: `reply.sse` errors then
   * reach that handler (each has a 4xx `statusCode` and a stable `code`). @default true
   */
  errorHandler?: boolean;
  /**
   * Authentication, topic claims and limits, checked before a stream starts and before a
   * publish's body is read (see `Guard`). @default no keys (subscribing open, publishing
   * loopback only) and no limits
   */
  guard?: Guard;
  /**
   * Origins whose pages may use the API (CORS, with credentials for cookie-authenticated
   * EventSource), as CORS_ORIGINS; exact `scheme://host[:port]`, never `*`. Also the origins
   * trusted for cookie-authenticated writes. @default [] (no CORS headers)
   */
  corsOrigins?: readonly string[];
}

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Answers this request as an event stream on `topics`, resuming from the request's
     * `Last-Event-ID` header or `lastEventId` query parameter. Validation errors are thrown
     * before anything is sent.
     */
    sse(topics: readonly unknown[], options?: ServeOptions): Promise<void>;
  }
  interface FastifyInstance {
    streamcast: {
      hub: Hub;
      draining: boolean;
      /**
       * Publishes from the host app: validated like `POST /publish` (`options.private` as its
       * `private`), resolves to the event's id once stored; NOT_READY while the engine cannot store.
       */
      publish(
        topic: string,
        event: string | undefined,
        data: unknown,
        options?: PublishOptions,
      ): Promise<string>;
    };
  }
}

type RedisClient = NonNullable<BroadcasterOptions['redis']>;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Headers set on the reply so far (by hooks such as CORS's), for a hijacked response. */
function replyHeaders(reply: FastifyReply): OutgoingHttpHeaders {
  return reply.getHeaders() as OutgoingHttpHeaders;
}

/** The `?topic=` parameters of a request, as given (validated by readStreamRequest). */
function queryTopics(request: FastifyRequest): unknown[] {
  const topic = (request.query as Record<string, unknown> | undefined)?.topic;
  return topic === undefined ? [] : Array.isArray(topic) ? topic : [topic];
}

/** What the guard reads from a Fastify request. */
function authRequestOf(request: FastifyRequest): AuthRequest {
  const query = request.query as Record<string, unknown> | undefined;
  return { headers: request.headers, queryToken: query?.token, ip: request.ip };
}

async function streamcastPlugin(fastify: FastifyInstance, options: StreamcastOptions) {
  const hub = await resolveHub(fastify, options);
  const maxTopics = checkMaxTopics(options.maxTopics, 'streamcast plugin');
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const state = {
    hub,
    draining: false,
    publish: (topic: string, event: string | undefined, data: unknown, options?: PublishOptions) =>
      publishToHub(hub, topic, event, data, publishTimeoutMs, options),
  };
  fastify.decorate('streamcast', state);
  const guard = options.guard ?? new Guard();
  fastify.addHook('onClose', async () => guard.close());
  const publishPrincipals = new WeakMap<FastifyRequest, Principal | undefined>();

  if (options.corsOrigins && options.corsOrigins.length > 0) {
    // An allowlist, reflected one origin at a time with credentials: never `*` with cookies.
    await fastify.register(cors, {
      origin: [...options.corsOrigins],
      credentials: true,
      methods: ['GET', 'HEAD', 'POST'],
      allowedHeaders: ['authorization', 'content-type', 'last-event-id', 'cache-control'],
      maxAge: 600,
    });
  }

  // Every write of the app (uploads too) before its body is read: no query token, and a
  // cookie-authenticated write only from a trusted origin (CSRF).
  // A callback, not an async function: no promise and no extra turn for every request.
  fastify.addHook('onRequest', (request, _reply, done) => {
    if (SAFE_METHODS.has(request.method)) return done();
    try {
      guard.checkWrite(authRequestOf(request));
    } catch (err) {
      return done(err as Error);
    }
    done();
  });

  fastify.decorateReply(
    'sse',
    async function sse(
      this: FastifyReply,
      topics: readonly unknown[],
      serveOptions: ServeOptions = {},
    ): Promise<void> {
      const query = this.request.query as Record<string, unknown> | undefined;
      const request = readStreamRequest(
        topics,
        this.request.headers['last-event-id'],
        query?.lastEventId,
        maxTopics,
      );
      let admission: Admission;
      try {
        admission = await traced(
          hub.options.tracing,
          'streamcast.auth',
          { 'streamcast.topics': request.topics.length },
          () => guard.admitStream(authRequestOf(this.request), request.topics),
        );
      } catch (err) {
        // The key set cannot be fetched: "try again" (EventSource would give up on a 503).
        if ((err as { code?: unknown }).code !== 'NOT_READY') throw err;
        this.hijack();
        bounceStream(this.raw, hub.options.retryMs, {
          ...replyHeaders(this),
          ...serveOptions.headers,
        });
        return;
      }
      onResponseClose(this.raw, admission.release);
      // Headers set by hooks (CORS) are the reply's; a hijacked reply would not send them.
      const headers = { ...replyHeaders(this), ...serveOptions.headers };
      this.hijack();
      await serveStream(hub, this.raw, request, {
        ...serveOptions,
        headers,
        expiresAt: admission.expiresAt,
        viewer: admission.principal?.claims,
      });
      endRequestSpan(this.request);
    },
  );

  if (options.errorHandler !== false) {
    fastify.setErrorHandler((error: FastifyError, request, reply) => {
      const mapped = mapError(error, options.maxBodyBytes ?? 1024 * 1024, request);
      if (mapped.statusCode >= 500 && mapped.code !== 'NOT_READY') {
        request.log.error({ err: error }, 'request failed');
      }
      if (mapped.retryAfter) reply.header('retry-after', mapped.retryAfter);
      // Refused before its body was read (413 on Content-Length): the client may still be
      // sending it, and must get this answer, not a reset connection.
      if (!request.raw.complete) lingerOnClose(request.raw.socket);
      reply.code(mapped.statusCode).send(errorBody(mapped.code, mapped.message));
    });

    fastify.setNotFoundHandler((request, reply) => {
      const err = new NotFound(request.method, request.url.split('?')[0]);
      reply.code(404).send(errorBody(err.code, err.message));
    });
  }

  // End open streams before the server waits for its connections to finish.
  fastify.addHook('preClose', async () => {
    await hub.close();
  });

  if (options.events !== false) {
    fastify.get('/events', async (request, reply) => {
      await reply.sse(queryTopics(request));
    });
  }

  if (options.poll !== false) {
    fastify.get('/poll', async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const streamRequest = readStreamRequest(
        queryTopics(request),
        request.headers['last-event-id'],
        query.lastEventId,
        maxTopics,
      );
      const waitMs = readPollTimeout(query.timeout) * 1000;
      const admission = await guard.admitStream(authRequestOf(request), streamRequest.topics);
      try {
        const gone = new Promise<void>((resolve) => onResponseClose(reply.raw, resolve));
        let answer: string;
        try {
          answer = await poll(hub, streamRequest, {
            waitMs,
            gone,
            viewer: admission.principal?.claims,
          });
        } catch (err) {
          if (reply.raw.destroyed) return reply.hijack();
          throw err;
        }
        // The client left while it waited: nobody to answer.
        if (reply.raw.destroyed) return reply.hijack();
        reply.header('cache-control', 'no-store');
        reply.type('application/json; charset=utf-8');
        return reply.send(answer);
      } finally {
        admission.release();
      }
    });
  }

  if (options.publish !== false) {
    // Authenticated (and rate limited) before the body is read.
    const admitPublish = async (request: FastifyRequest) => {
      publishPrincipals.set(request, await guard.admitPublish(authRequestOf(request)));
      // Fastify also parses text/plain (and a host app may add form parsers): JSON only here,
      // refused before a byte of the body is read.
      if (!JSON_TYPE.test(request.headers['content-type'] ?? '')) {
        throw unsupportedMediaType(request);
      }
    };
    fastify.post('/publish', { onRequest: admitPublish }, async (request: FastifyRequest) => {
      const body = request.body;
      const principal = publishPrincipals.get(request);
      if (Array.isArray(body)) {
        // A batch (docs/api.md, "Batch publish"): each entry answers on its own.
        guard.admitBatch(authRequestOf(request), principal, body.length);
        const results = await publishBatchToHub(hub, body, publishTimeoutMs, (topic) =>
          guard.assertPublish(principal, topic),
        );
        return { results };
      }
      if (typeof body !== 'object' || body === null) {
        throw new BodyInvalid(
          'must be a JSON object {"topic", "event"?, "data"}, or an array of them (a batch)',
        );
      }
      for (const key of Object.keys(body)) {
        if (!PUBLISH_FIELDS.has(key)) throw new BodyInvalid(`unknown field ${JSON.stringify(key)}`);
      }
      const { topic, event, data } = body as Record<string, unknown>;
      assertTopic(topic);
      guard.assertPublish(principal, topic);
      // A JSON body has no undefined values: a missing "data" is what publishToHub refuses.
      const id = await publishToHub(hub, topic, event, data, publishTimeoutMs, {
        private: (body as Record<string, unknown>).private,
      });
      return { id };
    });
  }

  if (options.operations !== false) {
    const metrics = createMetrics(
      hub,
      guard,
      { MAX_TOPICS: maxTopics, MAX_BODY_BYTES: options.maxBodyBytes ?? 1024 * 1024 },
      options.metricsTopics ?? 0,
    );
    fastify.get('/healthz', async () => ({ status: 'ok' }));
    fastify.get('/readyz', async (_request, reply) => {
      if (state.draining || hub.isDraining) throw new NotReady('draining');
      if (!hub.isReady()) throw new NotReady('the engine link is down');
      return reply.send({ status: 'ready' });
    });
    fastify.get('/metrics', async (_request, reply) => {
      reply.header('content-type', metrics.contentType);
      return metrics.metrics();
    });
  }
}

/** The hub the plugin serves, created (and closed with the app) unless the caller gave one. */
async function resolveHub(fastify: FastifyInstance, options: StreamcastOptions): Promise<Hub> {
  if (options.hub) return options.hub;
  if (options.broadcaster) return options.broadcaster.hub;
  const redis = options.redis ?? (options.redisUrl ? undefined : hostRedis(fastify));
  const broadcaster = await createBroadcaster({
    ...options,
    redis,
    logger: options.logger ?? fastify.log.child({ component: 'streamcast' }),
  });
  // Streams were ended in preClose; this closes the engine and any connection it opened.
  fastify.addHook('onClose', async () => {
    await broadcaster.close();
  });
  return broadcaster.hub;
}

/** The client `@fastify/redis` decorated the host with, if it was registered before us. */
function hostRedis(fastify: FastifyInstance): RedisClient | undefined {
  if (!fastify.hasDecorator('redis')) return undefined;
  const candidate = (fastify as unknown as { redis?: Partial<RedisClient> }).redis;
  if (typeof candidate?.duplicate !== 'function' || typeof candidate.defineCommand !== 'function') {
    throw new Error(
      'streamcast: fastify.redis is not an ioredis client (a namespaced @fastify/redis?); ' +
        'pass the client to use as the `redis` option',
    );
  }
  return candidate as RedisClient;
}

/** `application/json`, with or without parameters (`; charset=utf-8`). */
const JSON_TYPE = /^application\/json\s*(;|$)/i;

/** UNSUPPORTED_MEDIA_TYPE naming the media type the request sent (without its parameters). */
function unsupportedMediaType(request: FastifyRequest) {
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  return new UnsupportedMediaType(type === '' ? '(none)' : JSON.stringify(type.slice(0, 100)));
}

interface MappedError {
  statusCode: number;
  code: string;
  message: string;
  retryAfter?: string;
}

/** Turns any error into the API's error shape: our codes as they are, Fastify's mapped. */
function mapError(error: FastifyError, maxBodyBytes: number, request: FastifyRequest): MappedError {
  const status = error.statusCode ?? 500;
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const err = new BodyTooLarge(maxBodyBytes);
    return { statusCode: 413, code: err.code, message: err.message };
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const err = unsupportedMediaType(request);
    return { statusCode: 400, code: err.code, message: err.message };
  }
  if (error.code === 'NOT_READY') {
    return { statusCode: 503, code: error.code, message: error.message, retryAfter: '1' };
  }
  const retryAfter = (error as { retryAfter?: unknown }).retryAfter;
  if (typeof retryAfter === 'number' && error.code && /^[A-Z][A-Z_]+$/.test(error.code)) {
    const { code, message } = error;
    return { statusCode: status, code, message, retryAfter: String(retryAfter) };
  }
  if (error.code && /^[A-Z][A-Z_]+$/.test(error.code) && !error.code.startsWith('FST_')) {
    return { statusCode: status, code: error.code, message: error.message };
  }
  if (status >= 400 && status < 500) {
    const err = new BodyInvalid(error.message);
    return { statusCode: 400, code: err.code, message: err.message };
  }
  const err = new Internal();
  return { statusCode: 500, code: err.code, message: err.message };
}

/** The broadcaster as a Fastify plugin: streams, publishing and operations routes. */
export const streamcast = fp(streamcastPlugin, { fastify: '5.x', name: 'streamcast' });

/**
 * With @fastify/otel (tracing on), a request's span ends when its reply is sent, which a
 * hijacked stream never is: the span of a stream's request ends here instead, once the stream
 * is set up (auth, placement, history) and live.
 */
function endRequestSpan(request: FastifyRequest): void {
  const otel = (
    request as {
      opentelemetry?: () => {
        instrumented?: boolean;
        span?: { end(): void; setAttribute(k: string, v: number): void };
      };
    }
  ).opentelemetry?.();
  if (!otel?.instrumented || !otel.span) return;
  otel.span.setAttribute('http.response.status_code', 200);
  otel.span.end();
}
