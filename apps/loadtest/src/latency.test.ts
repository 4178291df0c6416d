import {
  encodeHistogram,
  latencyHistogram,
  mergeTimeline,
  percentileUs,
  recordUs,
  type LatencyHistogram,
} from './latency';

/** A worker's encoded timeline: second → the latencies recorded in it (µs). */
function workerTimeline(seconds: Record<number, number[]>): Array<[number, string]> {
  return Object.entries(seconds).map(([second, values]) => {
    const h = latencyHistogram(2);
    for (const us of values) recordUs(h, us);
    const text = encodeHistogram(h);
    h.destroy();
    return [Number(second), text];
  });
}

describe('mergeTimeline', () => {
  it("adds a worker's larger latencies to a second another worker filled first", () => {
    const into = new Map<number, LatencyHistogram>();
    // The first worker saw only sub-millisecond latencies; the second, a 50 ms one in the same
    // second (a decoded histogram sized for the first would refuse it).
    mergeTimeline(into, workerTimeline({ 0: [300, 400, 500], 1: [200] }));
    mergeTimeline(into, workerTimeline({ 0: [50_000], 2: [900] }));
    expect([...into.keys()].sort()).toEqual([0, 1, 2]);
    const first = into.get(0) as LatencyHistogram;
    expect(first.totalCount).toBe(4);
    expect(percentileUs(first, 100)).toBeGreaterThanOrEqual(49_500);
    expect(percentileUs(first, 100)).toBeLessThanOrEqual(50_500);
    expect((into.get(1) as LatencyHistogram).totalCount).toBe(1);
    expect((into.get(2) as LatencyHistogram).totalCount).toBe(1);
    for (const h of into.values()) h.destroy();
  });
});
