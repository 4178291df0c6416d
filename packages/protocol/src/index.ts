export * from './errors';
export * from './names';
export * from './stream-id';
export * from './cursor';
export * from './frame';
export * from './timeout';
export * from './private-fields';
export * from './data';
