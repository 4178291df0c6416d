export * from './response-sink';
export * from './stream';
export * from './metrics';
export * from './loopback';
export * from './fastify-plugin';
