import {
  DEMO_PUBLIC_TOPICS,
  defineVar,
  envSchema,
  gatewayEnv,
  invalid,
  loadEnvOrExit,
  publicTopicsVar,
} from '@streamcast/config';
import { producerNames, startAll, type ProducerName } from '@streamcast/producers';
import { createPublisher } from '@streamcast/publisher';
import { buildGateway, listenUntilSignalled } from '@streamcast/server';
import { startUploadWorker, uploadSettings } from '@streamcast/uploads';
import { redisConnection } from '@streamcast/engine-redis';

/**
 * `npm start`: the whole product in one process, nothing to install: one gateway (the
 * embedded memory engine unless REDIS_URL is set) and every producer publishing into it.
 */
const schema = envSchema({
  ...gatewayEnv,
  // The demo pages work out of the box even when JWT keys are configured.
  PUBLIC_TOPICS: publicTopicsVar(DEMO_PUBLIC_TOPICS),
  PRODUCERS: defineVar((raw): ProducerName[] => {
    const text = raw === undefined || raw === '' ? 'all' : raw;
    if (text === 'all') return producerNames;
    if (text === 'none') return [];
    const names = text.split(',').map((n) => n.trim());
    for (const name of names) {
      if (!(producerNames as string[]).includes(name)) {
        return invalid(
          `PRODUCERS must be all, none or a comma list of ${producerNames.join(', ')} (got ${JSON.stringify(raw)})`,
        );
      }
    }
    return names as ProducerName[];
  }),
});

async function main(): Promise<void> {
  const config = loadEnvOrExit(schema);
  const { app, hub, engine } = await buildGateway(config);
  const publisher = await createPublisher({ hub });
  const log = app.log.child({ component: 'producers' });
  const producers = startAll(
    publisher,
    {},
    {
      only: config.PRODUCERS,
      log: (msg) => log.info(msg),
      onError: (err, name) => log.warn({ err, producer: name }, 'publish failed'),
    },
  );
  // With Redis the gateway queues uploads on BullMQ: run a worker here too (without Redis the
  // gateway processes them in-process by itself).
  const connection = redisConnection(config);
  const uploads = connection
    ? await startUploadWorker({
        connection,
        keyPrefix: config.REDIS_PREFIX,
        settings: uploadSettings(config),
        publish: publisher.publish,
        logger: app.log.child({ component: 'upload-worker' }),
      })
    : undefined;
  await listenUntilSignalled(app, {
    port: config.PORT,
    host: config.HOST,
    drainMs: config.DRAIN_S * 1000,
    drain: (ms) => hub.drain(ms),
    beforeClose: async () => {
      await Promise.all([producers.stop(), uploads?.close()]);
    },
  });
  app.log.info(
    { engine: engine.kind, port: config.PORT, producers: config.PRODUCERS },
    `streamcast running: http://localhost:${config.PORT}/events?topic=events`,
  );
}

main().catch((err) => {
  process.stderr.write(`streamcast: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
