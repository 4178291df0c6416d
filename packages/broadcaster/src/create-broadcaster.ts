import {
  DEFAULT_RETENTION,
  MemoryEngine,
  type Engine,
  type RetentionOptions,
} from '@streamcast/engine';
import {
  RedisClusterEngine,
  RedisEngine,
  connectRedis,
  redisClientOptions,
  redisClusterConnection,
} from '@streamcast/engine-redis';
import { Hub, type HubOptions, type Logger, type Tracing } from '@streamcast/hub';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { publishToHub, type PublishOptions } from './publish';

export interface BroadcasterOptions {
  /**
   * An ioredis client to share, e.g. `fastify.redis` from `@fastify/redis`. The broadcaster
   * duplicates it once for pub/sub and never closes it: its owner does. Create it with
   * `redisClientOptions()` so that commands fail fast while Redis is unreachable. A `Cluster`
   * client selects the Redis Cluster engine (sharded pub/sub): create it with
   * `redisClusterOptions()` (`@streamcast/engine-redis`), which turns sharded subscribers on.
   */
  redis?: Redis | Cluster;
  /**
   * Connect to this Redis (`redis://`, `rediss://`); closed with the broadcaster. With
   * `redisClusterNodes`, only its credentials and TLS apply (as `REDIS_URL` with
   * `REDIS_CLUSTER_NODES`).
   */
  redisUrl?: string;
  /**
   * Seed nodes of a Redis Cluster (Redis >= 7.0), as the gateways' `REDIS_CLUSTER_NODES`: the
   * cluster engine, on a Cluster client the broadcaster opens and closes.
   */
  redisClusterNodes?: ReadonlyArray<{ host: string; port: number }>;
  /**
   * Or: ioredis options of the Redis to connect to, e.g. Sentinels from
   * `redisConnectionOptions(env)` (`@streamcast/engine-redis`), to follow the master through a
   * failover; closed with the broadcaster.
   */
  redisOptions?: RedisOptions;
  /** Prefix of every Redis key and channel, as the gateways' `REDIS_PREFIX`. @default 'sse' */
  keyPrefix?: string;
  /** History kept per topic. @default { maxLen: 1000, maxAgeS: 86400 } */
  retention?: Partial<RetentionOptions>;
  /**
   * Spans of publishes, stream set-ups and deliveries (docs/observability.md, "Traces"): any
   * implementation of the hub's Tracing, e.g. over the app's own OpenTelemetry tracer.
   * @default no tracing
   */
  tracing?: Tracing;
  /** Reconnection delay sent to clients as the first `retry:` line. @default 3000 */
  retryMs?: number;
  /** A stream silent this long gets a heartbeat comment. @default 15000 */
  heartbeatMs?: number;
  /** Unsent bytes a stream may queue before it is dropped (it resumes). @default 1048576 */
  maxQueueBytes?: number;
  /**
   * A stream is closed after at most this long, at a random point of its last fifth, with a
   * short `retry:`; the client resumes from its cursor. 0: never. @default 0
   */
  maxLifetimeMs?: number;
  /** A publish not stored after this long fails with NOT_READY. @default 5000 */
  publishTimeoutMs?: number;
  /** A pino-like logger (`fastify.log` fits). @default silent */
  logger?: Logger;
}

/**
 * The broadcaster inside a host application: the engine (Redis, or in-process memory when no
 * Redis is given), the hub that serves streams from it, and publishing.
 */
export interface Broadcaster {
  readonly hub: Hub;
  readonly engine: Engine;
  /**
   * Stores an event and sends it to every subscriber of `topic`, in this process and in every
   * other one on the same Redis. `event` defaults to `message`; `data` is any JSON value
   * (`null` included). Resolves to the event's id once stored. Throws TOPIC_INVALID,
   * EVENT_INVALID, EVENT_RESERVED or DATA_MISSING for bad input (nothing reaches Redis), and
   * NOT_READY while the engine cannot store.
   */
  publish(
    topic: string,
    event: string | undefined,
    data: unknown,
    options?: PublishOptions,
  ): Promise<string>;
  /** True while streams can be served and events published. */
  isReady(): boolean;
  /** Ends every open stream and disconnects what the broadcaster opened. */
  close(): Promise<void>;
}

/**
 * Builds and starts a broadcaster: Redis Cluster engine when `redisClusterNodes` or a `Cluster`
 * client is given, Redis engine when `redis`, `redisUrl` or `redisOptions` is, memory engine
 * otherwise (one process only). Resolves once it can serve.
 */
export async function createBroadcaster(options: BroadcasterOptions = {}): Promise<Broadcaster> {
  const retention: RetentionOptions = { ...DEFAULT_RETENTION, ...defined(options.retention ?? {}) };
  let owned: Redis | Cluster | undefined;
  let engine: Engine;
  const client =
    options.redis ??
    (options.redisClusterNodes?.length
      ? newClusterClient(options.redisClusterNodes, options.redisUrl)
      : options.redisUrl || options.redisOptions
        ? newClient(options.redisUrl, options.redisOptions)
        : undefined);
  if (client && !options.redis) owned = client;
  if (client instanceof Cluster) {
    engine = new RedisClusterEngine({ client, keyPrefix: options.keyPrefix, retention });
  } else if (client) {
    engine = new RedisEngine({ client, keyPrefix: options.keyPrefix, retention });
  } else {
    engine = new MemoryEngine(retention);
  }
  const hubOptions: Partial<HubOptions> = defined({
    retryMs: options.retryMs,
    heartbeatMs: options.heartbeatMs,
    maxQueueBytes: options.maxQueueBytes,
    maxLifetimeMs: options.maxLifetimeMs,
    logger: options.logger,
    tracing: options.tracing,
  });
  const hub = new Hub(engine, hubOptions);
  try {
    await hub.start();
  } catch (err) {
    await engine.close().catch(() => {});
    owned?.disconnect();
    throw err;
  }
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  let closed = false;
  return {
    hub,
    engine,
    publish: (topic, event, data, publishOptions) =>
      publishToHub(hub, topic, event, data, publishTimeoutMs, publishOptions),
    isReady: () => hub.isReady(),
    close: async () => {
      if (closed) return;
      closed = true;
      await hub.close();
      await engine.close();
      owned?.disconnect();
    },
  };
}

function newClient(url: string | undefined, options: RedisOptions | undefined): Redis {
  const clientOptions = redisClientOptions({ connectionName: 'sse-broadcaster' });
  const client = url ? new Redis(url, clientOptions) : new Redis({ ...options, ...clientOptions });
  client.on('error', () => {
    // ioredis reconnects by itself; the hub learns about the link from the engine.
  });
  return client;
}

function newClusterClient(
  nodes: ReadonlyArray<{ host: string; port: number }>,
  url: string | undefined,
): Cluster {
  const connection = redisClusterConnection({ REDIS_CLUSTER_NODES: nodes, REDIS_URL: url });
  const client = connectRedis(connection as NonNullable<typeof connection>, {
    connectionName: 'sse-broadcaster',
  }) as Cluster;
  client.on('error', () => {
    // ioredis reconnects by itself; the hub learns about each master's link from the engine.
  });
  return client;
}

/** Drops undefined fields, so that they do not override defaults when spread. */
function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
