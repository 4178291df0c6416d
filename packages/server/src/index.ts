export * from './build-gateway';
export * from './seed-routes';
export * from './run';
export * from './client-script';
