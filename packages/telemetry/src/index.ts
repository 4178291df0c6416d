import type * as OtelApi from '@opentelemetry/api';
import type { SpanAttributes, Tracing } from '@streamcast/hub';

/*
 * OpenTelemetry traces of a gateway, off by default. The standard variables turn them on
 * (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and
 * configure them (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, …, read by
 * the SDK itself); OTEL_SDK_DISABLED=true keeps them off. Off, the SDK and its instrumentations
 * are never loaded, and the hub gets no Tracing: no span, no context, nothing per event.
 */

export interface Telemetry {
  /** For HubOptions.tracing. */
  readonly tracing: Tracing;
  /** Flushes and stops the SDK (on exit). */
  shutdown(): Promise<void>;
}

type Env = Record<string, string | undefined>;

/** Whether the OTEL_* variables ask for traces. */
export function tracesRequested(env: Env = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (exporters.length > 0) return !exporters.includes('none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts the SDK when the environment asks for traces, with the ioredis and Fastify
 * instrumentations: call it before ioredis or fastify is loaded (first thing in a main), or
 * their spans are missing. Only traces are exported: metrics stay on /metrics.
 */
export function startTelemetry(serviceName: string, env: Env = process.env): Telemetry | undefined {
  if (!tracesRequested(env)) return undefined;
  // Loaded only now: a gateway without tracing never has the SDK in memory.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const api = require('@opentelemetry/api') as typeof OtelApi;
  const { NodeSDK } =
    require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { IORedisInstrumentation } =
    require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  const { FastifyOtelInstrumentation } = require('@fastify/otel') as typeof import('@fastify/otel');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const sdk = new NodeSDK({
    // OTEL_SERVICE_NAME, when set, names the service instead.
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName }),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      // Only commands inside a span (a publish, a stream's set-up): not the readiness probe's
      // PUBLISH every second.
      new IORedisInstrumentation({ requireParentSpan: true }),
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        // Probes and scrapes would be most of the traces and tell nothing.
        ignorePaths: (route: { url: string }) =>
          /^\/(healthz|readyz|metrics)(\?|$)/.test(route.url),
      }),
    ],
  });
  sdk.start();
  return {
    tracing: otelTracing(api, api.trace.getTracer('streamcast')),
    shutdown: () => sdk.shutdown(),
  };
}

/** Tracing (see @streamcast/hub) over an OpenTelemetry tracer. */
export function otelTracing(api: typeof OtelApi, tracer: OtelApi.Tracer): Tracing {
  const { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } = api;
  return {
    inSpan(name, attributes, work) {
      const kind = name === 'streamcast.publish' ? SpanKind.PRODUCER : SpanKind.INTERNAL;
      return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
        const carrier: Record<string, string> = {};
        propagation.inject(context.active(), carrier);
        try {
          return await work(carrier.traceparent);
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
          throw err;
        } finally {
          span.end();
        }
      });
    },
    linked(name: string, traceparent: string, attributes: SpanAttributes, startMs: number) {
      const publish = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, { traceparent }));
      const span = tracer.startSpan(
        name,
        {
          kind: SpanKind.CONSUMER,
          attributes,
          startTime: startMs,
          links: publish ? [{ context: publish }] : [],
        },
        ROOT_CONTEXT,
      );
      span.end();
    },
  };
}
