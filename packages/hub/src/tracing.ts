/**
 * What the hub and the HTTP layer need of a tracer, so that none of them depends on an
 * OpenTelemetry SDK: @streamcast/telemetry implements it over @opentelemetry/api. Without one
 * (HubOptions.tracing unset, the default) nothing here costs anything: no span, no context.
 */
export interface Tracing {
  /**
   * Runs `work` inside a new span named `name`, a child of the active one (the HTTP request's),
   * so that what `work` does (Redis commands) is traced under it. `work` gets the span's trace
   * context as a W3C traceparent, to carry with what it stores.
   */
  inSpan<T>(
    name: string,
    attributes: SpanAttributes,
    work: (traceparent: string | undefined) => Promise<T>,
  ): Promise<T>;
  /**
   * Records a span that began at `startMs` (ms since the epoch) and ends now, in a trace of its
   * own, linked to the span whose context is `traceparent` (a delivery to its publish).
   */
  linked(name: string, traceparent: string, attributes: SpanAttributes, startMs: number): void;
}

export type SpanAttributes = Record<string, string | number | boolean>;

/** `work` inside a span when `tracing` is given; just `work` otherwise. */
export function traced<T>(
  tracing: Tracing | undefined,
  name: string,
  attributes: SpanAttributes,
  work: (traceparent: string | undefined) => Promise<T>,
): Promise<T> {
  return tracing ? tracing.inSpan(name, attributes, work) : work(undefined);
}
