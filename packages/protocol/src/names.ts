import { EventInvalid, EventReserved, TooManyTopics, TopicInvalid, TopicMissing } from './errors';

const TOPIC_RE = /^[A-Za-z0-9_\-.:/]{1,200}$/;
const EVENT_RE = /^[A-Za-z0-9_\-.:]{1,64}$/;

/** The event type a browser's `onmessage` receives; it is sent without an `event:` line. */
export const DEFAULT_EVENT = 'message';
/** Sent by the broadcaster only, never accepted from a publisher. */
export const RESET_EVENT = 'reset';

/** Most events one batch (`POST /publish` with a JSON array) may hold. */
export const MAX_BATCH_EVENTS = 1000;

export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && TOPIC_RE.test(topic);
}

/** Throws TOPIC_INVALID unless `topic` is 1-200 characters of the topic alphabet. */
export function assertTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string') throw new TopicInvalid(describe(topic), 'not a string');
  if (!TOPIC_RE.test(topic)) {
    const why =
      topic.length === 0
        ? 'empty'
        : topic.length > 200
          ? `${topic.length} characters long`
          : 'has a character outside the alphabet';
    throw new TopicInvalid(describe(topic), why);
  }
}

/**
 * Validates the topics of one subscription and returns them distinct and sorted. The sorted
 * order is what a cursor's topic indexes refer to, so it must not depend on the request's order.
 */
export function normalizeTopics(topics: readonly unknown[], maxTopics: number): string[] {
  if (topics.length === 0) throw new TopicMissing();
  for (const topic of topics) assertTopic(topic);
  const distinct = [...new Set(topics as string[])].sort();
  if (distinct.length > maxTopics) throw new TooManyTopics(distinct.length, maxTopics);
  return distinct;
}

/** Returns the event type to store: `message` when absent; throws EVENT_INVALID / EVENT_RESERVED. */
export function normalizeEventName(event: unknown): string {
  if (event === undefined) return DEFAULT_EVENT;
  if (typeof event !== 'string') throw new EventInvalid(describe(event), 'not a string');
  if (!EVENT_RE.test(event)) {
    throw new EventInvalid(describe(event), 'has a character outside the alphabet or a bad length');
  }
  if (event === RESET_EVENT) throw new EventReserved();
  return event;
}

/** A short, printable rendering of untrusted input for an error message. */
export function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  const clipped = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return JSON.stringify(clipped);
}
