import type { CloseReason } from './latency';
import type { Tracing } from './tracing';

/**
 * One event stream to one client, as the hub sees it. The HTTP layer implements it over a
 * Node.js response; the hub never touches HTTP.
 */
export interface Sink {
  /** Sends the status line and stream headers. Called once, when the subscription is live. */
  begin(): void;
  write(chunk: Buffer | string): void;
  /** Bytes written but not yet handed to the kernel: the connection's send queue. */
  readonly bufferedBytes: number;
  /** Resolves once the send queue has drained (or the sink closed). */
  drained(): Promise<void>;
  /** Ends the response after what was written. */
  end(): void;
  /** Drops the connection at once (a client too slow to keep up). */
  destroy(): void;
  /** Called once when the connection is gone, whoever closed it. */
  onClose(listener: () => void): void;
  /**
   * When the stream must end (its token expires), in ms since the epoch; the hub's sweep ends
   * it then, and the client reconnects with a fresh token and resumes.
   */
  readonly expiresAt?: number;
}

/** The subset of pino's logger the hub uses. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

export interface HubOptions {
  /** Reconnection delay sent to clients as `retry:`. @default 3000 */
  retryMs: number;
  /** A silent stream gets a heartbeat comment after this long. @default 15000 */
  heartbeatMs: number;
  /** A connection whose unsent bytes exceed this is dropped; it resumes losslessly. @default 1048576 */
  maxQueueBytes: number;
  /** History entries read per round trip. @default 500 */
  pageSize: number;
  /**
   * A stream is closed after at most this long (0: never), at a random point of its last fifth
   * so that streams opened together do not all close together; it is sent a short `retry:`
   * first and resumes from its cursor. @default 0
   */
  maxLifetimeMs: number;
  logger: Logger;
  /**
   * Spans for publishes, stream set-ups and live deliveries (linked to their publish); unset, no
   * tracing work at all. @default undefined
   */
  tracing?: Tracing;
}

export const DEFAULT_HUB_OPTIONS: HubOptions = {
  retryMs: 3000,
  heartbeatMs: 15000,
  maxQueueBytes: 1024 * 1024,
  pageSize: 500,
  maxLifetimeMs: 0,
  logger: silentLogger,
};

export type ResetReason = 'history-trimmed' | 'history-lost' | 'cursor-unknown';

/** Counters for /metrics; plain numbers, so the hot path pays nothing for them. */
export interface HubStats {
  published: number;
  delivered: number;
  resets: number;
  slowDisconnects: number;
  connectionsOpened: number;
  gapRepairs: number;
  /** Streams ended because their token expired. */
  expired: number;
  /** Streams closed at their maximum lifetime. */
  lifetimeCloses: number;
  /** `reset` events sent, by reason (their sum is `resets`). */
  resetReasons: Record<ResetReason, number>;
  /** Streams ended, by why. */
  closes: Record<CloseReason, number>;
}
