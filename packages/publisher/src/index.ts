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
  close(): Promise<void>;
}

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
    return {
      target: 'hub',
      publish: (topic, event, data, publishOptions) => {
        const [name, json, privateFields] = check(topic, event, data, publishOptions?.private);
        return hub.publish(topic, name, json, privateFields);
      },
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
    return {
      target: 'redis',
      publish: async (topic, event, data, publishOptions) => {
        const [name, json, privateFields] = check(topic, event, data, publishOptions?.private);
        try {
          return singleTopicCursor(topic, await engine.publish(topic, name, json, privateFields));
        } catch (err) {
          throw new PublishError(`not stored: ${(err as Error).message}`, 'NOT_READY');
        }
      },
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
    return {
      target: 'http',
      publish: async (topic, event, data, publishOptions) => {
        const [name, json, privateFields] = check(topic, event, data, publishOptions?.private);
        // The body around the `data` text check() made, so large data is not serialised twice.
        const head = JSON.stringify({
          topic,
          event: name,
          ...(privateFields === undefined ? {} : { private: publishOptions?.private }),
        });
        let res: Response;
        try {
          res = await fetch(url, {
            method: 'POST',
            headers,
            body: `${head.slice(0, -1)},"data":${json}}`,
            signal: AbortSignal.timeout(timeoutMs),
          });
        } catch (err) {
          throw new PublishError(`cannot reach ${url}: ${(err as Error).message}`, 'NOT_READY');
        }
        const body = (await res.json().catch(() => ({}))) as {
          id?: string;
          error?: { code: string; message: string };
        };
        if (res.status === 200 && typeof body.id === 'string') return body.id;
        throw new PublishError(
          body.error?.message ?? `gateway answered ${res.status}`,
          body.error?.code ?? 'HTTP_ERROR',
          res.status,
        );
      },
      close: async () => {},
    };
  }

  throw new PublishError('no target: give hub, redisUrl, redisOptions or gatewayUrl', 'NO_TARGET');
}
