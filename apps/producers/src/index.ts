import type { Publisher } from '@streamcast/publisher';
import { blogProducer } from './blog';
import { chatProducer } from './chat';
import { UsageError } from './errors';
import { parseOptions, type RawOptions } from './options';
import { mulberry32, randomSeed } from './random';
import { socialProducer } from './social';
import { sportsProducer } from './sports';
import { stocksProducer } from './stocks';
import { systemProducer } from './system';
import { tickProducer } from './tick';
import type { Producer, ProducerContext, ProducerDefinition } from './types';

export type { Emission, Producer, ProducerContext, ProducerDefinition } from './types';
export { UsageError } from './errors';
export {
  describeOptions,
  optionInfo,
  parseOptions,
  type RawOption,
  type RawOptions,
} from './options';
export { Dice, mulberry32 } from './random';
export { ProducerRuntime } from './runtime';
export {
  cpuUsage,
  memoryFigures,
  parseMeminfo,
  parseProcStat,
  createSystemProducer,
} from './system';

export type ProducerName = 'stocks' | 'chat' | 'system' | 'sports' | 'social' | 'blog' | 'tick';

/** Every producer, by the name the runner takes (`npm run producer -- <name>`). */
export const producers: Record<ProducerName, ProducerDefinition> = {
  stocks: stocksProducer,
  chat: chatProducer,
  system: systemProducer,
  sports: sportsProducer,
  social: socialProducer,
  blog: blogProducer,
  tick: tickProducer,
};

export const producerNames = Object.keys(producers) as ProducerName[];

export function isProducerName(name: string): name is ProducerName {
  return Object.hasOwn(producers, name);
}

/** Everything of a context but the random source, which the seed decides. */
export type HostContext = Partial<Omit<ProducerContext, 'random'>>;

const stderrLog = (msg: string) => {
  process.stderr.write(`${msg}\n`);
};

/** The definition of `name`, or a UsageError listing the names. */
export function producerDefinition(name: string): ProducerDefinition {
  if (!isProducerName(name)) {
    throw new UsageError(
      `unknown producer ${JSON.stringify(name)} (one of ${producerNames.join(', ')}, all)`,
    );
  }
  return producers[name];
}

/**
 * Validates `rawOptions` (a UsageError of one line naming the bad option) and starts producer
 * `name`, publishing through `publisher`. The same `seed` gives the same sequence of events
 * (timestamps and the system monitor's real figures aside); without one, a fresh seed.
 */
export function startProducer(
  name: string,
  publisher: Publisher,
  rawOptions: RawOptions = {},
  seed?: number,
  context: HostContext = {},
): Producer {
  const definition = producerDefinition(name);
  const options = parseOptions(definition, rawOptions);
  return definition.start(publisher, options, {
    random: mulberry32(seed ?? randomSeed()),
    log: context.log ?? stderrLog,
    onError: context.onError,
    now: context.now,
  });
}

export interface StartAllOptions {
  log?: (msg: string) => void;
  /** As ProducerContext.onError, with the name of the producer that failed. */
  onError?: (err: Error, producer: ProducerName) => void;
  now?: () => number;
  /** Seeds every producer (each its own stream derived from this one). */
  seed?: number;
  /** Start only these. @default every producer */
  only?: ProducerName[];
}

/**
 * Starts every producer at its default (demo) pace, as `npm start` does; `overrides` holds
 * options per producer. Every option is validated before anything starts.
 */
export function startAll(
  publisher: Publisher,
  overrides: Partial<Record<ProducerName, RawOptions>> = {},
  options: StartAllOptions = {},
): Producer {
  for (const name of Object.keys(overrides)) producerDefinition(name);
  const names = options.only ?? producerNames;
  const parsed = names.map(
    (name) => [name, parseOptions(producers[name], overrides[name])] as const,
  );
  const base = options.seed ?? randomSeed();
  const running = parsed.map(([name, opts], i) =>
    producers[name].start(publisher, opts, {
      random: mulberry32((base + Math.imul(i + 1, 0x9e3779b9)) >>> 0),
      log: options.log ?? stderrLog,
      onError: options.onError && ((err: Error) => options.onError?.(err, name)),
      now: options.now,
    }),
  );
  return {
    name: 'all',
    stop: async () => {
      await Promise.all(running.map((p) => p.stop()));
    },
  };
}
