import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_RETENTION,
  newEpoch,
  type Engine,
  type EngineHandlers,
  type HistoryPage,
  type PublishResult,
  type RetentionOptions,
  type StoredEvent,
} from '@streamcast/engine';
import type { StreamId } from '@streamcast/protocol';
import calculateSlot from 'cluster-key-slot';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { topicKeys } from './keys';
import { parseLive, redisClientOptions, toStored, waitReady } from './redis-engine';

/** A publish whose script would touch keys (or a channel) of two Cluster slots. */
export class CrossSlotError extends Error {
  readonly code = 'ENGINE_CROSS_SLOT';
  constructor(topic: string, cause: Error) {
    super(
      `publish to ${JSON.stringify(topic)} refused: its script would touch two Redis Cluster slots ` +
        `(every key and the live channel must share the topic's hash tag): ${cause.message}`,
    );
    this.name = 'CrossSlotError';
  }
}

export interface RedisClusterEngineOptions {
  /** The Cluster client: create it with `redisClusterOptions()` (sharded subscribers on). */
  client: Cluster;
  /** Prefix of every key and channel. @default 'sse' */
  keyPrefix?: string;
  retention?: RetentionOptions;
  /**
   * End-to-end liveness probe, per master: every `intervalMs` the engine SPUBLISHes to a probe
   * channel of its own in a slot each master (that owns listened topics) serves, and expects its
   * sharded subscriber on that master to receive it within `timeoutMs`. Otherwise that master's
   * subscriber is rebuilt, its topics are caught up from history, and the engine is not ready
   * meanwhile. @default { intervalMs: 1000, timeoutMs: 3000 }
   */
  probe?: { intervalMs: number; timeoutMs: number };
  onWarning?: (message: string, detail?: object) => void;
  /**
   * Test hook: the live channel a publish names. A channel of another slot than the topic's keys
   * makes the publish fail with CrossSlotError.
   */
  liveChannelOf?: (topic: string) => string;
}

/**
 * Options of the Cluster client the cluster engine needs, on top of the connection's: sharded
 * subscribers (one SSUBSCRIBE connection per master that owns subscribed channels), a periodic
 * slot-map refresh, and fail-fast commands (see redisClientOptions) on every node connection.
 */
