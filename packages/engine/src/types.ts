import type { StreamId } from '@streamcast/protocol';

/**
 * One stored event as every engine hands it over. `prev` is the id of the entry stored before it
 * in the same topic (`0-0` for the first): entries form a chain, so a reader can tell a complete
 * run of history from one with a hole in it, whatever the ids look like.
 */
export interface StoredEvent {
  topic: string;
  epoch: string;
  id: StreamId;
  prev: StreamId;
  event: string;
  /** The published data as JSON text. */
  data: string;
  /**
   * Fields of `data` only some subscribers may see, as stored (JSON text, see the protocol's
   * private-fields.ts); absent for most events.
   */
  private?: string;
  /**
   * Trace context of the publish (a W3C `traceparent`), stored with the event when tracing is
   * on: deliveries link their spans to it.
   */
  trace?: string;
}

/** What `read` returns: the topic's history state and up to `limit` entries after `after`. */
export interface HistoryPage {
  /** The topic's current epoch (created if the topic had none). */
  epoch: string;
  /**
   * Id of the newest entry ever stored in this epoch (even if trimmed since), `0-0` when none:
   * the `prev` the next entry will carry.
   */
  lastId: StreamId;
  entries: StoredEvent[];
}

export interface PublishResult {
  epoch: string;
  id: StreamId;
}

/** How an engine tells its host about arriving events and about its link. */
export interface EngineHandlers {
  /** A live event on a listened topic, in storage order per topic. */
  message(event: StoredEvent): void;
  /** Live delivery may have stopped (e.g. the Redis link dropped): events may be missed from now. */
  linkDown(reason: string): void;
  /** Live delivery works again for every listened topic; anything missed is in history. */
  linkUp(): void;
  /**
   * Live delivery of these topics may have missed events (their subscription moved, e.g. a Redis
   * Cluster slot migration or failover) and is live again: catch them up from history after the
   * last id delivered. Other topics are unaffected; the engine stays ready.
   */
  resync(topics: readonly string[], reason: string): void;
}

/**
 * Storage and transport of events. An engine stores each topic's history and carries live events
 * to every process listening on the topic. It knows nothing of connections: the hub builds the
 * delivery guarantees (hand-over, gap repair, reset) on top of these few calls, once, for every
 * engine.
 */
export interface Engine {
  readonly kind: 'memory' | 'redis';
  /** How much history each topic keeps. */
  readonly retention: RetentionOptions;
  setHandlers(handlers: EngineHandlers): void;
  /** Connects; resolves once the engine can publish and listen. */
  start(): Promise<void>;
  /**
   * Stores the event in history and sends it to the live listeners, in one step. `privateFields`
   * (normalized by the protocol's normalizePrivate) travels with the event, and so does `trace`
   * (a W3C traceparent, see StoredEvent.trace).
   */
  publish(
    topic: string,
    event: string,
    data: string,
    privateFields?: string,
    trace?: string,
  ): Promise<PublishResult>;
  /** Reads history after `after` (exclusive); `after: null` reads only the head (no entries). */
  read(topic: string, after: StreamId | null, limit: number): Promise<HistoryPage>;
  /** Starts live delivery of a topic to `message`; resolves once it is live. */
  listen(topic: string): Promise<void>;
  unlisten(topic: string): Promise<void>;
  /** True while publish, read and live delivery all work. */
  isReady(): boolean;
  close(): Promise<void>;
}

/** Retention of each topic's history. */
export interface RetentionOptions {
  /** @default 1000 */
  maxLen: number;
  /** Seconds; 0 keeps entries regardless of age. @default 86400 */
  maxAgeS: number;
}

export const DEFAULT_RETENTION: RetentionOptions = { maxLen: 1000, maxAgeS: 86400 };
