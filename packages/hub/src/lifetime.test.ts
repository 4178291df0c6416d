import { MemoryEngine } from '@streamcast/engine';
import { MemorySink, waitFor } from '@streamcast/testing';
import { Hub } from './hub';

/**
 * STREAM_MAX_LIFETIME_S: a stream is closed at a random point of its lifetime's last fifth,
 * counted from when it opened, whatever the hub's coarse clock (advanced by the sweep) said at
 * that moment.
 */
describe('stream lifetime', () => {
  let hub: Hub;

  afterEach(async () => {
    await hub.close();
  });

  it('counts from when the stream opened, not from the last sweep', async () => {
    const lifetimeMs = 2000;
    hub = new Hub(new MemoryEngine({ maxLen: 100, maxAgeS: 0 }), {
      maxLifetimeMs: lifetimeMs,
      heartbeatMs: 1000,
    });
    await hub.start();
    // The coarse clock as a sweep long ago left it: a stream must not inherit its age.
    hub.clock = Date.now() - 10_000;
    const sink = new MemorySink();
    const opened = Date.now();
    await hub.subscribe(sink, ['t']);
    await waitFor(() => sink.closed, 'the stream to be closed for its age', lifetimeMs + 3000);
    const lived = Date.now() - opened;
    expect(lived).toBeGreaterThanOrEqual(lifetimeMs * 0.8);
    // Closed by the first sweep after its time: at most a sweep interval late.
    expect(lived).toBeLessThan(lifetimeMs + 1000 + 250);
    expect(sink.raw).toMatch(/stream lifetime reached/);
  });
});
