import { validateEvent } from '@streamcast/events';
import { runProducer } from './test-support';

const fast = { postMs: 30, updateMs: 10 };

describe('blog producer', () => {
  it('updates only posts published before, with fresh content', async () => {
    const events = await runProducer('blog', fast, 4, 150);
    const posts = new Map<string, string>();
    let updates = 0;
    for (const e of events) {
      expect(e.topic).toBe('blog');
      expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
      if (e.event === 'newPost') {
        const p = e.data as { id: string; title: string; excerpt: string; publishTime: string };
        expect(posts.has(p.id)).toBe(false);
        expect(p.publishTime).toBe(new Date(1_700_000_000_000).toISOString());
        expect(p.title.length).toBeGreaterThan(5);
        posts.set(p.id, p.excerpt);
      } else {
        expect(e.event).toBe('postUpdate');
        const u = e.data as { id: string; content: string };
        const excerpt = posts.get(u.id);
        expect(excerpt).toBeDefined();
        expect(u.content.startsWith(excerpt as string)).toBe(true);
        expect(u.content).not.toBe(excerpt);
        updates++;
      }
    }
    expect(events[0]?.event).toBe('newPost');
    expect(posts.size).toBeGreaterThan(10);
    expect(updates).toBeGreaterThan(60);
  });

  it('gives the same sequence for the same seed', async () => {
    const a = await runProducer('blog', fast, 6, 40);
    const b = await runProducer('blog', fast, 6, 40);
    expect(b.slice(0, 40)).toEqual(a.slice(0, 40));
  });
});
