import { randomUUID } from 'node:crypto';

/** The suite's Redis URL (set by the jest global setup). */
export function testRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL;
  if (!url) throw new Error('no test Redis: run through jest (global setup) or set REDIS_URL');
  return url;
}

/** A key prefix of this test's own, so tests never see each other's keys. */
export function testPrefix(): string {
  return `test-${randomUUID().slice(0, 8)}`;
}
