export * from './fastify-plugin';
export * from './client-error';
export { Authorizer, Guard, StreamCounter } from '@streamcast/http';
export {
  createBroadcaster,
  redisClientOptions,
  type Broadcaster,
  type BroadcasterOptions,
} from '@streamcast/broadcaster';
