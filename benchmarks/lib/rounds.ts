/**
 * The rounds of the scenarios that compare servers (BENCH_ROUNDS): run them in turn, and combine
 * and compare what the rounds gave.
 */
import type { BenchContext } from './context';
import { log } from './report';

/** The middle value (the mean of the two middle ones for an even count); NaN when none is finite. */
export function median(values: number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1
    ? (finite[mid] as number)
    : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}

/**
 * BENCH_ROUNDS rounds of `runs` (each starts its server afresh): every run once a round, in turn,
 * the order reversed every other round so that a machine drifting over minutes weighs on all
 * alike; what each round's runs gave, round by round.
 */
export async function inRounds<T>(
  ctx: BenchContext,
  name: string,
  runs: ReadonlyArray<() => Promise<T[]>>,
): Promise<T[][]> {
  const perRound: T[][] = [];
  const rounds = ctx.params.rounds;
  for (let round = 0; round < rounds; round++) {
    if (rounds > 1) log(`${name}: round ${round + 1} of ${rounds}`);
    const order = round % 2 === 0 ? runs : [...runs].reverse();
    const rows: T[] = [];
    for (const run of order) rows.push(...(await run()));
    perRound.push(rows);
  }
  return perRound;
}

/**
 * `ratio` over the rounds of two rows made of rounds (medianRows, the storm's), paired round by
 * round (the same round's servers ran minutes apart at most): " (rounds a-b x)", or '' without
 * rounds to pair.
 */
export function roundsRange<T extends { rounds?: T[] }>(
  a: T,
  b: T,
  ratio: (a: T, b: T) => number,
): string {
  const ra = a.rounds;
  const rb = b.rounds;
  if (!ra || !rb || ra.length < 2 || ra.length !== rb.length) return '';
  const ratios = ra.map((row, i) => ratio(row, rb[i] as T)).filter(Number.isFinite);
  if (ratios.length === 0) return '';
  return ` (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}x)`;
}

/** How the rows of a scenario in rounds were made, for its heading. */
export function roundsNote(rounds: number): string {
  return rounds > 1
    ? `; ${rounds} rounds (BENCH_ROUNDS), each server started afresh in each, figures their medians`
    : '';
}
