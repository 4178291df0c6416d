import { MemoryEngine } from '@streamcast/engine';
import { normalizePrivate, parseCursor } from '@streamcast/protocol';
import { MemorySink, waitFor } from '@streamcast/testing';
import { Hub } from './hub';

/** The hub's side of private fields: who sees what, and one encoding per variant per event. */
describe('private fields in the hub', () => {
  let hub: Hub;

  beforeEach(async () => {
    hub = new Hub(new MemoryEngine());
    await hub.start();
  });

  afterEach(async () => {
    await hub.close();
  });

  const data = { order: 7, total: 12.5, email: 'ann@example.com', notes: 'VIP' };
  const spec = normalizePrivate(
    [
      { fields: ['email'], claim: 'staff' },
      { fields: ['notes', 'email'], claim: 'role=support' },
    ],
    data,
  );

  class CountingSink extends MemorySink {
    readonly chunks: Array<Buffer | string> = [];
    override write(chunk: Buffer | string): void {
      this.chunks.push(chunk);
      super.write(chunk);
    }
  }

  it('strips fields per audience, live and in replay, single- and multi-topic', async () => {
    const viewers = {
      anonymous: undefined,
      staff: { staff: true },
      notStaff: { staff: 'yes' },
      support: { role: ['support', 'x'] },
      nested: { realm_access: { roles: ['a'] }, role: 'support' },
    };
    const live = Object.entries(viewers).map(([name, viewer]) => ({
      name,
      viewer,
      sink: new CountingSink(),
    }));
    for (const s of live) await hub.subscribe(s.sink, ['orders'], undefined, undefined, s.viewer);
    const multi = new MemorySink();
    await hub.subscribe(multi, ['audit', 'orders'], undefined, undefined, viewers.staff);
    const first = await hub.publish('orders', 'order', JSON.stringify({ order: 1 }));
    await hub.publish('orders', 'order', JSON.stringify(data), spec);
    for (const s of live) await s.sink.waitForEvents(2);
    await multi.waitForEvents(2);

    const expected: Record<string, object> = {
      anonymous: { order: 7, total: 12.5 },
      staff: { order: 7, total: 12.5, email: 'ann@example.com' },
      notStaff: { order: 7, total: 12.5 },
      // `email` is also listed by the support group: the holders of either group see it.
      support: { order: 7, total: 12.5, email: 'ann@example.com', notes: 'VIP' },
      nested: { order: 7, total: 12.5, email: 'ann@example.com', notes: 'VIP' },
    };
    for (const s of live) {
      expect({ [s.name]: s.sink.data()[1] }).toEqual({ [s.name]: expected[s.name] });
      if (!('email' in expected[s.name]!)) expect(s.sink.raw).not.toContain('ann@example.com');
      if (!('notes' in expected[s.name]!)) expect(s.sink.raw).not.toContain('VIP');
    }
    expect(multi.data()[1]).toEqual(expected.staff);

    // Encoded once per variant: streams of one audience got the very same Buffer.
    const anonymousFrame = live[0]!.sink.chunks.at(-1);
    const notStaffFrame = live[2]!.sink.chunks.at(-1);
    const supportFrame = live[3]!.sink.chunks.at(-1);
    const nestedFrame = live[4]!.sink.chunks.at(-1);
    expect(Buffer.isBuffer(anonymousFrame)).toBe(true);
    expect(notStaffFrame).toBe(anonymousFrame);
    expect(nestedFrame).toBe(supportFrame);
    expect(supportFrame).not.toBe(anonymousFrame);

    // Replay from history: the same filtering.
    for (const [name, viewer] of Object.entries(viewers)) {
      const replay = new MemorySink();
      await hub.subscribe(replay, ['orders'], parseCursor(first), undefined, viewer);
      await replay.waitForEvents(1);
      expect({ [name]: replay.data()[0] }).toEqual({ [name]: expected[name] });
      if (!('email' in expected[name]!)) expect(replay.raw).not.toContain('ann@example.com');
      replay.close();
    }
  });

  it('fails closed on a private record it cannot read', async () => {
    const sink = new MemorySink();
    await hub.subscribe(sink, ['t'], undefined, undefined, { staff: true });
    await hub.publish('t', 'x', JSON.stringify({ secret: 1 }), 'not json');
    await waitFor(() => sink.events.length >= 1, 'the event');
    expect(sink.data()).toEqual([null]);
  });
});
