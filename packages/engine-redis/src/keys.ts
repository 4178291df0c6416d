/**
 * Every Redis key and channel of a topic, in one place. The topic is wrapped in braces (a hash
 * tag) so all of a topic's keys live in one Redis Cluster slot: the publish script touches only
 * those, and a move to Redis Cluster with sharded pub/sub is configuration, not a rewrite.
 */
export interface TopicKeys {
  /** History: one Redis Stream per topic. */
  log: string;
  /** Hash with the topic's epoch and last stored id. */
  meta: string;
  /** Pub/sub channel for live delivery. */
  live: string;
}

export function topicKeys(prefix: string, topic: string): TopicKeys {
  const tag = `${prefix}:{${topic}}`;
  return { log: `${tag}:log`, meta: `${tag}:meta`, live: `${tag}:live` };
}

/** The topic of a live channel name, or undefined if the channel is not one of ours. */
export function topicOfChannel(prefix: string, channel: string): string | undefined {
  const head = `${prefix}:{`;
  if (!channel.startsWith(head) || !channel.endsWith('}:live')) return undefined;
  return channel.slice(head.length, -'}:live'.length);
}
