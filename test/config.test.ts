import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { gatewaySchema, parseEnv } from '@streamcast/config';

const ROOT = join(__dirname, '..');

describe('configuration', () => {
  it('has the documented defaults', () => {
    expect(parseEnv(gatewaySchema, {})).toEqual({
      REDIS_URL: undefined,
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
      PROBE_INTERVAL_MS: 1000,
      PROBE_TIMEOUT_MS: 3000,
    });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['HEARTBEAT_S', '0'],
    ['REDIS_URL', 'http://localhost'],
    ['MAX_TOPICS', '1.5'],
    ['LOG_LEVEL', 'loud'],
    ['REDIS_PREFIX', 'a b'],
  ])('a gateway with %s=%s exits 1 with one line naming it', (name, value) => {
    const result = spawnSync(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', 'apps/gateway/src/main.ts'],
      { cwd: ROOT, env: { PATH: process.env.PATH, [name]: value }, encoding: 'utf8', timeout: 30_000 },
    );
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^config: .*${name}`));
  });
});
