import { CLOSE_REASONS, type DurationHistogram, type Hub } from '@streamcast/hub';
import { readdir } from 'node:fs/promises';
import {
  Counter,
  Gauge,
  Registry,
  collectDefaultMetrics,
  type MetricValueWithName,
} from 'prom-client';
import type { Guard } from './guard';

/**
 * Prometheus metrics of one gateway: read from the hub's plain counters at scrape time, so
 * the event path does no metrics work. With a `guard`: its limits, and refusals by code.
 */
export function createMetrics(
  hub: Hub,
  guard?: Guard,
  /** Other limits in force, shown beside the guard's in `sse_limit{name}`. */
  limits: Record<string, number> = {},
  /**
   * Opt-in per-topic series: `sse_topic_streams{topic}` for this many topics at most (those
   * with the most streams at each scrape); 0, none.
   */
  topicLabels = 0,
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  withoutPerHandleScans(registry);
  new Gauge({
    name: 'sse_connections',
    help: 'Open event streams',
    registers: [registry],
    collect() {
      this.set(hub.connectionCount);
    },
  });
  new Gauge({
    name: 'sse_topics',
    help: 'Topics with a live engine subscription in this process',
    registers: [registry],
    collect() {
      this.set(hub.channelCount);
    },
  });
  new Gauge({
    name: 'sse_ready',
    help: '1 while the gateway can serve streams and publish',
    registers: [registry],
    collect() {
      this.set(hub.isReady() ? 1 : 0);
    },
  });
  const counters: Array<[string, string, () => number]> = [
    [
      'sse_events_published_total',
      'Events published through this process',
      () => hub.stats.published,
    ],
    ['sse_events_delivered_total', 'Event frames written to streams', () => hub.stats.delivered],
    [
      'sse_slow_client_disconnects_total',
      'Streams dropped because their send queue passed MAX_QUEUE_BYTES',
      () => hub.stats.slowDisconnects,
    ],
    ['sse_connections_opened_total', 'Event streams opened', () => hub.stats.connectionsOpened],
    [
      'sse_gap_repairs_total',
      'Gaps in live delivery repaired from history',
      () => hub.stats.gapRepairs,
    ],
    [
      'sse_streams_expired_total',
      'Streams ended because their token expired',
      () => hub.stats.expired,
    ],
    [
      'sse_stream_lifetime_closes_total',
      'Streams closed at their maximum lifetime (STREAM_MAX_LIFETIME_S)',
      () => hub.stats.lifetimeCloses,
    ],
  ];
  for (const [name, help, read] of counters) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }
  new Counter({
    name: 'sse_resets_total',
    help: 'reset events sent, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(hub.stats.resetReasons)) {
        this.inc({ reason }, count);
      }
    },
  });
  new Counter({
    name: 'sse_connections_closed_total',
    help: 'Event streams ended, by reason: client, drain, shutdown, lifetime, slow, token_expired, error',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of CLOSE_REASONS) this.inc({ reason }, hub.stats.closes[reason]);
    },
  });
  new Gauge({
    name: 'sse_queued_bytes',
    help: 'Bytes written to event streams and not yet taken by the kernel, over all streams',
    registers: [registry],
    collect() {
      this.set(hub.queuedBytes());
    },
  });
  new Gauge({
    name: 'sse_engine_link_up',
    help: '1 while the link to the engine (Redis) is up',
    registers: [registry],
    collect() {
      this.set(hub.engineLinkUp && hub.engine.isReady() ? 1 : 0);
    },
  });
  if (topicLabels > 0) {
    new Gauge({
      name: 'sse_topic_streams',
      help: `Streams per topic, for the ${topicLabels} topics with the most streams here (METRICS_TOPICS)`,
      labelNames: ['topic'],
      registers: [registry],
      collect() {
        // Series of topics that dropped out of the top disappear rather than going stale.
        this.reset();
        for (const [topic, streams] of hub.busiestTopics(topicLabels)) this.set({ topic }, streams);
      },
    });
  }
  const t = hub.timings;
  registry.registerMetric(
    histogram(
      'sse_delivery_latency_seconds',
      "From an event's stored time (its id) to its frame handed to a stream's socket; path: live, or catchup (history and events held while a stream catches up)",
      'path',
      [
        ['live', t.live],
        ['catchup', t.catchup],
      ],
    ),
  );
  registry.registerMetric(
    histogram(
      'sse_pubsub_lag_seconds',
      "From an event's stored time to its pub/sub message reaching this gateway",
      undefined,
      [['', t.pubsub]],
    ),
  );
  registry.registerMetric(
    histogram(
      'sse_engine_command_duration_seconds',
      'Engine round trips (with Redis: the publish script, history reads), by command',
      'command',
      [
        ['publish', t.publish],
        ['read', t.read],
      ],
    ),
  );
  if (guard) addGuardMetrics(registry, guard, limits);
  return registry;
}

