export * from './create-broadcaster';
export * from './publish';
export { redisClientOptions } from '@streamcast/engine-redis';
