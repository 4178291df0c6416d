import type { Hub } from '@streamcast/hub';
import {
  BodyInvalid,
  BodyTooLarge,
  DataMissing,
  Internal,
  NotFound,
  NotReady,
  PublishForbidden,
  UnsupportedMediaType,
  assertTopic,
  errorBody,
  normalizeEventName,
} from '@streamcast/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { isLoopback } from './loopback';
import { createMetrics } from './metrics';
import { readStreamRequest, serveStream, type ServeOptions } from './stream';

export interface StreamcastOptions {
  hub: Hub;
  /** Most distinct topics one stream may ask for. @default 32 */
  maxTopics?: number;
  /** Largest accepted request body. @default 1048576 */
  maxBodyBytes?: number;
  /** A publish that has not been stored after this long answers 503. @default 5000 */
  publishTimeoutMs?: number;
  /** Register GET /events. @default true */
  events?: boolean;
  /** Register POST /publish. @default true */
  publish?: boolean;
  /** Register GET /healthz, /readyz and /metrics. @default true */
  operations?: boolean;
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
    streamcast: { hub: Hub; draining: boolean };
  }
}

const PUBLISH_FIELDS = new Set(['topic', 'event', 'data']);

async function streamcastPlugin(fastify: FastifyInstance, options: StreamcastOptions) {
  const { hub } = options;
  const maxTopics = options.maxTopics ?? 32;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const state = { hub, draining: false };
  fastify.decorate('streamcast', state);

  fastify.decorateReply('sse', async function sse(
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
    this.hijack();
    await serveStream(hub, this.raw, request, serveOptions);
  });

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const mapped = mapError(error, options.maxBodyBytes ?? 1024 * 1024);
    if (mapped.statusCode >= 500 && mapped.code !== 'NOT_READY') {
      request.log.error({ err: error }, 'request failed');
    }
    if (mapped.retryAfter) reply.header('retry-after', mapped.retryAfter);
    reply.code(mapped.statusCode).send(errorBody(mapped.code, mapped.message));
  });

  fastify.setNotFoundHandler((request, reply) => {
    const err = new NotFound(request.method, request.url.split('?')[0]);
    reply.code(404).send(errorBody(err.code, err.message));
  });

  // End open streams before the server waits for its connections to finish.
  fastify.addHook('preClose', async () => {
    await hub.close();
  });

  if (options.events !== false) {
    fastify.get('/events', async (request, reply) => {
      const topic = (request.query as Record<string, unknown>).topic;
      const topics = topic === undefined ? [] : Array.isArray(topic) ? topic : [topic];
      await reply.sse(topics);
    });
  }

  if (options.publish !== false) {
    fastify.post('/publish', async (request: FastifyRequest) => {
      if (!isLoopback(request.socket.remoteAddress)) throw new PublishForbidden();
      const body = request.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new BodyInvalid('must be a JSON object {"topic", "event"?, "data"}');
      }
      for (const key of Object.keys(body)) {
        if (!PUBLISH_FIELDS.has(key)) throw new BodyInvalid(`unknown field ${JSON.stringify(key)}`);
      }
      const { topic, event, data } = body as Record<string, unknown>;
      assertTopic(topic);
      const eventName = normalizeEventName(event);
      if (!('data' in body)) throw new DataMissing();
      if (!hub.isReady()) throw new NotReady('the engine link is down');
      const id = await withTimeout(
        hub.publish(topic, eventName, JSON.stringify(data)),
        publishTimeoutMs,
      ).catch((err: Error) => {
        throw new NotReady(err.message);
      });
      return { id };
    });
  }

  if (options.operations !== false) {
    const metrics = createMetrics(hub);
    fastify.get('/healthz', async () => ({ status: 'ok' }));
    fastify.get('/readyz', async (_request, reply) => {
      if (state.draining) throw new NotReady('draining');
      if (!hub.isReady()) throw new NotReady('the engine link is down');
      return reply.send({ status: 'ready' });
    });
    fastify.get('/metrics', async (_request, reply) => {
      reply.header('content-type', metrics.contentType);
      return metrics.metrics();
    });
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not stored within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

interface MappedError {
  statusCode: number;
  code: string;
  message: string;
  retryAfter?: string;
}

/** Turns any error into the API's error shape: our codes as they are, Fastify's mapped. */
function mapError(error: FastifyError, maxBodyBytes: number): MappedError {
  const status = error.statusCode ?? 500;
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const err = new BodyTooLarge(maxBodyBytes);
    return { statusCode: 413, code: err.code, message: err.message };
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const err = new UnsupportedMediaType(JSON.stringify(String(error.message).split(': ').pop()));
    return { statusCode: 415, code: err.code, message: err.message };
  }
  if (error.code === 'NOT_READY') {
    return { statusCode: 503, code: error.code, message: error.message, retryAfter: '1' };
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
