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

  it('takes a count at once, all or none (a batch of publishes)', () => {
    const limiter = new RateLimiter(60);
    expect(limiter.take('a', 0, 50)).toBe(0);
    // 10 left: 11 are refused whole, and nothing is taken.
    expect(limiter.take('a', 0, 11)).toBe(1);
    expect(limiter.take('a', 0, 10)).toBe(0);
    expect(limiter.take('a', 0, 5)).toBe(5);
    expect(limiter.take('c', 0, 60)).toBe(0);
    expect(limiter.take('c', 0, 30)).toBe(30);
  });

  it('gives back what was taken and then refused, never above the burst', () => {
    const limiter = new RateLimiter(60);
    expect(limiter.take('a', 0, 60)).toBe(0);
    limiter.give('a', 2);
    expect(limiter.take('a', 0, 2)).toBe(0);
    expect(limiter.take('a', 0, 1)).toBe(1);
    limiter.give('b', 5); // unknown key: nothing to give back
    limiter.give('a', 1000);
    expect(limiter.take('a', 0, 60)).toBe(0);
    expect(limiter.take('a', 0, 1)).toBe(1);
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
