import { medianRows, ratioLines, type DeliveryRow } from '../benchmarks/lib/delivery';
import { median, roundsRange } from '../benchmarks/lib/rounds';

/**
 * The benchmark's rounds (BENCH_ROUNDS): the figures it reports against Nchan are medians over
 * rounds, so how they are combined decides verdicts. Pure functions, checked on made-up rows.
 */
function row(server: string, load: string, over: Partial<DeliveryRow> = {}): DeliveryRow {
  return {
    server,
    load,
    eventsPerSec: 20,
    deliveriesPerSec: 20_000,
    p50: 5_000,
    p99: 15_000,
    max: 20_000,
    expected: 100_000,
    lost: 0,
    duplicated: 0,
    dropped: 0,
    publishErrors: 0,
    serverCpu: 0.2,
    redisCpu: 0.01,
    otherCpu: 0.3,
    foreignCpu: 0,
    rssPeak: 100e6,
    loopP99Ms: 10,
    loopMaxMs: 20,
    gcMsPerS: 1,
    gcPauses: 5,
    ...over,
  };
}

describe('median', () => {
  it('takes the middle value, the mean of the two middle ones, and skips what is not finite', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 7, 1, Infinity, 5])).toBe(5);
    expect(median([NaN])).toBeNaN();
  });
});

describe('medianRows', () => {
  const rounds = [
    [
      row('streamcast', '20/s', { p99: 14_000, rssPeak: 118e6 }),
      row('nchan', '20/s', { p99: 17_000 }),
    ],
    // The order of a reversed round does not matter: rows pair by server and load.
    [
      row('nchan', '20/s', { p99: 30_000 }),
      row('streamcast', '20/s', { p99: 38_000, rssPeak: 121e6, max: 90_000 }),
    ],
    [
      row('streamcast', '20/s', { p99: 16_000, rssPeak: 119e6, lost: 2 }),
      row('nchan', '20/s', { p99: 15_000 }),
    ],
  ];
  const [ours, nchan] = medianRows(rounds);

  it('gives one row per server and load, in the first round order, with each figure its median', () => {
    expect(ours?.server).toBe('streamcast');
    expect(nchan?.server).toBe('nchan');
    // One disturbed round (38 ms) does not decide the figure.
    expect(ours?.p99).toBe(16_000);
    expect(nchan?.p99).toBe(17_000);
    expect(ours?.rssPeak).toBe(119e6);
    expect(ours?.rounds?.map((r) => r.p99)).toEqual([14_000, 38_000, 16_000]);
  });

  it('keeps the highest max and sums what was lost, so that no round can hide a loss', () => {
    expect(ours?.max).toBe(90_000);
    expect(ours?.lost).toBe(2);
    expect(ours?.expected).toBe(300_000);
  });

  it('ranges the ratio over the rounds, paired round by round', () => {
    expect(roundsRange(ours as DeliveryRow, nchan as DeliveryRow, (a, b) => a.p99 / b.p99)).toBe(
      ' (rounds 0.82-1.27x)',
    );
    // A single round has no range.
    const [single] = medianRows([[row('streamcast', '20/s')]]);
    expect(roundsRange(single as DeliveryRow, single as DeliveryRow, () => 1)).toBe('');
  });

  it('judges the target on the medians, with the range beside it', () => {
    const [line] = ratioLines(medianRows(rounds), 'fan-out');
    expect(line).toContain('p99 16.0 vs 17.0 ms = 0.94x (rounds 0.82-1.27x) (target <= 1: met)');
  });
});
