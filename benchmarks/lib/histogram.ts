/**
 * A small log-linear latency histogram in microseconds (HdrHistogram's idea, no dependency):
 * exact below 256 µs, then 128 sub-buckets per power of two, so any recorded value is off by
 * less than 0.8 %. Client processes record, send `toJSON()` over IPC, the runner merges.
 */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
const LINEAR = SUB * 2; // values below this are their own bucket
const MAX_EXP = 40;

function bucketOf(us: number): number {
  if (us < LINEAR) return us;
  const exp = Math.floor(Math.log2(us)) - SUB_BITS; // >= 1
  const sub = Math.floor(us / 2 ** exp) - SUB; // 0..SUB-1 (top bits after the leading one)
  return LINEAR + (exp - 1) * SUB + sub;
}

/** The middle of a bucket's value range. */
function valueOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const exp = Math.floor((bucket - LINEAR) / SUB) + 1;
  const sub = (bucket - LINEAR) % SUB;
  return (SUB + sub + 0.5) * 2 ** exp;
}

export class Histogram {
  private counts = new Float64Array(LINEAR + MAX_EXP * SUB);
  count = 0;
  max = 0;

  /** Records one value in microseconds (negative values, from clock skew, count as 0). */
  record(us: number): void {
    const v = us <= 0 ? 0 : Math.round(us);
    const b = Math.min(bucketOf(v), this.counts.length - 1);
    this.counts[b] = (this.counts[b] as number) + 1;
    this.count++;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
  }

  /** The value at `q` (0..1) in microseconds; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b] as number;
      if (seen >= rank) return Math.min(valueOf(b), this.max);
    }
    return this.max;
  }

  /** Sparse form for IPC: [bucket, count] pairs. */
  toJSON(): { buckets: Array<[number, number]>; max: number } {
    const buckets: Array<[number, number]> = [];
    for (let b = 0; b < this.counts.length; b++) {
      const c = this.counts[b] as number;
      if (c > 0) buckets.push([b, c]);
    }
    return { buckets, max: this.max };
  }

  merge(other: { buckets: Array<[number, number]>; max: number }): void {
    for (const [b, c] of other.buckets) {
      this.counts[b] = (this.counts[b] as number) + c;
      this.count += c;
    }
    if (other.max > this.max) this.max = other.max;
  }
}
