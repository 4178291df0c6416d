/** Figures scraped from a gateway's `GET /metrics` (Prometheus text format). */

/** The series the report keeps: counters as deltas over the run, gauges as read at the end. */
export const COUNTERS = [
  'sse_events_published_total',
  'sse_events_delivered_total',
  'sse_connections_opened_total',
  'sse_slow_client_disconnects_total',
  'sse_resets_total',
  'sse_gap_repairs_total',
  'process_cpu_seconds_total',
] as const;
export const GAUGES = [
  'sse_connections',
  'sse_topics',
  'process_resident_memory_bytes',
  'nodejs_heap_size_used_bytes',
] as const;

/** Every series of the text, summed over labels: name → value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[2]);
    if (!Number.isFinite(value)) continue;
    out.set(m[1] as string, (out.get(m[1] as string) ?? 0) + value);
  }
  return out;
}

/** The metrics of `baseUrl`, or undefined when it has none (Nchan, a balancer, an error). */
export async function scrapeMetrics(
  baseUrl: string,
  headers: Record<string, string> = {},
): Promise<Map<string, number> | undefined> {
  try {
    const res = await fetch(new URL('/metrics', baseUrl), {
      headers,
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) return undefined;
    const metrics = parseMetrics(await res.text());
    return metrics.has('sse_connections') ? metrics : undefined;
  } catch {
    return undefined;
  }
}

export interface ServerFigures {
  url: string;
  /** False when the URL answered no streamcast metrics. */
  available: boolean;
  /** Counter deltas over the run. */
  deltas: Record<string, number>;
  /** Gauges at the end. */
  end: Record<string, number>;
  /** CPU used by the process over the run, as a share of one core. */
  cpuShare?: number;
}

export function serverFigures(
  url: string,
  before: Map<string, number> | undefined,
  after: Map<string, number> | undefined,
  seconds: number,
): ServerFigures {
  if (!before || !after) return { url, available: false, deltas: {}, end: {} };
  const deltas: Record<string, number> = {};
  for (const name of COUNTERS) {
    const a = after.get(name);
    const b = before.get(name);
    if (a !== undefined && b !== undefined) deltas[name] = a - b;
  }
  const end: Record<string, number> = {};
  for (const name of GAUGES) {
    const v = after.get(name);
    if (v !== undefined) end[name] = v;
  }
  const cpu = deltas.process_cpu_seconds_total;
  return {
    url,
    available: true,
    deltas,
    end,
    ...(cpu !== undefined && seconds > 0 ? { cpuShare: cpu / seconds } : {}),
  };
}
