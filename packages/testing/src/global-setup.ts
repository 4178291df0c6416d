import { provideRedis, type TestRedis } from './redis';

declare global {
  // eslint-disable-next-line no-var
  var __streamcastRedis: TestRedis | undefined;
}

/**
 * Jest global setup: one Redis for the whole run, announced to every test worker through
 * TEST_REDIS_URL. Each test isolates itself with its own key prefix, never FLUSHALL.
 */
export default async function globalSetup(): Promise<void> {
  const redis = await provideRedis();
  globalThis.__streamcastRedis = redis;
  process.env.TEST_REDIS_URL = redis.url;
  process.stdout.write(`\ntest redis: ${redis.url} (${redis.source})\n`);
}
