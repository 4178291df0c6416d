import { parseArgs } from './args';
import { UsageError } from './errors';
import { parseOptions, producers, startProducer } from './index';
import { RecordingPublisher } from './test-support';

describe('producer options', () => {
  it('gives every default when nothing is set', () => {
    expect(parseOptions(producers.stocks)).toEqual({
      symbols: ['AAPL', 'GOOGL', 'MSFT', 'TSLA', 'AMZN'],
      intervalMs: 2000,
      volatility: 0.4,
    });
    expect(parseOptions(producers.chat)).toEqual({
      users: ['Alice', 'Bob', 'Charlie', 'Diana'],
      messageMs: 5000,
      joinMs: 10_000,
      leaveMs: 15_000,
    });
    expect(parseOptions(producers.sports)).toMatchObject({
      matches: ['123', '456', '789'],
      minuteMs: 1000,
      restart: true,
    });
    expect(parseOptions(producers.tick)).toEqual({ intervalMs: 1000, message: '实时数据' });
    expect(parseOptions(producers.system)).toEqual({ intervalMs: 2000 });
  });

  it('takes command-line strings, arrays and kebab-case names', () => {
    expect(
      parseOptions(producers.stocks, { symbols: 'aapl, msft,AAPL', 'interval-ms': '500' }),
    ).toMatchObject({
      symbols: ['AAPL', 'MSFT'],
      intervalMs: 500,
    });
    expect(
      parseOptions(producers.stocks, { symbols: ['nvda', 'tsla,meta'], intervalMs: 250 }).symbols,
    ).toEqual(['NVDA', 'TSLA', 'META']);
    expect(parseOptions(producers.sports, { restart: 'false' }).restart).toBe(false);
    expect(parseOptions(producers.sports, { restart: true }).restart).toBe(true);
  });

  it.each([
    [
      'stocks',
      { intervalMs: 'abc' },
      'stocks: --intervalMs must be an integer 10-3600000 (got "abc")',
    ],
    [
      'stocks',
      { intervalMs: '1.5' },
      'stocks: --intervalMs must be an integer 10-3600000 (got "1.5")',
    ],
    [
      'stocks',
      { symbols: 'AAPL,no way' },
      'stocks: --symbols items must be 1-12 of A-Z 0-9 . - (as the /api/stocks/:symbol route) (got "no way")',
    ],
    ['stocks', { symbols: ' , ' }, 'stocks: --symbols must list 1-100 items (got " , ")'],
    ['stocks', { volatility: '-1' }, 'stocks: --volatility must be a number 0-20 (got "-1")'],
    ['chat', { messageMs: true }, 'chat: --messageMs must be an integer 10-3600000 (got true)'],
    ['sports', { restart: 'maybe' }, 'sports: --restart must be true or false (got "maybe")'],
    [
      'sports',
      { matches: '12/3' },
      'sports: --matches items must be 1-64 of A-Z a-z 0-9 _ - (as the /api/match/:id route) (got "12/3")',
    ],
    [
      'chat',
      { pace: '1' },
      'chat: unknown option --pace (options: --users, --messageMs, --joinMs, --leaveMs, --seed)',
    ],
  ] as const)('refuses %s %j with one line naming the option', (name, raw, message) => {
    const run = () => parseOptions(producers[name], raw);
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
    expect(message).not.toContain('\n');
  });

  it('refuses an unknown producer, naming the known ones', () => {
    expect(() => startProducer('stonks', new RecordingPublisher())).toThrow(
      'unknown producer "stonks" (one of stocks, chat, system, sports, social, blog, tick, all)',
    );
  });
});

describe('runner command line', () => {
  it('reads the name, options in both spellings, repeats, flags and the seed', () => {
    expect(
      parseArgs([
        'stocks',
        '--symbols',
        'AAPL',
        '--symbols=MSFT',
        '--intervalMs=500',
        '--seed',
        '42',
      ]),
    ).toEqual({
      name: 'stocks',
      help: false,
      seed: 42,
      options: { symbols: ['AAPL', 'MSFT'], intervalMs: '500' },
    });
    expect(parseArgs(['sports', '--restart', '--minuteMs', '10'])).toMatchObject({
      options: { restart: true, minuteMs: '10' },
    });
    expect(parseArgs(['--help'])).toMatchObject({ name: undefined, help: true });
    expect(parseArgs(['stocks', '--volatility', '-1']).options).toEqual({ volatility: '-1' });
    expect(parseArgs(['all', '--sports.minuteMs', '5']).options).toEqual({
      'sports.minuteMs': '5',
    });
  });

  it.each([
    [
      ['stocks', 'AAPL'],
      'unexpected argument "AAPL" (values follow their option: --symbols AAPL,MSFT)',
    ],
    [['stocks', '-x'], 'unknown flag -x'],
    [['stocks', '--seed', 'abc'], '--seed must be an integer 0-4294967295 (got "abc")'],
    [['stocks', '--seed'], '--seed must be an integer 0-4294967295 (got "")'],
    [['stocks', '--=1'], 'bad option name "--=1"'],
  ])('refuses %j', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
  });
});
