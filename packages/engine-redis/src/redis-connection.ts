import type { RedisOptions } from 'ioredis';

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
