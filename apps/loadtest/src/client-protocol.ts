/** IPC between the runner (ClientPool) and a client process (client-worker.ts). */

/** Where a client process connects. */
export interface ClientTarget {
  host: string;
  port: number;
}

/** One connection to open: target index, request path, topic index (for exact accounting). */
export interface ConnSpec {
  /** Index into the targets of `configure`. */
  t: number;
  path: string;
  /** Topic index: the publisher's sequence numbers are per topic. */
  k: number;
}

export interface WorkerConfig {
  targets: ClientTarget[];
  /** Extra request headers (Authorization, …). */
  headers: Record<string, string>;
  /**
   * Reconnect a lost connection as EventSource does: after the last `retry:` the server sent
   * (else `retryMs`), with `Last-Event-ID` set to the last `id:` received; a target that refuses
   * is left for the next one of the list.
   */
  reconnect: boolean;
  /** @default 3000 */
  retryMs: number;
  /** A connection without its first frame after this long counts as failed. @default 30000 */
  connectTimeoutMs: number;
}

export type ToWorker =
  | { type: 'configure'; config: WorkerConfig }
  | { type: 'open'; conns: ConnSpec[] }
  | { type: 'run'; run: number; timeline: boolean; origin: number }
  | { type: 'window'; start?: number; end?: number }
  | { type: 'snapshot' }
  | { type: 'report' }
  | { type: 'drop' }
  | { type: 'close' };

/** What a client process knows about one connection at the end of a run. */
export interface ConnReport {
  t: number;
  k: number;
  /** Epoch ms of the first frame ever received (the subscription was live then); 0: never. */
  readyAt: number;
  /** Sequence numbers of the current run received, as [from, to] inclusive ranges, flattened. */
  ranges: number[];
  /** Events received again (a sequence number already received). */
  dups: number;
  /** Times the connection was lost after being ready (reconnected or not). */
  drops: number;
  /** Epoch ms the connection was last lost and last resumed (first frame again); 0: never. */
  lostAt: number;
  resumedAt: number;
  /** Open and receiving at the time of the report. */
  open: boolean;
}

export interface WorkerReport {
  type: 'report';
  conns: ConnReport[];
  /** Events of another run (arriving late): ignored. */
  stray: number;
  /** HdrHistogram (µs, compressed base64) of events sent inside the window. */
  histogram: string;
  /** Per second since the run's origin (by send time): [second, histogram] pairs. */
  timeline: Array<[number, string]>;
  errors: WorkerErrors;
  /** Connections lost and not back yet, by where they are: waiting for the retry delay, connecting (no answer yet), answered but no frame yet. */
  down: { waiting: number; connecting: number; answered: number };
}

export interface WorkerErrors {
  /** TCP connect failures, resets before the first frame, timeouts. */
  connect: number;
  /** Answers other than 200, by status. */
  status: Record<string, number>;
  /** Connections closed by the server after being ready. */
  dropped: number;
}

export interface WorkerProgress {
  type: 'progress';
  run: number;
  /** The lowest "next sequence number" over open connections that received something. */
  min: number;
  /** Events of the run received, summed over connections. */
  total: number;
  /** Connections open and ready / waiting to reconnect / failed for good. */
  open: number;
  down: number;
  failed: number;
  errors: number;
}

export type FromWorker =
  | { type: 'hello'; pid: number }
  | { type: 'configured' }
  | { type: 'opened'; ready: number; failed: number }
  | { type: 'run'; run: number }
  | { type: 'window' }
  | { type: 'snapshot'; total: number }
  | WorkerProgress
  | WorkerReport
  | { type: 'dropped'; count: number }
  | { type: 'closed' };
