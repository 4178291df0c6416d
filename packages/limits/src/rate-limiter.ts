/**
 * A token bucket per key (a token's subject, or a client IP): `perMinute` on average, in
 * bursts of up to `perMinute`. In process memory: the rate is per gateway.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  /**
   * @param perMinute requests a minute per key; 0 turns the limiter off
   * @param maxKeys keys remembered at most; past it, full buckets (idle keys) are forgotten first
   */
  constructor(
    readonly perMinute: number,
    private readonly maxKeys = 100_000,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /**
   * Takes `count` requests for `key` at once, all or none: 0 when allowed, else the seconds
   * until they will be. A count above `perMinute` never is: the caller refuses it first.
   */
  take(key: string, now = Date.now(), count = 1): number {
    if (this.perMinute <= 0) return 0;
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * this.perMs);
      bucket.at = now;
    } else {
      if (this.buckets.size >= this.maxKeys) this.prune(now);
      bucket = { tokens: this.perMinute, at: now };
      this.buckets.set(key, bucket);
    }
    if (bucket.tokens >= count) {
      bucket.tokens -= count;
      return 0;
    }
    return Math.max(1, Math.ceil((count - bucket.tokens) / this.perMs / 1000));
  }

  /** Gives back `count` requests taken for `key` that were then refused (never above the burst). */
  give(key: string, count: number): void {
    const bucket = this.buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.perMinute, bucket.tokens + count);
  }

  /** Number of keys remembered (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * this.perMs >= this.perMinute)
        this.buckets.delete(key);
    }
    // Every key is busy: forget the oldest (a fresh bucket errs on the client's side).
    for (const key of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) break;
      this.buckets.delete(key);
    }
  }
}
