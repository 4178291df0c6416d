import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { redisClusterOptions, stopSlotsRefreshOnEnd } from './redis-cluster-engine';
import { redisClientOptions } from './redis-engine';

/**
 * Where the broadcaster's Redis is, as the environment says it (the fields of `engineEnv` in
 * `@streamcast/config`): a URL, or Sentinels that name the current master.
 */
export interface RedisLocation {
  /**
   * `redis://` or `rediss://` URL. With `REDIS_SENTINELS` its host and port are ignored: only its
   * credentials, database number and TLS (`rediss:`) apply, to the master connection.
   */
  REDIS_URL?: string | undefined;
  /** Sentinels to ask for the master; set, they take precedence over the URL's address. */
  REDIS_SENTINELS?: ReadonlyArray<{ host: string; port: number }> | undefined;
  /** The master group name the Sentinels monitor. @default 'mymaster' */
  REDIS_SENTINEL_NAME?: string | undefined;
  /** Password of the Sentinels themselves (not of the master: that one is in the URL). */
  REDIS_SENTINEL_PASSWORD?: string | undefined;
  /**
   * Seed nodes of a Redis Cluster (Redis >= 7.0); set, the cluster engine is used and the URL
   * gives only credentials and TLS. Exclusive with REDIS_SENTINELS.
   */
  REDIS_CLUSTER_NODES?: ReadonlyArray<{ host: string; port: number }> | undefined;
}

/** Where a Redis Cluster is: seed nodes, and the options of every node connection. */
export interface RedisClusterConnection {
  nodes: Array<{ host: string; port: number }>;
  /** Credentials and TLS from REDIS_URL. */
  nodeOptions: RedisOptions;
}

/** The Redis Cluster `location` names (REDIS_CLUSTER_NODES), or undefined when it names none. */
export function redisClusterConnection(
  location: RedisLocation,
): RedisClusterConnection | undefined {
  const nodes = location.REDIS_CLUSTER_NODES;
  if (!nodes || nodes.length === 0) return undefined;
  if (location.REDIS_SENTINELS && location.REDIS_SENTINELS.length > 0) {
    throw new Error(
      'REDIS_CLUSTER_NODES and REDIS_SENTINELS exclude each other: a Redis Cluster fails over by itself',
    );
  }
  const fromUrl = location.REDIS_URL ? parseRedisUrl(location.REDIS_URL) : {};
  if (fromUrl.db !== undefined && fromUrl.db !== 0) {
    throw new Error(`a Redis Cluster has database 0 only; REDIS_URL names database ${fromUrl.db}`);
  }
  const nodeOptions: RedisOptions = {};
  if (fromUrl.username) nodeOptions.username = fromUrl.username;
  if (fromUrl.password) nodeOptions.password = fromUrl.password;
  if (fromUrl.tls) nodeOptions.tls = fromUrl.tls;
  return { nodes: nodes.map(({ host, port }) => ({ host, port })), nodeOptions };
}

/** A single Redis (URL or Sentinels, as ioredis options) or a Redis Cluster. */
export type RedisConnection = RedisOptions | RedisClusterConnection;

export function isClusterConnection(
  connection: RedisConnection,
): connection is RedisClusterConnection {
  return Array.isArray((connection as RedisClusterConnection).nodes);
}

/** The Redis `location` names (cluster, Sentinels or URL), or undefined when it names none. */
export function redisConnection(location: RedisLocation): RedisConnection | undefined {
  return redisClusterConnection(location) ?? redisConnectionOptions(location);
}

export interface ConnectOptions {
  connectionName?: string;
  lazyConnect?: boolean;
  /**
   * BullMQ's mode: commands wait for Redis (offline queue, `maxRetriesPerRequest: null`)
   * instead of failing fast. @default false
   */
  waitForRedis?: boolean;
}

/**
 * A client of `connection`: a Cluster client (sharded subscribers on, see
 * redisClusterOptions) or a Redis client, failing fast (redisClientOptions) unless `waitForRedis`.
 */
export function connectRedis(
  connection: RedisConnection,
  options: ConnectOptions = {},
): Redis | Cluster {
  const { waitForRedis = false, lazyConnect = false, connectionName } = options;
  const named = connectionName ? { connectionName } : {};
  if (isClusterConnection(connection)) {
    const clusterOptions = redisClusterOptions(
      { ...connection.nodeOptions, ...named },
      { lazyConnect },
    );
    if (waitForRedis) {
      clusterOptions.enableOfflineQueue = true;
      clusterOptions.redisOptions = {
        ...clusterOptions.redisOptions,
        maxRetriesPerRequest: null,
        commandTimeout: undefined,
      };
    }
    return stopSlotsRefreshOnEnd(new Cluster(connection.nodes, clusterOptions));
  }
  if (waitForRedis)
    return new Redis({ ...connection, ...named, lazyConnect, maxRetriesPerRequest: null });
  return new Redis({ ...connection, ...redisClientOptions({ ...named, lazyConnect }) });
}

