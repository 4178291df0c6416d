import fastifyRedis from '@fastify/redis';
import type { GatewayConfig } from '@streamcast/config';
import { MemoryEngine, type Engine } from '@streamcast/engine';
import { RedisClusterEngine, RedisEngine, createRedisClient } from '@streamcast/engine-redis';
import { clientErrorHandler, frameworkErrors, streamcast } from '@streamcast/fastify';
import { Hub, type Tracing } from '@streamcast/hub';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type Redis from 'ioredis';
import pino, { type Logger } from 'pino';
import { clientScriptRoute } from './client-script';
import { quitRedis } from './quit-redis';
import { buildGuard } from './security';
import { seedRoutes } from './seed-routes';
import { fastifyCompilersOnDemand } from './schema-compilers';
import { sharedChildLogger } from './shared-child-logger';
import { registerWebPages, resolveWebRoot } from './web-pages';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when enabled (below)
const uploads = () => require('@streamcast/uploads') as typeof import('@streamcast/uploads');

export interface Gateway {
  app: FastifyInstance;
  hub: Hub;
  engine: Engine;
}

/**
 * Composes one gateway: the engine chosen by REDIS_URL / REDIS_SENTINELS / REDIS_CLUSTER_NODES (Redis, Redis Cluster,
 * or the embedded memory engine),
 * the hub, and the streamcast Fastify plugin. Listening is the caller's job.
 */
export async function buildGateway(
  config: GatewayConfig,
  logger?: Logger,
  /** Spans of publishes, stream set-ups and deliveries (@streamcast/telemetry); off unset. */
  tracing?: Tracing,
): Promise<Gateway> {
  const log = logger ?? pino({ level: config.LOG_LEVEL });
  const app = Fastify({
    loggerInstance: sharedChildLogger(log),
    bodyLimit: config.MAX_BODY_BYTES,
    // One line per request would be noise at the connection counts a gateway holds.
    logController: new LogController({ disableRequestLogging: true }),
    // Streams are ended in preClose; whatever is left must not hold the process.
    forceCloseConnections: true,
    // HEAD on every GET route (a balancer's health check, a link checker): stream routes answer
    // their headers and end (serveStream), never a stream that could carry no body.
    exposeHeadRoutes: true,
    // Behind a balancer: which peers' X-Forwarded-For gives the client IP (limits, loopback).
    trustProxy: config.TRUST_PROXY,
    // Malformed HTTP and undecodable URLs get the API's error shape too (and no echo of the URL).
    clientErrorHandler,
    frameworkErrors,
    // Ajv and fast-json-stringify load only if a route has a schema: none of the gateway's has.
    schemaController: { compilersFactory: fastifyCompilersOnDemand },
  });
  const retention = { maxLen: config.HISTORY_MAX_LEN, maxAgeS: config.HISTORY_MAX_AGE_S };
  let engine: Engine;
  const client = createRedisClient(config, { connectionName: 'sse-gateway' });
  if (client) {
    // With Sentinels the client follows the master; a Cluster client follows the slot map.
    // Closed by the onClose hook below, after the engine (quitRedis).
    await app.register(fastifyRedis, { client, closeClient: false });
    const engineLog = log.child({ component: 'engine-redis' });
    app.redis.on('error', (err: Error) => engineLog.debug({ err }, 'redis connection error'));
    const engineOptions = {
      keyPrefix: config.REDIS_PREFIX,
      retention,
      probe: { intervalMs: config.PROBE_INTERVAL_MS, timeoutMs: config.PROBE_TIMEOUT_MS },
      onWarning: (message: string, detail?: object) => engineLog.warn(detail ?? {}, message),
    };
    engine = client.isCluster
      ? new RedisClusterEngine({ client: client as import('ioredis').Cluster, ...engineOptions })
      : new RedisEngine({ client: client as Redis, ...engineOptions });
  } else {
    engine = new MemoryEngine(retention);
  }
  const hub = new Hub(engine, {
    retryMs: config.RETRY_MS,
    heartbeatMs: config.HEARTBEAT_S * 1000,
    maxQueueBytes: config.MAX_QUEUE_BYTES,
    maxLifetimeMs: config.STREAM_MAX_LIFETIME_S * 1000,
    logger: log.child({ component: 'hub' }),
    tracing,
  });
  await hub.start();
  app.addHook('onClose', async () => {
    await engine.close();
    if (client) await quitRedis(client);
  });
  await app.register(streamcast, {
    hub,
    maxTopics: config.MAX_TOPICS,
    maxBodyBytes: config.MAX_BODY_BYTES,
    guard: buildGuard(config, client ? app.redis : undefined, log),
    corsOrigins: config.CORS_ORIGINS,
    metricsTopics: config.METRICS_TOPICS,
  });
  await app.register(seedRoutes);
  // GET /streamcast-client.js: the browser client (@streamcast/client) as a plain script.
  await app.register(clientScriptRoute);
  // POST /api/upload: queued on BullMQ with Redis, processed in this process without.
  // Loaded only then: the multipart parser and the upload pipeline are a few MB of heap.
  if (config.UPLOADS_ENABLED) await app.register(uploads().uploadRoutes, { config });
  // The demo pages (WEB_ROOT): static files, registered after the API routes.
  const webRoot = resolveWebRoot(config.WEB_ROOT);
  if (webRoot) await registerWebPages(app, webRoot);
  return { app, hub, engine };
}
