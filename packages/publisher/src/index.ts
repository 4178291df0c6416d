import type { RetentionOptions } from '@streamcast/engine';
import {
  RedisClusterEngine,
  RedisEngine,
  connectRedis,
  describeConnection,
  isClusterConnection,
  redisClientOptions,
  type RedisConnection,
} from '@streamcast/engine-redis';
import { validateEvent } from '@streamcast/events';
import type { Hub } from '@streamcast/hub';
import {
  MAX_BATCH_EVENTS,
  assertTopic,
  dataJson,
  normalizeEventName,
  normalizePrivate,
  singleTopicCursor,
} from '@streamcast/protocol';
import Redis, { type Cluster } from 'ioredis';

/**
 * Publishes events, wherever the broadcaster runs: into an in-process hub (`npm start`, an
 * embedding app), straight into Redis (producers and workers beside a cluster), or to a remote
 * gateway over `POST /publish`. Every producer and CLI goes through this.
 */
export interface Publisher {
  readonly target: 'hub' | 'redis' | 'http';
  /**
   * Stores and fans out one event; resolves to its id (a single-topic cursor). `options.private`
   * marks fields only some subscribers see (docs/security.md, "Private fields").
   */
  publish(
    topic: string,
    event: string,
    data: unknown,
    options?: { private?: unknown },
  ): Promise<string>;
  /**
   * Publishes a batch, in order: to a gateway in as few `POST /publish` requests as fit
   * (MAX_BATCH_EVENTS and `maxBatchBytes` each), into Redis in one round trip. Resolves to one
   * result per event, in the same order: its id, or the error that refused it (bad entries are
   * refused alone; a refusal of a whole request, such as 401 or 503, is every one of its
   * events'). Each event is stored whole or not at all. Rejects only if the batch is not an array.
   */
  publishMany(events: readonly PublishDraft[]): Promise<PublishOutcome[]>;
  close(): Promise<void>;
}

/** One event of a batch, as `publish` takes it. */
export interface PublishDraft {
  topic: string;
  /** @default 'message' */
  event?: string;
  data: unknown;
  private?: unknown;
}

/** What became of one event of a batch. */
export type PublishOutcome = { id: string } | { error: PublishError };

export interface PublisherOptions {
  /** Publish into this in-process hub. */
  hub?: Hub;
  /** Publish straight into this Redis (what gateways read). */
  redisUrl?: string;
  /**
   * Or: that Redis as `redisConnection(env)` (`@streamcast/engine-redis`) gives it: ioredis
   * options (e.g. Sentinels, so the publisher follows the master through a failover), or a Redis
   * Cluster's seed nodes (REDIS_CLUSTER_NODES).
   */
  redisOptions?: RedisConnection;
  /** Redis key prefix, as the gateways' REDIS_PREFIX. @default 'sse' */
  keyPrefix?: string;
  /** History retention, as the gateways' HISTORY_MAX_LEN / HISTORY_MAX_AGE_S. */
  retention?: RetentionOptions;
  /** Publish through this gateway's `POST /publish`. */
  gatewayUrl?: string;
  /** Bearer token for `gatewayUrl`. */
  token?: string;
  /** Check payloads of the seed's topics against @streamcast/events. @default true */
  validate?: boolean;
  /** Give up on a publish after this long. @default 5000 */
  timeoutMs?: number;
  /**
   * The largest body `publishMany` sends to a gateway; keep it under the gateway's
   * MAX_BODY_BYTES. @default 1000000 (the default MAX_BODY_BYTES is 1 MiB)
   */
  maxBatchBytes?: number;
}

/** A refused or failed publish, with the API's error code when the gateway gave one. */
export class PublishError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'PublishError';
  }
}

