/**
 * A fixed-bucket histogram of durations, cheap enough for the delivery path: one observation
 * may stand for many deliveries (`observe(ms, n)`), so a fan-out to a thousand streams costs a
 * few clock reads, not a thousand observations. /metrics shows it as a Prometheus histogram.
 */
export class DurationHistogram {
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array;
  count = 0;
  /** Sum of the observed durations, in seconds. */
  sum = 0;

  constructor(
    /** Upper bounds of the buckets, in seconds, ascending. */
    readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Counts `n` observations of `ms` milliseconds (clamped at 0: clocks of two hosts). */
  observe(ms: number, n = 1): void {
    const s = ms > 0 ? ms / 1000 : 0;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && s > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + n;
    this.count += n;
    this.sum += s * n;
  }
}

/** Buckets of publish→write and pub/sub latencies, in seconds. */
export const DELIVERY_BUCKETS_S = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** Buckets of engine (Redis) command round trips, in seconds. */
export const COMMAND_BUCKETS_S = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
];

/** Why a stream ended, as `sse_connections_closed_total{reason}` counts it. */
export type CloseReason =
  'client' | 'drain' | 'shutdown' | 'lifetime' | 'slow' | 'token_expired' | 'error';

export const CLOSE_REASONS: readonly CloseReason[] = [
  'client',
  'drain',
  'shutdown',
  'lifetime',
  'slow',
  'token_expired',
  'error',
];

/** The time part of a stream id, `<ms>-<seq>`: when the event was stored, in ms. */
export function storedMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}
