export * from './types';
export * from './hub';
export { DurationHistogram, CLOSE_REASONS, type CloseReason } from './latency';
