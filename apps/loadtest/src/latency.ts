import * as hdr from 'hdr-histogram-js';

/**
 * Latency histograms (HdrHistogram, microseconds). Client processes record; the runner merges
 * what they send over IPC (HdrHistogram's compressed base64 form) and reads percentiles.
 */
export type LatencyHistogram = hdr.Histogram;

/**
 * A histogram of microseconds. 3 significant digits (any value is off by < 0.1 %) for the
 * overall figures; 2 for the per-second timeline, which needs one histogram per second.
 */
export function latencyHistogram(digits: 2 | 3 = 3): LatencyHistogram {
  return hdr.build({ lowestDiscernibleValue: 1, numberOfSignificantValueDigits: digits });
}

/** Records `us` microseconds (negative values, from clock skew, count as 0). */
export function recordUs(h: LatencyHistogram, us: number): void {
  h.recordValue(us <= 0 ? 0 : Math.round(us));
}

export function encodeHistogram(h: LatencyHistogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(text: string): LatencyHistogram {
  return hdr.decodeFromCompressedBase64(text);
}

/** Adds every encoded histogram into `into`. */
export function mergeInto(into: LatencyHistogram, encoded: Iterable<string>): LatencyHistogram {
  for (const text of encoded) {
    const other = decodeHistogram(text);
    into.add(other);
    other.destroy();
  }
  return into;
}

/**
 * Adds a worker's per-second histograms (encoded) into `into`, second by second. Each second's
 * histogram is one of ours, which grows: a decoded one keeps the range of its own values, and
 * adding another worker's larger values to it would throw.
 */
export function mergeTimeline(
  into: Map<number, LatencyHistogram>,
  encoded: Iterable<[number, string]>,
): void {
  for (const [second, text] of encoded) {
    let have = into.get(second);
    if (!have) into.set(second, (have = latencyHistogram(2)));
    mergeInto(have, [text]);
  }
}

/** The value at `percentile` (0-100) in microseconds; NaN when empty. */
export function percentileUs(h: LatencyHistogram, percentile: number): number {
  return h.totalCount === 0 ? NaN : h.getValueAtPercentile(percentile);
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Percentiles in milliseconds (3 decimals); NaN fields become null in JSON. */
export function summarize(h: LatencyHistogram): LatencySummary {
  const ms = (us: number) => (Number.isFinite(us) ? Math.round(us) / 1000 : NaN);
  return {
    count: h.totalCount,
    p50: ms(percentileUs(h, 50)),
    p90: ms(percentileUs(h, 90)),
    p99: ms(percentileUs(h, 99)),
    p999: ms(percentileUs(h, 99.9)),
    max: ms(h.totalCount === 0 ? NaN : h.maxValue),
    mean: ms(h.totalCount === 0 ? NaN : h.mean),
  };
}

/**
 * The percentile curve, for the distribution chart: points spaced evenly on a "nines" scale
 * (50 %, 90 %, 99 %, 99.9 % … are equally far apart), as HdrHistogram's plots draw it.
 */
export function percentileCurve(h: LatencyHistogram): Array<{ percentile: number; ms: number }> {
  if (h.totalCount === 0) return [];
  const out: Array<{ percentile: number; ms: number }> = [];
  // Up to the percentile that one sample still resolves (1 - 1/count), at most 99.999 %.
  const maxNines = Math.min(5, Math.log10(Math.max(10, h.totalCount)));
  for (let x = 0; x <= maxNines + 1e-9; x += 0.05) {
    const percentile = 100 * (1 - 10 ** -x);
    out.push({ percentile: round(percentile, 4), ms: h.getValueAtPercentile(percentile) / 1000 });
  }
  out.push({ percentile: 100, ms: h.maxValue / 1000 });
  return out;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
