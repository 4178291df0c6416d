import type { Hub } from '@streamcast/hub';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
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
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
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
    ['sse_resets_total', 'reset events sent', () => hub.stats.resets],
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
  if (guard) addGuardMetrics(registry, guard, limits);
  return registry;
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
