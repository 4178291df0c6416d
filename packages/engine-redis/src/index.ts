export * from './keys';
export * from './redis-engine';