/**
 * prom-client's defaults that walk every handle of the process on the event loop at each scrape:
 * with 5,000 connections a scrape held the loop for 9 ms (27 ms the first), every delivery
 * waiting behind it. The handle and resource counts go (`sse_connections` counts the streams);
 * `process_open_fds` stays, its directory read in libuv's thread pool instead of on the loop.
 */
const PER_HANDLE_DEFAULTS = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

function withoutPerHandleScans(registry: Registry): void {
  for (const name of PER_HANDLE_DEFAULTS) registry.removeSingleMetric(name);
  if (!registry.getSingleMetric('process_open_fds')) return; // not Linux
  registry.removeSingleMetric('process_open_fds');
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: [registry],
    async collect() {
      // Less the one the directory read itself held open; on an error, the last value.
      const fds = await readdir('/proc/self/fd').catch(() => undefined);
      if (fds) this.set(fds.length - 1);
    },
  });
}

/**
 * A Prometheus histogram read from the hub's DurationHistograms at scrape time (prom-client's
 * own Histogram takes one observation a call; the hub counts many deliveries in one).
 */
function histogram(
  name: string,
  help: string,
  label: string | undefined,
  series: Array<[string, DurationHistogram]>,
): Parameters<Registry['registerMetric']>[0] {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get(): { name: string; help: string; type: string; aggregator: string; values: unknown[] } {
      const values: Array<MetricValueWithName<string>> = [];
      for (const [value, h] of series) {
        const labels: Record<string, string> = label ? { [label]: value } : {};
        let cumulative = 0;
        h.bounds.forEach((le, i) => {
          cumulative += h.counts[i] as number;
          values.push({
            metricName: `${name}_bucket`,
            labels: { ...labels, le },
            value: cumulative,
          });
        });
        values.push({
          metricName: `${name}_bucket`,
          labels: { ...labels, le: '+Inf' },
          value: h.count,
        });
        values.push({ metricName: `${name}_sum`, labels, value: h.sum });
        values.push({ metricName: `${name}_count`, labels, value: h.count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  return metric as unknown as Parameters<Registry['registerMetric']>[0];
}

function addGuardMetrics(registry: Registry, guard: Guard, other: Record<string, number>): void {
  new Counter({
    name: 'sse_requests_refused_total',
    help: 'Requests refused by authentication, authorisation and limits, by error code',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, count] of guard.refusals) this.inc({ code }, count);
    },
  });
  const limits = guard.streams.limits;
  const settings: Array<[string, () => number]> = [
    ['MAX_CONNECTIONS', () => limits.maxConnections],
    ['MAX_STREAMS_PER_IP', () => limits.maxPerIp],
    ['MAX_STREAMS_PER_SUBJECT', () => limits.maxPerSubject],
    ['CLUSTER_MAX_STREAMS_PER_IP', () => (guard.streams.clustered ? limits.clusterMaxPerIp : 0)],
    [
      'CLUSTER_MAX_STREAMS_PER_SUBJECT',
      () => (guard.streams.clustered ? limits.clusterMaxPerSubject : 0),
    ],
    ['PUBLISH_RATE_PER_MIN', () => guard.publishRate.perMinute],
    ...Object.entries(other).map(([name, value]): [string, () => number] => [name, () => value]),
  ];
  new Gauge({
    name: 'sse_limit',
    help: 'Configured limits (0: off); cluster limits are 0 without Redis',
    labelNames: ['name'],
    registers: [registry],
    collect() {
      for (const [name, read] of settings) this.set({ name }, read());
    },
  });
  new Gauge({
    name: 'sse_stream_clients',
    help: 'Distinct client IPs (loopback not counted) and token subjects with open streams here',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const clients = guard.streams.clients;
      this.set({ kind: 'ip' }, clients.ips);
      this.set({ kind: 'subject' }, clients.subjects);
    },
  });
  new Gauge({
    name: 'sse_auth_enabled',
    help: '1 when JWT keys are configured (tokens required beyond PUBLIC_TOPICS)',
    registers: [registry],
    collect() {
      this.set(guard.auth.enabled ? 1 : 0);
    },
  });
}
