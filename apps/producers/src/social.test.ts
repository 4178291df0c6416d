import { validateEvent } from '@streamcast/events';
import { runProducer } from './test-support';

const fast = { postMs: 40, likeMs: 10, commentMs: 15 };

describe('social producer', () => {
  it('likes and comments only posts published before, counting likes per post', async () => {
    const events = await runProducer('social', fast, 3, 300);
    const posts = new Map<string, { author: string; likes: number }>();
    let likes = 0;
    let comments = 0;
    for (const e of events) {
      expect(e.topic).toBe('social');
      expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
      if (e.event === 'newPost') {
        const p = e.data as { id: string; author: string; content: string; timestamp: number };
        expect(posts.has(p.id)).toBe(false); // ids are unique
        expect(p.id).toMatch(/^[a-z0-9]+-\d+$/); // usable in the page's element ids
        expect(p.timestamp).toBe(1_700_000_000_000);
        posts.set(p.id, { author: p.author, likes: 0 });
      } else if (e.event === 'newLike') {
        const { postId, count } = e.data as { postId: string; count: number };
        const post = posts.get(postId);
        expect(post).toBeDefined();
        expect(count).toBe((post?.likes ?? 0) + 1);
        if (post) post.likes = count;
        likes++;
      } else {
        expect(e.event).toBe('newComment');
        const { postId, author } = e.data as { postId: string; author: string };
        expect(posts.get(postId)).toBeDefined();
        expect(author).not.toBe(posts.get(postId)?.author);
        comments++;
      }
    }
    expect(events[0]?.event).toBe('newPost');
    expect(posts.size).toBeGreaterThan(5);
    expect(likes).toBeGreaterThan(100);
    expect(comments).toBeGreaterThan(50);
  });

  it('gives the same sequence for the same seed', async () => {
    const a = await runProducer('social', fast, 8, 80);
    const b = await runProducer('social', fast, 8, 80);
    const c = await runProducer('social', fast, 9, 80);
    expect(b.slice(0, 80)).toEqual(a.slice(0, 80));
    expect(c.slice(0, 80)).not.toEqual(a.slice(0, 80));
  });
});
