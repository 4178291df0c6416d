export * from './response-sink';
export * from './stream';
export * from './metrics';
export * from './loopback';
export * from './fastify-plugin';
export {
  createBroadcaster,
  redisClientOptions,
  type Broadcaster,
  type BroadcasterOptions,
} from '@streamcast/broadcaster';
