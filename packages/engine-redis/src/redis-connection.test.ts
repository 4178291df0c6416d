import Redis from 'ioredis';
import { parseRedisUrl, redisConnectionOptions } from './redis-connection';

describe('redisConnectionOptions', () => {
  it('reads a URL as ioredis does', () => {
    for (const url of [
      'redis://127.0.0.1:6380',
      'redis://:p%40ss@redis.internal:6379/2',
      'redis://user:secret@[::1]:7000/0?family=6',
      'rediss://cache.example.com',
    ]) {
      const ours = new Redis({ ...parseRedisUrl(url), lazyConnect: true });
      const theirs = new Redis(url, { lazyConnect: true });
      for (const key of ['host', 'port', 'username', 'password', 'db', 'family'] as const) {
        expect({ url, key, value: ours.options[key] }).toEqual({
          url,
          key,
          value: theirs.options[key],
        });
      }
      expect(Boolean(ours.options.tls)).toBe(Boolean(theirs.options.tls));
    }
  });

  it('names no Redis without REDIS_URL or REDIS_SENTINELS', () => {
    expect(redisConnectionOptions({})).toBeUndefined();
    expect(redisConnectionOptions({ REDIS_SENTINELS: [] })).toBeUndefined();
  });

  it('lets Sentinels name the master, with the credentials, db and TLS of the URL', () => {
    const options = redisConnectionOptions({
      REDIS_URL: 'rediss://:master-secret@ignored:1/3',
      REDIS_SENTINELS: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
      ],
      REDIS_SENTINEL_NAME: 'events',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    expect(options).toEqual({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
      ],
      name: 'events',
      failoverDetector: true,
      password: 'master-secret',
      db: 3,
      tls: {},
      enableTLSForSentinelMode: true,
      sentinelPassword: 'sentinel-secret',
    });
    expect(options?.host).toBeUndefined();
  });
});
