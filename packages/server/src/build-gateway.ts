import fastifyRedis from '@fastify/redis';
import type { GatewayConfig } from '@streamcast/config';
import { MemoryEngine, type Engine } from '@streamcast/engine';
import { RedisEngine, redisClientOptions } from '@streamcast/engine-redis';
import { streamcast } from '@streamcast/http';
import { Hub } from '@streamcast/hub';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { seedRoutes } from './seed-routes';

export interface Gateway {
  app: FastifyInstance;
  hub: Hub;
  engine: Engine;
}

/**
 * Composes one gateway: the engine chosen by REDIS_URL (Redis, or the embedded memory engine),
 * the hub, and the streamcast Fastify plugin. Listening is the caller's job.
 */
export async function buildGateway(config: GatewayConfig, logger?: Logger): Promise<Gateway> {
  const log = logger ?? pino({ level: config.LOG_LEVEL });
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.MAX_BODY_BYTES,
    // One line per request would be noise at the connection counts a gateway holds.
    logController: new LogController({ disableRequestLogging: true }),
    // Streams are ended in preClose; whatever is left must not hold the process.
    forceCloseConnections: true,
    // A HEAD on a stream route would otherwise open a stream that can carry no body.
    exposeHeadRoutes: false,
  });
  const retention = { maxLen: config.HISTORY_MAX_LEN, maxAgeS: config.HISTORY_MAX_AGE_S };
  let engine: Engine;
  if (config.REDIS_URL) {
    await app.register(fastifyRedis, {
      url: config.REDIS_URL,
      ...redisClientOptions({ connectionName: 'sse-gateway' }),
    });
    const engineLog = log.child({ component: 'engine-redis' });
    app.redis.on('error', (err: Error) => engineLog.debug({ err }, 'redis connection error'));
    engine = new RedisEngine({
      client: app.redis,
      keyPrefix: config.REDIS_PREFIX,
      retention,
      probe: { intervalMs: config.PROBE_INTERVAL_MS, timeoutMs: config.PROBE_TIMEOUT_MS },
      onWarning: (message, detail) => engineLog.warn(detail ?? {}, message),
    });
  } else {
    engine = new MemoryEngine(retention);
  }
  const hub = new Hub(engine, {
    retryMs: config.RETRY_MS,
    heartbeatMs: config.HEARTBEAT_S * 1000,
    maxQueueBytes: config.MAX_QUEUE_BYTES,
    logger: log.child({ component: 'hub' }),
  });
  await hub.start();
  app.addHook('onClose', async () => {
    await engine.close();
  });
  await app.register(streamcast, {
    hub,
    maxTopics: config.MAX_TOPICS,
    maxBodyBytes: config.MAX_BODY_BYTES,
  });
  await app.register(seedRoutes);
  return { app, hub, engine };
}
