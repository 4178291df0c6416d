import { RateLimiter } from './rate-limiter';

describe('RateLimiter', () => {
  it('allows a burst of the per-minute rate, then one request per 60/rate seconds', () => {
    const limiter = new RateLimiter(60);
    for (let i = 0; i < 60; i++) expect(limiter.take('a', 0)).toBe(0);
    expect(limiter.take('a', 0)).toBe(1);
    expect(limiter.take('b', 0)).toBe(0);
    expect(limiter.take('a', 999)).toBe(1);
    expect(limiter.take('a', 1000)).toBe(0);
    expect(limiter.take('a', 1000)).toBe(1);
  });

  it('is off at 0', () => {
    const limiter = new RateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(limiter.take('a')).toBe(0);
  });

  it('forgets idle keys first when it holds too many', () => {
    const limiter = new RateLimiter(10, 100);
    for (let i = 0; i < 1000; i++) limiter.take(`k${i}`, i * 10_000);
    expect(limiter.size).toBeLessThanOrEqual(100);
  });
});
