export * from './sse';
export {
  createBroadcaster,
  redisClientOptions,
  type Broadcaster,
  type BroadcasterOptions,
} from '@streamcast/broadcaster';