export function redisClusterOptions(
  connection: RedisOptions = {},
  overrides: ClusterOptions = {},
): ClusterOptions {
  const { host: _host, port: _port, ...nodeOptions } = connection;
  // Node connections are the cluster's: it reconnects them, queues nothing while offline, and
  // follows MOVED / failovers through its slot map (not through READONLY reconnects).
  const {
    retryStrategy: _retry,
    enableOfflineQueue: _queue,
    reconnectOnError: _reconnect,
    ...redisOptions
  } = redisClientOptions(nodeOptions);
  return {
    shardedSubscribers: true,
    // Off by default in ioredis: without it a moved slot is only noticed on a MOVED reply.
    slotsRefreshInterval: 2000,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 50,
    clusterRetryStrategy: (times: number) => Math.min(100 * times, 1000),
    redisOptions,
    ...(connection.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
    ...overrides,
  };
}

type Entry = [id: string, fields: string[]];

interface Scripts {
  sseClusterPublish(
    log: string,
    meta: string,
    channel: string,
    epoch: string,
    unused: string,
    event: string,
    data: string,
    maxLen: number,
    maxAgeMs: number,
    privateFields: string,
    trace: string,
  ): Promise<[string, string]>;
  sseRead(
    log: string,
    meta: string,
    epoch: string,
    after: string,
    count: number,
    metaTtlS: number,
    maxLen: number,
    maxAgeMs: number,
  ): Promise<[string, string, Entry[]]>;
}

/** What of ioredis's Cluster internals stopSlotsRefreshOnEnd reaches (ioredis 6.0.0). */
interface SlotsRefresh {
  clearNodesRefreshInterval?: () => void;
  _refreshSlotsCacheCallbacks?: unknown[];
}

const guarded = new WeakSet<Cluster>();

/**
 * Makes sure an ended Cluster client lets its process exit. ioredis 6.0.0 refreshes the slot
 * map every `slotsRefreshInterval` with a timer that each refresh re-arms from its callback,
 * whatever the client's status; a client quit while it was still connecting (its ready check
 * then arms the timer after quit() cleared it) ends with the timer running for ever, and the
 * process never exits on its own (reproduced: quit() 14–30 ms after creating a client of a
 * three-node cluster, 11 times in 12). When the client ends, the timer is cleared and a refresh
 * still in flight gets no next round. Returns `cluster`.
 */
export function stopSlotsRefreshOnEnd(cluster: Cluster): Cluster {
  if (guarded.has(cluster)) return cluster;
  guarded.add(cluster);
  cluster.on('end', () => {
    const internals = cluster as unknown as SlotsRefresh;
    internals._refreshSlotsCacheCallbacks = [];
    internals.clearNodesRefreshInterval?.();
  });
  return cluster;
}

/** What ioredis keeps about its sharded subscribers (not public API: see docs/reliability.md, "Redis Cluster"). */
interface SubscriberGroup {
  getResponsibleSubscriber(slot: number): { getInstance(): Redis | null } | undefined;
}

interface Listened {
  channel: string;
  slot: number;
  /** The subscriber connection our subscription was confirmed on (null: none now). */
  bound: Redis | null;
}

interface Probe {
  channel: string;
  slot: number;
  bound: Redis | null;
  seq: number;
  pending: number;
  sentAt: number;
  receivers: number | undefined;
  /** Time of the last probe that came back. */
  okAt: number;
  healthy: boolean;
}

const LUA_DIR = join(__dirname, 'lua');

/**
 * The engine on Redis Cluster (Redis >= 7.0): history in one Stream per topic, as on one Redis;
 * live delivery over sharded pub/sub. Each topic's keys and channel share its hash tag, so a
 * publish is one script on the master of one slot and is SPUBLISHed there. Topics are
 * SSUBSCRIBEd (one message listener, one map) on ioredis's sharded subscribers, one connection
 * per master. A slot migration or failover unsubscribes a slot's channels while publishes go on:
 * after every resubscription the affected topics are resynced from history (hub repair).
 */
export class RedisClusterEngine implements Engine {
  readonly kind = 'redis' as const;
  readonly retention: RetentionOptions;
  private readonly client: Cluster;
  private readonly scripts: Scripts;
  private readonly prefix: string;
  private readonly listened = new Map<string, Listened>();
  /** Probes by master node key (host:port). */
  private readonly probes = new Map<string, Probe>();
  private readonly probeId = newEpoch();
  private readonly probeOptions: { intervalMs: number; timeoutMs: number };
  private readonly liveChannelOf: (topic: string) => string;
  private readonly warn: (message: string, detail?: object) => void;
  private handlers: EngineHandlers | undefined;
  private started = false;
  private closed = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private reconcileAgain = false;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly onSmessage = (channel: string, message: string) =>
    this.onMessage(channel, message);
  private readonly onTopology = () => this.scheduleReconcile();

  constructor(options: RedisClusterEngineOptions) {
    this.client = stopSlotsRefreshOnEnd(options.client);
    this.prefix = options.keyPrefix ?? 'sse';
    this.retention = options.retention ?? DEFAULT_RETENTION;
    this.client.defineCommand('sseClusterPublish', {
      numberOfKeys: 3,
      lua: readFileSync(join(LUA_DIR, 'publish-cluster-1.lua'), 'utf8'),
    });
    this.client.defineCommand('sseRead', {
      numberOfKeys: 2,
      lua: readFileSync(join(LUA_DIR, 'read-3.lua'), 'utf8'),
    });
    this.scripts = this.client as unknown as Scripts;
    this.probeOptions = options.probe ?? { intervalMs: 1000, timeoutMs: 3000 };
    this.liveChannelOf = options.liveChannelOf ?? ((topic) => clusterChannel(this.prefix, topic));
    this.warn = options.onWarning ?? (() => {});
  }

  setHandlers(handlers: EngineHandlers): void {
    this.handlers = handlers;
  }

  async start(): Promise<void> {
    if (this.client.status !== 'ready') await waitReady(this.client);
    if (!this.subscriberGroup()) {
      throw new Error('the cluster engine needs a Cluster client with shardedSubscribers: true');
    }
    this.client.on('smessage', this.onSmessage);
    for (const event of [
      '+subscriber',
      '-subscriber',
      'subscribersReady',
      'refresh',
      '-node',
      'ready',
    ]) {
      this.client.on(event, this.onTopology);
    }
    this.started = true;
    this.probeTimer = setInterval(() => this.tick(), this.probeOptions.intervalMs);
    this.probeTimer.unref();
  }

  async publish(
    topic: string,
    event: string,
    data: string,
    privateFields?: string,
    trace?: string,
  ): Promise<PublishResult> {
    const keys = topicKeys(this.prefix, topic);
    try {
      const [epoch, id] = await this.scripts.sseClusterPublish(
        keys.log,
        keys.meta,
        this.liveChannelOf(topic),
        newEpoch(),
        '',
        event,
        data,
        this.retention.maxLen,
        this.retention.maxAgeS * 1000,
        privateFields ?? '',
        trace ?? '',
      );
      return { epoch, id };
    } catch (err) {
      if (err instanceof Error && /CROSSSLOT|non local key|different slot/i.test(err.message)) {
        throw new CrossSlotError(topic, err);
      }
      throw err;
    }
  }

  async read(topic: string, after: StreamId | null, limit: number): Promise<HistoryPage> {
    const keys = topicKeys(this.prefix, topic);
    const [epoch, lastId, raw] = await this.scripts.sseRead(
      keys.log,
      keys.meta,
      newEpoch(),
      after ?? '',
      limit,
      Math.max(this.retention.maxAgeS, 3600),
      this.retention.maxLen,
      this.retention.maxAgeS * 1000,
    );
    const entries: StoredEvent[] = raw.map(([id, fields]) => toStored(topic, epoch, id, fields));
    return { epoch, lastId, entries };
  }

  async listen(topic: string): Promise<void> {
    if (!this.started) throw new Error('engine not started');
    const channel = clusterChannel(this.prefix, topic);
    const entry: Listened = { channel, slot: calculateSlot(channel), bound: null };
    this.listened.set(topic, entry);
    try {
      await this.client.ssubscribe(channel);
    } catch (err) {
      if (this.listened.get(topic) === entry) this.listened.delete(topic);
      // ioredis remembered the channel before sending; forget it again.
      this.client.sunsubscribe(channel).catch(() => {});
      throw err;
    }
    // Confirmed on the connection that serves the slot now (a move meanwhile: reconcile sees it).
    const sub = this.subscriberOf(entry.slot);
    if (sub && subscribedChannels(sub).has(channel)) entry.bound = sub;
    this.scheduleReconcile();
  }

  async unlisten(topic: string): Promise<void> {
    const entry = this.listened.get(topic);
    if (!entry) return;
    this.listened.delete(topic);
    try {
      await this.client.sunsubscribe(entry.channel);
    } catch {
      // ioredis forgot the channel before sending: a dead connection takes the rest with it.
    }
    this.scheduleReconcile();
  }

  isReady(): boolean {
    if (!this.started || this.closed || this.client.status !== 'ready') return false;
    for (const probe of this.probes.values()) if (!probe.healthy) return false;
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    this.client.off('smessage', this.onSmessage);
    for (const event of [
      '+subscriber',
      '-subscriber',
      'subscribersReady',
      'refresh',
      '-node',
      'ready',
    ]) {
      this.client.off(event, this.onTopology);
    }
    const channels = [...this.listened.values(), ...this.probes.values()].map((l) => l.channel);
    this.listened.clear();
    this.probes.clear();
    if (this.client.status === 'ready') {
      await Promise.allSettled(channels.map((c) => this.client.sunsubscribe(c)));
    }
  }

  /** Topics with a live subscription (for leak checks). */
  get listenedCount(): number {
    return this.listened.size;
  }

  /** Masters probed now (those serving listened topics), by node key, with their health. */
  get probedMasters(): ReadonlyMap<string, boolean> {
    return new Map([...this.probes].map(([key, probe]) => [key, probe.healthy]));
  }

  // ---- live messages -------------------------------------------------------------------------

  private onMessage(channel: string, message: string): void {
    if (channel.startsWith(`${this.prefix}:probe:`)) {
      for (const probe of this.probes.values()) {
        if (probe.channel === channel && Number(message) === probe.pending) {
          probe.pending = 0;
          probe.okAt = Date.now();
          probe.healthy = true;
        }
      }
      return;
    }
    const topic = topicOfClusterChannel(this.prefix, channel);
    if (topic === undefined) return;
    const entry = this.listened.get(topic);
    if (!entry) return;
    const event = parseLive(topic, message);
    if (event) this.handlers?.message(event);
  }

  // ---- subscriptions, probes, resync ---------------------------------------------------------

  private subscriberGroup(): SubscriberGroup | undefined {
    return (this.client as unknown as { shardedSubscribers?: SubscriberGroup }).shardedSubscribers;
  }

  /** The sharded subscriber connection ioredis uses for a slot now (null: none yet). */
  private subscriberOf(slot: number): Redis | null {
    try {
      return this.subscriberGroup()?.getResponsibleSubscriber(slot)?.getInstance() ?? null;
    } catch {
      return null; // no slot map yet
    }
  }

  private masterOf(slot: number): string | undefined {
    return this.client.slots[slot]?.[0];
  }

  private scheduleReconcile(): void {
    if (this.closed || !this.started || this.reconcileTimer) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      void this.reconcile();
    }, 20);
    this.reconcileTimer.unref();
  }

  /**
   * Brings the subscriptions in line with the slot map: every listened topic (and every probe)
   * subscribed on the connection ioredis uses for its slot now. A topic found subscribed on
   * another connection than before (ioredis resubscribed it after a move or a rebuilt
   * subscriber), or resubscribed here, is resynced: the hub catches it up from history.
   */
  private async reconcile(): Promise<void> {
    if (this.reconciling) {
      this.reconcileAgain = true;
      return;
    }
    this.reconciling = true;
    try {
      do {
        this.reconcileAgain = false;
        await this.reconcileOnce();
      } while (this.reconcileAgain && !this.closed);
    } catch (err) {
      this.warn('cluster subscription check failed; retrying', { err: String(err) });
    } finally {
      this.reconciling = false;
    }
  }

  private async reconcileOnce(): Promise<void> {
    if (this.closed) return;
    this.updateProbes();
    const resync: string[] = [];
    const missing = new Map<Redis, Map<number, { channels: string[]; topics: string[] }>>();
    const cache = new Map<Redis, Set<string>>();
    const subscribed = (sub: Redis) => {
      let set = cache.get(sub);
      if (!set) cache.set(sub, (set = subscribedChannels(sub)));
      return set;
    };
    const check = (topic: string | undefined, item: Listened | Probe) => {
      const sub = this.subscriberOf(item.slot);
      if (sub && sub.status === 'ready' && subscribed(sub).has(item.channel)) {
        if (item.bound !== sub) {
          // Subscribed on another connection than we knew: ioredis resubscribed it there.
          item.bound = sub;
          if (topic !== undefined) resync.push(topic);
        }
        return;
      }
      if (item.bound !== null) item.bound = null; // lost: events may be missed from now
      if (!sub || sub.status !== 'ready') return; // ioredis is (re)building it
      let bySlot = missing.get(sub);
      if (!bySlot) missing.set(sub, (bySlot = new Map()));
      let group = bySlot.get(item.slot);
      if (!group) bySlot.set(item.slot, (group = { channels: [], topics: [] }));
      group.channels.push(item.channel);
      if (topic !== undefined) group.topics.push(topic);
    };
    for (const [topic, entry] of this.listened) check(topic, entry);
    for (const probe of this.probes.values()) check(undefined, probe);
    // Subscribe what is missing straight on the slot's connection (ioredis already lists the
    // channels: its own resubscription may be on its way; a second SSUBSCRIBE is harmless).
    const work: Promise<void>[] = [];
    for (const [sub, bySlot] of missing) {
      for (const [slot, group] of bySlot) {
        work.push(
          sub.ssubscribe(...group.channels).then(
            () => {
              for (const topic of group.topics) {
                const entry = this.listened.get(topic);
                if (entry && entry.slot === slot) {
                  entry.bound = sub;
                  resync.push(topic);
                }
              }
              for (const probe of this.probes.values()) {
                if (group.channels.includes(probe.channel)) probe.bound = sub;
              }
            },
            () => {
              // MOVED (ioredis refreshes its slot map) or a dropped connection: next round.
              this.reconcileAgain = true;
            },
          ),
        );
      }
    }
    await Promise.all(work);
    if (resync.length > 0 && !this.closed) {
      this.handlers?.resync([...new Set(resync)], 'sharded subscription moved or rebuilt');
    }
    if (this.reconcileAgain) await sleep(100);
  }

  /** One probe channel per master serving listened topics, in a slot that master serves. */
  private updateProbes(): void {
    const masters = new Set<string>();
    for (const entry of this.listened.values()) {
      const master = this.masterOf(entry.slot);
      if (master) masters.add(master);
    }
    for (const [master, probe] of this.probes) {
      if (masters.has(master) && this.masterOf(probe.slot) === master) continue;
      this.probes.delete(master);
      this.client.sunsubscribe(probe.channel).catch(() => {});
    }
    for (const master of masters) {
      if (this.probes.has(master)) continue;
      const channel = this.probeChannelFor(master);
      if (!channel) continue;
      const probe: Probe = {
        channel,
        slot: calculateSlot(channel),
        bound: null,
        seq: 0,
        pending: 0,
        sentAt: 0,
        receivers: undefined,
        okAt: Date.now(),
        healthy: true,
      };
      this.probes.set(master, probe);
      this.client.ssubscribe(channel).catch(() => {
        // The reconcile rounds subscribe it on the slot's connection.
      });
    }
  }

  private probeChannelFor(master: string): string | undefined {
    for (let i = 0; i < 100_000; i++) {
      const channel = `${this.prefix}:probe:{${i}}:${this.probeId}`;
      if (this.masterOf(calculateSlot(channel)) === master) return channel;
    }
    return undefined;
  }

  /** Probe round: judge the probe in flight of each master, or send the next one. */
  private tick(): void {
    if (this.closed) return;
    const now = Date.now();
    for (const [master, probe] of this.probes) {
      if (probe.pending !== 0) {
        const forgotten = probe.receivers === 0;
        if (forgotten || now - probe.sentAt > this.probeOptions.timeoutMs) {
          this.probeFailed(
            master,
            probe,
            forgotten ? 'probe reached no subscriber' : 'probe timed out',
          );
        }
        continue;
      }
      if (probe.bound === null) {
        // Being (re)subscribed: not ready if that takes longer than a probe may.
        if (now - probe.okAt > this.probeOptions.timeoutMs) probe.healthy = false;
        continue;
      }
      const seq = ++probe.seq;
      probe.pending = seq;
      probe.sentAt = now;
      probe.receivers = undefined;
      this.client.spublish(probe.channel, String(seq)).then(
        (receivers) => {
          if (probe.pending === seq) probe.receivers = Number(receivers);
        },
        () => {
          // No answer: the timeout decides.
        },
      );
    }
    this.scheduleReconcile();
  }

  private probeFailed(master: string, probe: Probe, reason: string): void {
    probe.pending = 0;
    probe.healthy = false;
    this.warn('redis cluster liveness probe failed; rebuilding the subscriber', { master, reason });
    // Drop the subscriber connection: ioredis builds a new one (on the slot's current master)
    // and resubscribes; the reconcile round then resyncs every topic it carried.
    const sub = this.subscriberOf(probe.slot);
    if (sub) sub.disconnect();
    for (const entry of this.listened.values()) {
      if (this.masterOf(entry.slot) === master) entry.bound = null;
    }
    probe.bound = null;
    probe.okAt = Date.now();
  }
}

/**
 * A topic's shard channel on Redis Cluster: the name of its metadata key (channels and keys are
 * separate namespaces). The publish script names it among its KEYS, as sharded pub/sub asks, and
 * since that key exists for every published topic, a script on a slot being migrated finds all
 * its keys on one side (ASK to the importing node once they moved) instead of being refused with
 * TRYAGAIN for a "missing" channel key until the migration ends.
 */
export function clusterChannel(prefix: string, topic: string): string {
  return topicKeys(prefix, topic).meta;
}

function topicOfClusterChannel(prefix: string, channel: string): string | undefined {
  const head = `${prefix}:{`;
  if (!channel.startsWith(head) || !channel.endsWith('}:meta')) return undefined;
  return channel.slice(head.length, -'}:meta'.length);
}

/** The shard channels a subscriber connection has confirmed (ioredis's own bookkeeping). */
function subscribedChannels(sub: Redis): Set<string> {
  const set = (
    sub as unknown as { condition?: { subscriber?: { channels(kind: string): string[] } | false } }
  ).condition?.subscriber;
  return new Set(set ? set.channels('ssubscribe') : []);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
