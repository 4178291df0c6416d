import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { provideRedis, type TestRedis } from './redis';

declare global {
  var __streamcastRedis: TestRedis | undefined;
}

/**
 * Jest global setup: one Redis for the whole run, announced to every test worker through
 * TEST_REDIS_URL. Each test isolates itself with its own key prefix, never FLUSHALL.
 */
export default async function globalSetup(): Promise<void> {
  buildBrowserClient();
  const redis = await provideRedis();
  globalThis.__streamcastRedis = redis;
  process.env.TEST_REDIS_URL = redis.url;
  process.stdout.write(`\ntest redis: ${redis.url} (${redis.source})\n`);
}

/**
 * Tests import every package's TypeScript source (the `streamcast-source` export condition),
 * but gateways serve the browser client's plain script, a build output: it is built here,
 * incrementally (a second or two when nothing changed), so no test serves a stale one.
 */
function buildBrowserClient(): void {
  const client = join(__dirname, '..', '..', 'client');
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(
    process.execPath,
    [tsc, '-b', join(client, 'tsconfig.json'), join(client, 'tsconfig.cjs.json')],
    {
      stdio: 'inherit',
    },
  );
  execFileSync(process.execPath, [join(client, 'scripts', 'build-browser.js')], {
    stdio: 'inherit',
  });
}
