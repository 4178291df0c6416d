import { validateEvent } from '@streamcast/events';
import {
  PublishError,
  type PublishDraft,
  type PublishOutcome,
  type Publisher,
} from '@streamcast/publisher';
import { waitFor } from '@streamcast/testing';
import { startProducer, type RawOptions } from './index';

/** Helpers for the producers' tests (not part of the package's API). */

export interface Recorded {
  topic: string;
  event: string;
  data: unknown;
}

/**
 * A Publisher that records what it is given, after checking it against the shared schemas
 * (as the real publishers do); `fail` makes publishes throw as a publisher does when Redis is down.
 */
export class RecordingPublisher implements Publisher {
  readonly target = 'hub' as const;
  readonly events: Recorded[] = [];
  /** Every publish attempt, failed ones included. */
  attempts = 0;
  fail: ((topic: string, event: string) => boolean) | undefined;
  /** Called synchronously when an event is recorded. */
  onRecord: ((r: Recorded) => void) | undefined;
  /** Publishes take this long (ms). */
  delayMs = 0;

  async publish(topic: string, event: string, data: unknown): Promise<string> {
    this.attempts++;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (this.fail?.(topic, event))
      throw new PublishError('not stored: Connection is closed.', 'NOT_READY');
    validateEvent(topic, event, data);
    const record = { topic, event, data: JSON.parse(JSON.stringify(data)) as unknown };
    this.events.push(record);
    this.onRecord?.(record);
    return String(this.events.length);
  }

  /** One `publish` after another (producers publish one event at a time). */
  async publishMany(events: readonly PublishDraft[]): Promise<PublishOutcome[]> {
    const outcomes: PublishOutcome[] = [];
    for (const { topic, event = 'message', data } of events) {
      try {
        outcomes.push({ id: await this.publish(topic, event, data) });
      } catch (err) {
        outcomes.push({ error: err as PublishError });
      }
    }
    return outcomes;
  }

  async close(): Promise<void> {}

  of(event: string, topic?: string): Recorded[] {
    return this.events.filter(
      (e) => e.event === event && (topic === undefined || e.topic === topic),
    );
  }

  async waitForCount(count: number, what = 'events', timeoutMs = 10_000): Promise<void> {
    await waitFor(
      () => this.events.length >= count,
      () => `${count} ${what} (got ${this.events.length})`,
      timeoutMs,
    );
  }
}

/** A fixed wall clock, so payload timestamps do not differ between two runs. */
export const FIXED_NOW = () => 1_700_000_000_000;

export const quiet = { log: () => {} };

/**
 * Runs producer `name` with `seed` and a fixed clock until it has published `count` events (or
 * `until` holds), then stops it; returns everything it published.
 */
export async function runProducer(
  name: string,
  options: RawOptions,
  seed: number,
  count: number,
  until?: (events: Recorded[]) => boolean,
  timeoutMs = 20_000,
): Promise<Recorded[]> {
  const publisher = new RecordingPublisher();
  const producer = startProducer(name, publisher, options, seed, { log: () => {}, now: FIXED_NOW });
  try {
    await waitFor(
      () => publisher.events.length >= count && (until ? until(publisher.events) : true),
      () => `${count} events of ${name} (got ${publisher.events.length})`,
      timeoutMs,
    );
  } finally {
    await producer.stop();
  }
  return publisher.events;
}
