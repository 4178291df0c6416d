import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewaySchema, parseEnv } from '@streamcast/config';
import { SOURCE_EXEC_ARGV } from '@streamcast/testing';

const ROOT = join(__dirname, '..');

describe('configuration', () => {
  it('has the documented defaults', () => {
    expect(parseEnv(gatewaySchema, {})).toEqual({
      REDIS_URL: undefined,
      REDIS_SENTINELS: undefined,
      REDIS_SENTINEL_NAME: 'mymaster',
      REDIS_SENTINEL_PASSWORD: undefined,
      REDIS_PREFIX: 'sse',
      HISTORY_MAX_LEN: 1000,
      HISTORY_MAX_AGE_S: 86400,
      LOG_LEVEL: 'info',
      PORT: 3000,
      HOST: '0.0.0.0',
      RETRY_MS: 3000,
      HEARTBEAT_S: 15,
      MAX_TOPICS: 32,
      MAX_BODY_BYTES: 1048576,
      MAX_QUEUE_BYTES: 1048576,
      DRAIN_S: 10,
      STREAM_MAX_LIFETIME_S: 1800,
      PROBE_INTERVAL_MS: 1000,
      PROBE_TIMEOUT_MS: 3000,
      METRICS_TOPICS: 0,
      WEB_ROOT: '',
      UPLOADS_ENABLED: true,
      JWT_SECRET: undefined,
      JWT_JWKS_URL: undefined,
      JWT_JWKS_FILE: undefined,
      JWT_ISSUER: undefined,
      JWT_AUDIENCE: [],
      JWT_CLOCK_SKEW_S: 30,
      PUBLIC_TOPICS: [],
      CORS_ORIGINS: [],
      TRUST_PROXY: false,
      MAX_CONNECTIONS: 20000,
      MAX_STREAMS_PER_IP: 500,
      MAX_STREAMS_PER_SUBJECT: 100,
      CLUSTER_MAX_STREAMS_PER_IP: 2000,
      CLUSTER_MAX_STREAMS_PER_SUBJECT: 300,
      STREAM_COUNT_TTL_S: 30,
      PUBLISH_RATE_PER_MIN: 6000,
      UPLOAD_DIR: join(tmpdir(), 'streamcast-uploads'),
      UPLOAD_MAX_BYTES: 104857600,
      UPLOAD_TYPES: [
        'text/*',
        'image/*',
        'application/pdf',
        'application/json',
        'application/octet-stream',
      ],
      UPLOAD_RETENTION_S: 3600,
      UPLOAD_ATTEMPTS: 5,
      UPLOAD_CONCURRENCY: 2,
      UPLOAD_LOCK_MS: 30000,
      UPLOAD_READ_BYTES_PER_S: 0,
    });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['HEARTBEAT_S', '0'],
    ['REDIS_URL', 'http://localhost'],
    ['MAX_TOPICS', '1.5'],
    ['MAX_TOPICS', '33'],
    ['LOG_LEVEL', 'loud'],
    ['REDIS_PREFIX', 'a b'],
    ['WEB_ROOT', '/nonexistent/public'],
    ['REDIS_SENTINELS', '127.0.0.1'],
    ['REDIS_SENTINEL_NAME', 'my master'],
    ['JWT_SECRET', 'too-short-to-resist-guessing'],
    ['JWT_JWKS_URL', 'http://keys.example.com/jwks.json'],
    ['JWT_JWKS_FILE', '/nonexistent/jwks.json'],
    ['CORS_ORIGINS', '*'],
    ['TRUST_PROXY', 'true'],
    ['PUBLIC_TOPICS', 'news,a b'],
    ['MAX_STREAMS_PER_IP', '-1'],
    ['UPLOAD_MAX_BYTES', '10MB'],
    ['UPLOAD_TYPES', 'text/*,images'],
    ['UPLOADS_ENABLED', 'no'],
    ['METRICS_TOPICS', '1001'],
  ])('a gateway with %s=%s exits 1 with one line naming it', (name, value) => {
    const result = spawnSync(process.execPath, [...SOURCE_EXEC_ARGV, 'apps/gateway/src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, [name]: value },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^config: .*${name}`));
  });
});
