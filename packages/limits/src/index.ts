export * from './keys';
export * from './rate-limiter';
export * from './stream-counter';
