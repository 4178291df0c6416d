import { z } from 'zod';
import { integerOption } from './options';
import { Dice } from './random';
import { ProducerRuntime } from './runtime';
import type { Emission, ProducerDefinition } from './types';

const SUBJECTS = [
  'Server-Sent Events',
  'Redis Streams',
  'Horizontal scaling',
  'Reconnection with Last-Event-ID',
  'Load balancers and long-lived connections',
  'Backpressure',
  'Heartbeats',
  'Zero-downtime deploys',
  'Observability',
  'EventSource in the browser',
];

const ANGLES = [
  'a practical guide',
  'lessons from production',
  'what we got wrong',
  'five things to know',
  'under the hood',
  'a deep dive',
  'the short version',
  'myths and facts',
];

const EXCERPTS = [
  'How we kept every client in sync without polling.',
  'A walk through the design, with the trade-offs we made.',
  'Measurements, surprises and a few graphs.',
  'Everything we wish we had known a year ago.',
  'From the first prototype to thousands of connections.',
  'Why the simple approach won.',
];

const ADDITIONS = [
  'Updated with benchmark figures.',
  'Fixed a typo in the second example.',
  'Added a section on reconnection.',
  'Clarified the nginx configuration.',
  'Added a diagram of the architecture.',
  'Thanks to readers for the corrections.',
];

const pace = (what: string, fallback: number) => integerOption(what, fallback, 10, 3_600_000);

export const blogOptions = z
  .object({
    postMs: pace('mean time between new posts (each wait varies ±40%)', 20_000),
    updateMs: pace('mean time between updates of a published post', 7000),
  })
  .strict();

/** Posts that still get updated: the most recent ones. */
const LIVE_POSTS = 10;

interface Post {
  id: string;
  excerpt: string;
  revision: number;
}

/**
 * A blog on `blog`: new posts (`id`, `title`, `excerpt`, ISO `publishTime`) and updates of
 * published ones (`id`, the post's new `content`). The first post goes out at start.
 */
export const blogProducer: ProducerDefinition<typeof blogOptions> = {
  name: 'blog',
  description:
    '`newPost` ({id, title, excerpt, publishTime}) and `postUpdate` ({id, content}) on `blog`',
  options: blogOptions,
  start(publisher, options, context) {
    const dice = new Dice(context.random);
    const runtime = new ProducerRuntime('blog', publisher, context);
    const run = dice.tag(); // ids of this run never collide with those of an earlier run
    const posts: Post[] = [];
    let next = 1;

    const post = (): Emission[] => {
      const excerpt = dice.pick(EXCERPTS);
      const p: Post = { id: `${run}-${next++}`, excerpt, revision: 0 };
      posts.push(p);
      if (posts.length > LIVE_POSTS) posts.shift();
      const title = `${dice.pick(SUBJECTS)}: ${dice.pick(ANGLES)}`;
      const publishTime = new Date(runtime.now()).toISOString();
      return [{ topic: 'blog', event: 'newPost', data: { id: p.id, title, excerpt, publishTime } }];
    };
    const update = (): Emission[] => {
      const p = posts.length > 0 ? dice.pick(posts) : undefined;
      if (!p) return [];
      p.revision++;
      const content = `${p.excerpt} ${dice.pick(ADDITIONS)} (revision ${p.revision})`;
      return [{ topic: 'blog', event: 'postUpdate', data: { id: p.id, content } }];
    };

    runtime.every(() => dice.jitter(options.postMs), post, 0);
    runtime.every(() => dice.jitter(options.updateMs), update);
    return runtime;
  },
};
