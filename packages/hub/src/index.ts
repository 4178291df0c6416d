export * from './types';
export * from './hub';
