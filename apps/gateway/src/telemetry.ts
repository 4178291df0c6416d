import { startTelemetry } from '@streamcast/telemetry';

/**
 * Imported first by main.ts: the OpenTelemetry SDK (when OTEL_* variables turn traces on) must
 * start before fastify and ioredis are loaded, so that their instrumentations apply.
 */
export const telemetry = startTelemetry('streamcast-gateway');
