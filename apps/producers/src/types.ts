import type { Publisher } from '@streamcast/publisher';
import type { z } from 'zod';

/** A running producer: started on creation, publishing until stop(). */
export interface Producer {
  readonly name: string;
  /**
   * Clears the producer's timers; resolves once no more publishes will happen (after the one in
   * flight, if any, has settled). Safe to call more than once.
   */
  stop(): Promise<void>;
}

/** What a producer gets from whoever starts it. */
export interface ProducerContext {
  /** Uniform in [0, 1); seeded for deterministic output (see `mulberry32`). */
  random: () => number;
  /** One line for people (startup, recovery); never called per event. */
  log: (msg: string) => void;
  /**
   * Failed publishes and unexpected errors, throttled: the first of a run of failures, then at
   * most one per 10 s. When absent they go to `log`. A failure never stops the producer.
   */
  onError?: (err: Error) => void;
  /** Wall clock for timestamps inside payloads. @default Date.now */
  now?: () => number;
}

/** The options of every producer are a zod object whose fields are all optional with defaults. */
export type OptionsSchema = z.ZodObject;

export interface ProducerDefinition<S extends OptionsSchema = OptionsSchema> {
  /** Short name, as typed on the command line (`npm run producer -- <name>`). */
  name: string;
  /** One line: what it publishes, on which topics. */
  description: string;
  /** Options; `options.parse({})` gives every default. Values may be strings (command line). */
  options: S;
  start(publisher: Publisher, options: z.output<S>, context: ProducerContext): Producer;
}

/** One event to publish. */
export interface Emission {
  topic: string;
  event: string;
  data: unknown;
}
