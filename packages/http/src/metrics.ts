import type { Hub } from '@streamcast/hub';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one gateway: read from the hub's plain counters at scrape time, so
 * the event path does no metrics work.
 */
export function createMetrics(hub: Hub): Registry {
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
    ['sse_events_published_total', 'Events published through this process', () => hub.stats.published],
    ['sse_events_delivered_total', 'Event frames written to streams', () => hub.stats.delivered],
    ['sse_resets_total', 'reset events sent', () => hub.stats.resets],
    [
      'sse_slow_client_disconnects_total',
      'Streams dropped because their send queue passed MAX_QUEUE_BYTES',
      () => hub.stats.slowDisconnects,
    ],
    ['sse_connections_opened_total', 'Event streams opened', () => hub.stats.connectionsOpened],
    ['sse_gap_repairs_total', 'Gaps in live delivery repaired from history', () => hub.stats.gapRepairs],
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
  return registry;
}
