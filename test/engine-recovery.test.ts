import { RedisEngine, redisClientOptions } from '@streamcast/engine-redis';
import type { StoredEvent } from '@streamcast/engine';
import { RedisProcess, waitFor } from '@streamcast/testing';
import Redis from 'ioredis';

/*
 * The Redis engine's link after its subscriber reconnects: a resubscription that fails on a
 * connection that stays up (here Redis refuses it, NOPERM, until an ACL is put back) must be
 * retried, or the gateway stays unready for good. Seen once after a Sentinel failover.
 */
describe('the Redis engine, when a resubscription fails on a live connection', () => {
  let redis: RedisProcess;
  let admin: Redis;
  let client: Redis;
  let engine: RedisEngine;

  beforeAll(async () => {
    redis = await RedisProcess.start();
    admin = new Redis(redis.url);
    await admin.call('ACL', 'SETUSER', 'gw', 'on', '>gw-password', '~*', '&*', '+@all');
  });
  afterAll(async () => {
    await engine?.close();
    client?.disconnect();
    admin?.disconnect();
    await redis?.stop();
  });

  it('retries it until Redis accepts, then the link is up and delivers again', async () => {
    const url = redis.url.replace('redis://', 'redis://gw:gw-password@');
    client = new Redis(url, redisClientOptions());
    const warnings: string[] = [];
    engine = new RedisEngine({
      client,
      keyPrefix: 'recovery',
      probe: { intervalMs: 100, timeoutMs: 300 },
      onWarning: (message) => warnings.push(message),
    });
    const seen: string[] = [];
    const links: string[] = [];
    engine.setHandlers({
      message: (e: StoredEvent) => seen.push(e.data),
      linkDown: () => links.push('down'),
      linkUp: () => links.push('up'),
      resync: () => {},
    });
    await engine.start();
    await engine.listen('t');
    await engine.publish('t', 'message', '"before"');
    await waitFor(() => seen.includes('"before"'), 'the first event live');

    // No channel may be used: Redis drops the subscriber (it had channels), which reconnects,
    // and its SUBSCRIBE is refused on a connection that stays up.
    await admin.call('ACL', 'SETUSER', 'gw', 'resetchannels');
    await waitFor(() => links.includes('down'), 'the link down');
    await waitFor(
      () => warnings.includes('redis resubscribe failed'),
      () => `a failed resubscription (warnings: ${warnings.join('; ')})`,
    );
    expect(engine.isReady()).toBe(false);

    // Allowed again: nothing reconnects by itself, so only a retry brings the link back.
    await admin.call('ACL', 'SETUSER', 'gw', 'allchannels');
    await waitFor(
      () => links.at(-1) === 'up',
      () => `the link up (links: ${links.join(', ')})`,
      10_000,
    );
    expect(warnings).toContain(
      'redis link still down with the subscriber connected; resubscribing again',
    );
    await waitFor(() => engine.isReady(), 'the engine ready');
    await engine.publish('t', 'message', '"after"');
    await waitFor(() => seen.includes('"after"'), 'an event live after the recovery');
  });
});
