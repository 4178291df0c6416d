export * from './accounting';
export * from './addresses';
export * from './chart';
export * from './client-pool';
export type * from './client-protocol';
export * from './latency';
export * from './publisher';
export * from './run-load-test';
export * from './server-metrics';
