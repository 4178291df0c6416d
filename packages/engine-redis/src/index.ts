export * from './keys';
export * from './redis-engine';
export * from './redis-connection';
export * from './redis-cluster-engine';
