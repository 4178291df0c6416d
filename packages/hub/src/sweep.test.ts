import { MemoryEngine } from '@streamcast/engine';
import { MemorySink, waitFor } from '@streamcast/testing';
import { Hub } from './hub';

/**
 * The sweep (heartbeats, token expiry, lifetime) goes over a tenth of the streams at a time:
 * streams that opened together get their heartbeats spread over the sweep period, not all in
 * one turn of the event loop.
 */
describe('the sweep', () => {
  let hub: Hub;

  afterEach(async () => {
    await hub.close();
  });

  it('spreads the heartbeats of streams that opened together over its slices', async () => {
    const heartbeatMs = 1000;
    hub = new Hub(new MemoryEngine({ maxLen: 100, maxAgeS: 0 }), { heartbeatMs });
    await hub.start();
    const streams = 100;
    const opened = Date.now();
    /** When each stream got its first heartbeat (ms since the epoch). */
    const beats: number[] = [];
    for (let i = 0; i < streams; i++) {
      const sink = new MemorySink();
      const write = sink.write.bind(sink);
      let beaten = false;
      sink.write = (chunk) => {
        if (!beaten && chunk.toString() === ':\n\n') {
          beaten = true;
          beats.push(Date.now());
        }
        write(chunk);
      };
      await hub.subscribe(sink, ['t']);
    }
    await waitFor(
      () => beats.length === streams,
      'every stream to get a heartbeat',
      4 * heartbeatMs,
    );
    // One slice writes its heartbeats in one synchronous pass: same millisecond. The slices of a
    // period are heartbeatMs / 10 apart.
    const perTurn = new Map<number, number>();
    for (const at of beats) perTurn.set(at, (perTurn.get(at) ?? 0) + 1);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(streams / 10);
    expect(perTurn.size).toBeGreaterThanOrEqual(10);
    // None long before it was due (the coarse clock is up to a slice behind), none later than
    // about a sweep period (1 s) after; loose bounds, as a busy machine delays timers.
    expect(Math.min(...beats) - opened).toBeGreaterThanOrEqual(heartbeatMs / 2);
    expect(Math.max(...beats) - opened).toBeLessThan(heartbeatMs + 2500);
  });
});
