import { z } from 'zod';
import { integerOption, listOption } from './options';
import { Dice } from './random';
import { ProducerRuntime } from './runtime';
import type { Emission, ProducerDefinition } from './types';

const POSTS = [
  'Just shipped a live dashboard on Server-Sent Events. No polling!',
  'Coffee first, code later ☕',
  'Anyone else watching the match tonight?',
  'Hiked up the hill this morning, what a view.',
  'Reading about Redis Streams: history for free.',
  'Our team hit 10k concurrent connections today 🎉',
  'Hot take: EventSource is underrated.',
  'New blog post coming soon, stay tuned.',
  'Trying a new ramen place downtown.',
  'Rainy Sunday, perfect for refactoring.',
];

const COMMENTS = [
  'Love this!',
  'Congrats 👏',
  'So true.',
  'Tell me more!',
  'Same here.',
  'Great shot!',
  'Where is this?',
  'Count me in.',
  'Interesting, thanks for sharing.',
  '😂',
];

const pace = (what: string, fallback: number) => integerOption(what, fallback, 10, 3_600_000);

export const socialOptions = z
  .object({
    authors: listOption(
      'who posts, likes and comments',
      ['Alice', 'Bob', 'Charlie', 'Diana', 'Eve', 'Frank'],
      {
        what: '1-32 characters of letters, digits, space _ - .',
        pattern: /^[\p{L}\p{N} _.-]{1,32}$/u,
      },
    ),
    postMs: pace('mean time between posts (each wait varies ±40%)', 8000),
    likeMs: pace('mean time between likes', 2000),
    commentMs: pace('mean time between comments', 5000),
  })
  .strict();

/** Posts that still get likes and comments: the most recent ones. */
const LIVE_POSTS = 20;

interface Post {
  id: string;
  author: string;
  likes: number;
}

/**
 * A social feed on `social`: posts (with an `id`, which the seed's page uses to find the post),
 * then likes (`count` = that post's likes so far) and comments on posts published earlier,
 * recent posts more often. The first post goes out at start, so likes always have a target.
 */
export const socialProducer: ProducerDefinition<typeof socialOptions> = {
  name: 'social',
  description:
    '`newPost` ({id, author, content, timestamp}), `newLike` ({postId, count}), `newComment` ({postId, author, text}) on `social`',
  options: socialOptions,
  start(publisher, options, context) {
    const dice = new Dice(context.random);
    const runtime = new ProducerRuntime('social', publisher, context);
    const run = dice.tag(); // ids of this run never collide with those of an earlier run
    const posts: Post[] = [];
    let next = 1;

    /** Recent posts are likelier targets. */
    const target = (): Post | undefined => {
      if (posts.length === 0) return undefined;
      const r = dice.random();
      return posts[Math.floor(posts.length * (1 - r * r))];
    };

    const post = (): Emission[] => {
      const p: Post = { id: `${run}-${next++}`, author: dice.pick(options.authors), likes: 0 };
      posts.push(p);
      if (posts.length > LIVE_POSTS) posts.shift();
      const data = {
        id: p.id,
        author: p.author,
        content: dice.pick(POSTS),
        timestamp: runtime.now(),
      };
      return [{ topic: 'social', event: 'newPost', data }];
    };
    const like = (): Emission[] => {
      const p = target();
      if (!p) return [];
      p.likes++;
      return [{ topic: 'social', event: 'newLike', data: { postId: p.id, count: p.likes } }];
    };
    const comment = (): Emission[] => {
      const p = target();
      if (!p) return [];
      const others = options.authors.filter((a) => a !== p.author);
      const author = dice.pick(others.length > 0 ? others : options.authors);
      return [
        {
          topic: 'social',
          event: 'newComment',
          data: { postId: p.id, author, text: dice.pick(COMMENTS) },
        },
      ];
    };

    runtime.every(() => dice.jitter(options.postMs), post, 0);
    runtime.every(() => dice.jitter(options.likeMs), like);
    runtime.every(() => dice.jitter(options.commentMs), comment);
    return runtime;
  },
};