export async function createPublisher(options: PublisherOptions): Promise<Publisher> {
  const validate = options.validate ?? true;
  const check = (
    topic: string,
    event: string,
    data: unknown,
    privateSpec?: unknown,
  ): [string, string, string | undefined] => {
    assertTopic(topic);
    const name = normalizeEventName(event);
    if (data === undefined)
      throw new PublishError('data is required (it may be null)', 'DATA_MISSING');
    if (validate) {
      try {
        validateEvent(topic, name, data);
      } catch (err) {
        throw new PublishError(
          `invalid ${name} on ${topic}: ${(err as Error).message}`,
          'BODY_INVALID',
        );
      }
    }
    try {
      const privateFields = normalizePrivate(privateSpec, data);
      return [name, dataJson(data), privateFields];
    } catch (err) {
      if ((err as { code?: string }).code !== 'BODY_INVALID') throw err;
      throw new PublishError((err as Error).message, 'BODY_INVALID');
    }
  };

  if (options.hub) {
    const hub = options.hub;
    const publish: Publisher['publish'] = (topic, event, data, publishOptions) => {
      const [name, json, privateFields] = check(topic, event, data, publishOptions?.private);
      return hub.publish(topic, name, json, privateFields);
    };
    return {
      target: 'hub',
      publish,
      publishMany: (events) => publishEach(events, publish),
      close: async () => {},
    };
  }

  if (options.redisUrl || options.redisOptions) {
    const timeoutMs = options.timeoutMs ?? 5000;
    const connection = options.redisOptions;
    let client: Redis | Cluster;
    if (options.redisUrl) {
      client = new Redis(
        options.redisUrl,
        redisClientOptions({ connectionName: 'sse-publisher', commandTimeout: timeoutMs }),
      );
    } else if (connection && isClusterConnection(connection)) {
      client = connectRedis(
        { ...connection, nodeOptions: { ...connection.nodeOptions, commandTimeout: timeoutMs } },
        { connectionName: 'sse-publisher' },
      );
    } else {
      client = new Redis({
        ...connection,
        ...redisClientOptions({ connectionName: 'sse-publisher', commandTimeout: timeoutMs }),
      });
    }
    const shown = options.redisUrl ?? describeConnection(connection ?? {});
    client.on('error', () => {
      // ioredis reconnects by itself; a publish meanwhile fails and says why.
    });
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('end', () => reject(new PublishError(`cannot reach ${shown}`, 'NOT_READY')));
    });
    const engineOptions = { keyPrefix: options.keyPrefix, retention: options.retention };
    const engine = client.isCluster
      ? new RedisClusterEngine({ client: client as Cluster, ...engineOptions })
      : new RedisEngine({ client: client as Redis, ...engineOptions });
    const publish: Publisher['publish'] = async (topic, event, data, publishOptions) => {
      const [name, json, privateFields] = check(topic, event, data, publishOptions?.private);
      try {
        return singleTopicCursor(topic, await engine.publish(topic, name, json, privateFields));
      } catch (err) {
        throw new PublishError(`not stored: ${(err as Error).message}`, 'NOT_READY');
      }
    };
    return {
      target: 'redis',
      publish,
      publishMany: (events) => publishEach(events, publish),
      close: async () => {
        client.disconnect();
      },
    };
  }

  if (options.gatewayUrl) {
    const url = new URL('/publish', options.gatewayUrl).toString();
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const timeoutMs = options.timeoutMs ?? 5000;
    const maxBatchBytes = options.maxBatchBytes ?? 1_000_000;
    /** One event's JSON, around the `data` text check() made (large data is serialised once). */
    const encode = (topic: string, event: string, data: unknown, privateSpec?: unknown) => {
      const [name, json, privateFields] = check(topic, event, data, privateSpec);
      const head = JSON.stringify({
        topic,
        event: name,
        ...(privateFields === undefined ? {} : { private: privateSpec }),
      });
      return `${head.slice(0, -1)},"data":${json}}`;
    };
    /** POSTs `body`; resolves to the 200 answer, or throws the gateway's refusal. */
    const post = async (body: string): Promise<unknown> => {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw new PublishError(`cannot reach ${url}: ${(err as Error).message}`, 'NOT_READY');
      }
      const answer = (await res.json().catch(() => ({}))) as {
        error?: { code: string; message: string };
      };
      if (res.status === 200) return answer;
      throw new PublishError(
        answer.error?.message ?? `gateway answered ${res.status}`,
        answer.error?.code ?? 'HTTP_ERROR',
        res.status,
      );
    };
    return {
      target: 'http',
      publish: async (topic, event, data, publishOptions) => {
        const answer = (await post(encode(topic, event, data, publishOptions?.private))) as {
          id?: unknown;
        };
        if (typeof answer.id === 'string') return answer.id;
        throw new PublishError('gateway answered 200 without an id', 'HTTP_ERROR', 200);
      },
      publishMany: async (events) => {
        const outcomes: PublishOutcome[] = new Array<PublishOutcome>(events.length);
        // Checked here first: a bad event is refused alone and never sent.
        let chunk: Array<{ index: number; json: string }> = [];
        let bytes = 2;
        const send = async () => {
          if (chunk.length === 0) return;
          const sent = chunk;
          chunk = [];
          bytes = 2;
          let results: unknown;
          try {
            results = (
              (await post(`[${sent.map((e) => e.json).join(',')}]`)) as {
                results?: unknown;
              }
            ).results;
          } catch (err) {
            for (const e of sent) outcomes[e.index] = { error: err as PublishError };
            return;
          }
          sent.forEach((e, i) => {
            outcomes[e.index] = batchOutcome(Array.isArray(results) ? results[i] : undefined);
          });
        };
        for (let index = 0; index < events.length; index++) {
          const { topic, event = 'message', data, private: privateSpec } = events[index]!;
          let json: string;
          try {
            json = encode(topic, event, data, privateSpec);
          } catch (err) {
            outcomes[index] = { error: asPublishError(err) };
            continue;
          }
          if (
            chunk.length > 0 &&
            (chunk.length >= MAX_BATCH_EVENTS || bytes + json.length + 1 > maxBatchBytes)
          ) {
            await send();
          }
          chunk.push({ index, json });
          bytes += json.length + 1;
        }
        await send();
        return outcomes;
      },
      close: async () => {},
    };
  }

  throw new PublishError('no target: give hub, redisUrl, redisOptions or gatewayUrl', 'NO_TARGET');
}

