export * from './build-gateway';
export * from './seed-routes';
export * from './run';
