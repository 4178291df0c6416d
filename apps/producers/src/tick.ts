import { z } from 'zod';
import { integerOption, textOption } from './options';
import { ProducerRuntime } from './runtime';
import type { ProducerDefinition } from './types';

/** The seed's first example: `{timestamp, message}` on `events` every second. */
export const tickOptions = z
  .object({
    intervalMs: integerOption('time between events', 1000, 10, 3_600_000),
    message: textOption('the message text', '实时数据'),
  })
  .strict();

export const tickProducer: ProducerDefinition<typeof tickOptions> = {
  name: 'tick',
  description: 'a `message` event ({timestamp, message}) on `events` at a steady pace',
  options: tickOptions,
  start(publisher, options, context) {
    const runtime = new ProducerRuntime('tick', publisher, context);
    runtime.every(
      options.intervalMs,
      () => [
        {
          topic: 'events',
          event: 'message',
          data: { timestamp: runtime.now(), message: options.message },
        },
      ],
      0,
    );
    return runtime;
  },
};
