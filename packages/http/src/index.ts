export * from './response-sink';
export * from './stream';
export * from './metrics';
export * from './loopback';
export * from './guard';
export * from './client-error';
export { Authorizer, type AuthorizerOptions, type Principal } from '@streamcast/auth';
export { StreamCounter, type StreamLimits, type StreamCounterOptions } from '@streamcast/limits';
export * from './fastify-plugin';
export {
  createBroadcaster,
  redisClientOptions,
  type Broadcaster,
  type BroadcasterOptions,
} from '@streamcast/broadcaster';