/**
 * A batch published one event at a time, all started at once in order (the hub and the Redis
 * engine send them in one go, and keep one topic's order).
 */
function publishEach(
  events: readonly PublishDraft[],
  publish: Publisher['publish'],
): Promise<PublishOutcome[]> {
  return Promise.all(
    events.map(async ({ topic, event = 'message', data, private: privateSpec }) => {
      try {
        const options = privateSpec === undefined ? undefined : { private: privateSpec };
        return { id: await publish(topic, event, data, options) };
      } catch (err) {
        return { error: asPublishError(err) };
      }
    }),
  );
}

/** An error of the protocol's checks (TOPIC_INVALID, …) as a PublishError with its code. */
function asPublishError(err: unknown): PublishError {
  if (err instanceof PublishError) return err;
  const { code, message } = err as { code?: unknown; message?: unknown };
  return new PublishError(String(message), typeof code === 'string' ? code : 'INTERNAL');
}

/** One entry of a gateway's batch answer. */
function batchOutcome(result: unknown): PublishOutcome {
  const { id, error } = (result ?? {}) as {
    id?: unknown;
    error?: { code?: unknown; message?: unknown };
  };
  if (typeof id === 'string') return { id };
  if (error && typeof error.code === 'string') {
    // The status the code has when it answers a whole request.
    const status = error.code === 'NOT_READY' ? 503 : error.code === 'TOPIC_FORBIDDEN' ? 403 : 400;
    return { error: new PublishError(String(error.message), error.code, status) };
  }
  return {
    error: new PublishError('the gateway answered no result for this event', 'HTTP_ERROR', 200),
  };
}