/** A client of the Redis `location` names (see connectRedis), undefined when it names none. */
export function createRedisClient(
  location: RedisLocation,
  options: ConnectOptions = {},
): Redis | Cluster | undefined {
  const connection = redisConnection(location);
  return connection ? connectRedis(connection, options) : undefined;
}

/** Where `connection` points, for messages (no credentials). */
export function describeConnection(connection: RedisConnection): string {
  if (isClusterConnection(connection)) {
    return `cluster ${connection.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
  return describeRedis(connection);
}

/** Where the broadcaster's Redis is, for messages (no credentials). */
export function describeLocation(location: RedisLocation): string {
  const cluster = redisClusterConnection(location);
  if (cluster) return `cluster ${cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  const options = redisConnectionOptions(location);
  return options ? describeRedis(options) : 'no Redis';
}

/**
 * ioredis options that reach the Redis named by `location`, or undefined when it names none
 * (then the caller uses the memory engine or a gateway). Merge them with `redisClientOptions()`:
 * `new Redis({ ...redisConnectionOptions(env), ...redisClientOptions() })`.
 *
 * With Sentinels, ioredis asks them for the master on every (re)connection and checks the role of
 * what it reached, so clients follow the master through a failover; `failoverDetector` makes them
 * drop a demoted master at once (on the Sentinels' `+switch-master`), not at its first error.
 */
export function redisConnectionOptions(location: RedisLocation): RedisOptions | undefined {
  if (location.REDIS_CLUSTER_NODES && location.REDIS_CLUSTER_NODES.length > 0) {
    // Never silently a single Redis (or none) when a cluster is configured.
    throw new Error('REDIS_CLUSTER_NODES names a Redis Cluster: connect with createRedisClient()');
  }
  const sentinels = location.REDIS_SENTINELS;
  const url = location.REDIS_URL;
  if (sentinels && sentinels.length > 0) {
    const fromUrl = url ? parseRedisUrl(url) : {};
    const options: RedisOptions = {
      sentinels: sentinels.map(({ host, port }) => ({ host, port })),
      name: location.REDIS_SENTINEL_NAME || 'mymaster',
      failoverDetector: true,
    };
    if (fromUrl.username) options.username = fromUrl.username;
    if (fromUrl.password) options.password = fromUrl.password;
    if (fromUrl.db !== undefined) options.db = fromUrl.db;
    if (fromUrl.tls) {
      options.tls = fromUrl.tls;
      options.enableTLSForSentinelMode = true;
    }
    if (location.REDIS_SENTINEL_PASSWORD) {
      options.sentinelPassword = location.REDIS_SENTINEL_PASSWORD;
    }
    return options;
  }
  return url ? parseRedisUrl(url) : undefined;
}

/**
 * A `redis://[[user]:password@]host[:port][/db][?option=value…]` or `rediss://…` URL as ioredis
 * options, as ioredis itself reads it (`new Redis(url)`), so one options object serves both cases.
 */
export function parseRedisUrl(url: string): RedisOptions {
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`not a redis:// or rediss:// URL: ${parsed.protocol}`);
  }
  const options: RedisOptions = {};
  parsed.searchParams.forEach((value, key) => {
    const parsed = key === 'family' ? Number.parseInt(value, 10) : value;
    (options as Record<string, unknown>)[key] = parsed;
  });
  if (parsed.hostname) options.host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (parsed.port) options.port = Number.parseInt(parsed.port, 10);
  if (parsed.username || parsed.password) {
    options.username = decodeURIComponent(parsed.username);
    options.password = decodeURIComponent(parsed.password);
  }
  if (parsed.pathname.length > 1) options.db = Number.parseInt(parsed.pathname.slice(1), 10);
  if (parsed.protocol === 'rediss:') options.tls = {};
  return options;
}

/** Where `options` point, for messages: `127.0.0.1:6379`, or `sentinels a:1,b:2 (mymaster)`. */
export function describeRedis(options: RedisOptions): string {
  if (options.sentinels?.length) {
    const list = options.sentinels
      .map((s) => `${s.host ?? '127.0.0.1'}:${s.port ?? 26379}`)
      .join(',');
    return `sentinels ${list} (${options.name ?? 'mymaster'})`;
  }
  return `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
}
