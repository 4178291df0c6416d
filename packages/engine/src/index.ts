export * from './types';
export * from './epoch';
export * from './memory-engine';
