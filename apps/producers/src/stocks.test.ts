import { validateEvent } from '@streamcast/events';
import { runProducer } from './test-support';

interface PriceUpdate {
  symbol: string;
  price: string;
  changePercent: string;
}

describe('stocks producer', () => {
  it('publishes valid priceUpdates on stocks/<SYMBOL> for every symbol, walking the price', async () => {
    const events = await runProducer(
      'stocks',
      { symbols: 'aapl,BRK.B,X-1', intervalMs: 10 },
      7,
      90,
    );
    for (const e of events) expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
    expect(new Set(events.map((e) => e.topic))).toEqual(
      new Set(['stocks/AAPL', 'stocks/BRK.B', 'stocks/X-1']),
    );
    for (const symbol of ['AAPL', 'BRK.B', 'X-1']) {
      const updates = events
        .filter((e) => e.topic === `stocks/${symbol}`)
        .map((e) => e.data as PriceUpdate);
      expect(updates.length).toBeGreaterThanOrEqual(30);
      for (const u of updates) {
        expect(u.symbol).toBe(symbol);
        expect(u.price).toMatch(/^\d+\.\d{2}$/);
        expect(u.changePercent).toMatch(/^-?\d+\.\d{2}$/);
        expect(u.changePercent).not.toBe('-0.00');
      }
      const prices = updates.map((u) => Number(u.price));
      expect(new Set(prices).size).toBeGreaterThan(10); // it moves
      // The change is relative to one opening price: open = price / (1 + change), the same for all.
      const opens = updates.map((u) => Number(u.price) / (1 + Number(u.changePercent) / 100));
      for (const open of opens)
        expect(Math.abs(open - (opens[0] as number)) / open).toBeLessThan(0.001);
      // A random walk, not a jump: each move is small (volatility 0.4%).
      for (let i = 1; i < prices.length; i++) {
        expect(Math.abs((prices[i] as number) / (prices[i - 1] as number) - 1)).toBeLessThan(0.03);
      }
    }
    expect((events.find((e) => e.topic === 'stocks/AAPL')?.data as PriceUpdate).price).toMatch(
      /^1\d\d\.\d\d$/,
    );
  });

  it('gives the same sequence for the same seed, another for another seed', async () => {
    const options = { intervalMs: 10 };
    const a = await runProducer('stocks', options, 42, 50);
    const b = await runProducer('stocks', options, 42, 50);
    const c = await runProducer('stocks', options, 43, 50);
    expect(b.slice(0, 50)).toEqual(a.slice(0, 50));
    expect(c.slice(0, 50)).not.toEqual(a.slice(0, 50));
  });
});
