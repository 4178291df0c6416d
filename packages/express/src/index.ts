export * from './sse';
export { Authorizer, Guard, StreamCounter } from '@streamcast/http';
export {
  createBroadcaster,
  redisClientOptions,
  type Broadcaster,
  type BroadcasterOptions,
} from '@streamcast/broadcaster';
