import { z } from 'zod';

/**
 * The payloads of every event the seed's feeds carry, in one place: producers publish them,
 * gateways serve them, pages render them, tests check them. Field names and types follow the
 * seed's examples (`shared/seed/`), including its string-formatted prices and memory figures.
 */

const decimal2 = z.string().regex(/^-?\d+\.\d{2}$/, 'a number with two decimals, as a string');
const isoOrEpoch = z.union([z.string().min(1), z.number().int().nonnegative()]);

export const tick = {
  message: z.object({ timestamp: z.number().int().positive(), message: z.string() }),
};

export const stocks = {
  priceUpdate: z.object({ symbol: z.string().min(1), price: decimal2, changePercent: decimal2 }),
};

export const blog = {
  newPost: z.object({
    id: z.string().min(1),
    title: z.string().min(1),
    excerpt: z.string(),
    publishTime: isoOrEpoch,
  }),
  postUpdate: z.object({ id: z.string().min(1), content: z.string() }),
};

export const uploads = {
  progress: z.object({
    percent: z.number().min(0).max(100),
    status: z.enum(['uploading', 'queued', 'processing']),
  }),
  complete: z.object({ filename: z.string() }).passthrough(),
  failed: z.object({ reason: z.string() }).passthrough(),
};

export const chat = {
  'new-message': z.object({ user: z.string().min(1), text: z.string() }),
  'user-joined': z.object({ name: z.string().min(1) }),
  'user-left': z.object({ name: z.string().min(1) }),
};

export const matches = {
  scoreUpdate: z.object({
    homeScore: z.number().int().nonnegative(),
    awayScore: z.number().int().nonnegative(),
  }),
  matchStatus: z.object({ status: z.string().min(1), time: z.number().int().nonnegative() }),
  matchEvent: z.object({
    time: z.number().int().nonnegative(),
    type: z.string().min(1),
    player: z.string().min(1),
  }),
};

export const monitoring = {
  cpuUpdate: z.object({ usage: z.number().min(0).max(100) }),
  memoryUpdate: z.object({
    used: decimal2,
    total: z.number().positive(),
    percentUsed: z.number().min(0).max(100),
  }),
};

export const social = {
  newPost: z.object({
    id: z.string().min(1),
    author: z.string().min(1),
    content: z.string(),
    timestamp: isoOrEpoch,
  }),
  newLike: z.object({ postId: z.string().min(1), count: z.number().int().nonnegative() }),
  newComment: z.object({ postId: z.string().min(1), author: z.string().min(1), text: z.string() }),
};

/** Event schemas by topic family; a family is a topic or a topic prefix ending in `/`. */
export const catalog = {
  events: tick,
  'stocks/': stocks,
  blog,
  'uploads/': uploads,
  chat,
  'matches/': matches,
  'system/monitoring': monitoring,
  social,
} as const;

type Catalog = typeof catalog;
export type Family = keyof Catalog;
export type EventName<F extends Family> = keyof Catalog[F] & string;
export type Payload<F extends Family, E extends EventName<F>> = z.infer<
  Catalog[F][E] extends z.ZodType ? Catalog[F][E] : never
>;

/** The family a topic belongs to, or undefined for topics outside the seed's feeds. */
export function familyOf(topic: string): Family | undefined {
  for (const family of Object.keys(catalog) as Family[]) {
    if (
      family.endsWith('/')
        ? topic.startsWith(family) && topic.length > family.length
        : topic === family
    ) {
      return family;
    }
  }
  return undefined;
}

/**
 * Checks an event against the catalog: returns the parsed payload, or throws a zod error.
 * Topics outside the catalog are accepted as they are.
 */
export function validateEvent(topic: string, event: string, data: unknown): unknown {
  const family = familyOf(topic);
  if (!family) return data;
  const schemas = catalog[family] as Record<string, z.ZodType>;
  const schema = schemas[event];
  if (!schema) {
    throw new Error(`topic ${topic} carries ${Object.keys(schemas).join(', ')}; not ${event}`);
  }
  return schema.parse(data);
}
