import { z } from 'zod';
import { integerOption, listOption, numberOption } from './options';
import { Dice, fixed2 } from './random';
import { ProducerRuntime } from './runtime';
import type { Emission, ProducerDefinition } from './types';

/** Rough price levels, so the familiar symbols start somewhere believable. */
const BASE_PRICES: Record<string, number> = {
  AAPL: 190,
  GOOGL: 140,
  MSFT: 410,
  TSLA: 250,
  AMZN: 180,
  META: 480,
  NVDA: 120,
  NFLX: 620,
};

export const stocksOptions = z
  .object({
    symbols: listOption(
      'symbols to quote, each on stocks/<SYMBOL>',
      ['AAPL', 'GOOGL', 'MSFT', 'TSLA', 'AMZN'],
      {
        what: '1-12 of A-Z 0-9 . - (as the /api/stocks/:symbol route)',
        pattern: /^[A-Z0-9.-]{1,12}$/,
        normalize: (s) => s.toUpperCase(),
      },
    ),
    intervalMs: integerOption(
      'time between updates (every symbol updates each time)',
      2000,
      10,
      3_600_000,
    ),
    volatility: numberOption('standard deviation of one move, in percent', 0.4, 0, 20),
  })
  .strict();

interface Quote {
  symbol: string;
  topic: string;
  open: number;
  price: number;
}

/**
 * A geometric random walk per symbol, with a slight pull back towards the opening price so a
 * long-running demo does not drift off to zero. `changePercent` is the change since the open
 * (start of the producer), computed from the displayed (rounded) prices.
 */
export const stocksProducer: ProducerDefinition<typeof stocksOptions> = {
  name: 'stocks',
  description:
    'random-walk prices: `priceUpdate` ({symbol, price, changePercent}) on `stocks/<SYMBOL>`',
  options: stocksOptions,
  start(publisher, options, context) {
    const dice = new Dice(context.random);
    const runtime = new ProducerRuntime('stocks', publisher, context);
    const quotes: Quote[] = options.symbols.map((symbol) => {
      const base = BASE_PRICES[symbol] ?? dice.int(20, 500);
      const open = Math.round(base * (0.95 + 0.1 * dice.random()) * 100) / 100;
      return { symbol, topic: `stocks/${symbol}`, open, price: open };
    });
    const sigma = options.volatility / 100;
    runtime.every(
      options.intervalMs,
      (): Emission[] =>
        quotes.map((quote) => {
          const reversion = -0.02 * Math.log(quote.price / quote.open);
          quote.price = Math.max(0.01, quote.price * Math.exp(sigma * dice.normal() + reversion));
          const shown = Math.round(quote.price * 100) / 100;
          return {
            topic: quote.topic,
            event: 'priceUpdate',
            data: {
              symbol: quote.symbol,
              price: fixed2(shown),
              changePercent: fixed2(((shown - quote.open) / quote.open) * 100),
            },
          };
        }),
      0,
    );
    return runtime;
  },
};
