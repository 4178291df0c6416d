export * from './wait';
export * from './ports';
export * from './redis';
export * from './sse-client';
export * from './gateway-process';
export * from './env';
export * from './memory-sink';
export * from './fault-proxy';
