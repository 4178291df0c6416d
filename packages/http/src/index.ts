// What the Express handler (@streamcast/express) and the Fastify plugin (@streamcast/fastify)
// share; nothing here imports a web framework.
export * from './response-sink';
export * from './stream';
export * from './poll';
export * from './metrics';
export * from './loopback';
export * from './linger';
export * from './guard';
export { Authorizer, type AuthorizerOptions, type Principal } from '@streamcast/auth';
export { StreamCounter, type StreamLimits, type StreamCounterOptions } from '@streamcast/limits';
