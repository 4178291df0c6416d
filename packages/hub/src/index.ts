export * from './types';
export * from './hub';
export { DurationHistogram, CLOSE_REASONS, type CloseReason } from './latency';
export { traced, type Tracing, type SpanAttributes } from './tracing';
