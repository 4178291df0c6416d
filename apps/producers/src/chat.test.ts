import { validateEvent } from '@streamcast/events';
import { runProducer, type Recorded } from './test-support';

const fast = { messageMs: 10, joinMs: 20, leaveMs: 25 };

describe('chat producer', () => {
  it('joins only absent users, lets only present users talk and leave', async () => {
    const events = await runProducer(
      'chat',
      { ...fast, users: 'Alice,Bob,Charlie,Diana,Émile' },
      5,
      400,
    );
    const present = new Set<string>();
    const counts: Record<string, number> = {};
    for (const e of events) {
      expect(e.topic).toBe('chat');
      expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
      counts[e.event] = (counts[e.event] ?? 0) + 1;
      const data = e.data as { name?: string; user?: string; text?: string };
      if (e.event === 'user-joined') {
        expect(present.has(data.name as string)).toBe(false);
        present.add(data.name as string);
      } else if (e.event === 'user-left') {
        expect(present.has(data.name as string)).toBe(true);
        present.delete(data.name as string);
        expect(present.size).toBeGreaterThan(0); // the room never empties
      } else {
        expect(e.event).toBe('new-message');
        expect(present.has(data.user as string)).toBe(true);
        expect(data.text).not.toBe('');
      }
    }
    expect(events[0]?.event).toBe('user-joined');
    expect(counts['user-joined']).toBeGreaterThan(20);
    expect(counts['user-left']).toBeGreaterThan(20);
    expect(counts['new-message']).toBeGreaterThan(100);
  });

  it('gives the same sequence for the same seed', async () => {
    const a = await runProducer('chat', fast, 11, 60);
    const b = await runProducer('chat', fast, 11, 60);
    const c = await runProducer('chat', fast, 12, 60);
    const head = (events: Recorded[]) => events.slice(0, 60);
    expect(head(b)).toEqual(head(a));
    expect(head(c)).not.toEqual(head(a));
  });

  it('keeps a single user in the room once joined', async () => {
    const events = await runProducer('chat', { ...fast, users: 'Solo' }, 1, 20);
    expect(events.filter((e) => e.event === 'user-joined')).toHaveLength(1);
    expect(events.filter((e) => e.event === 'user-left')).toHaveLength(0);
  });
});
