import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TooManyConnections, TooManyStreams, withTimeout } from '@streamcast/protocol';
import type { Cluster, Redis } from 'ioredis';
import { streamsKey } from './keys';

const LUA_DIR = join(__dirname, 'lua');

/** Stream limits; 0 turns one off. */
export interface StreamLimits {
  /** Streams one process holds at most (MAX_CONNECTIONS). @default 0 */
  maxConnections: number;
  /** Streams of one client IP on one process (MAX_STREAMS_PER_IP). @default 0 */
  maxPerIp: number;
  /** Streams of one token subject on one process (MAX_STREAMS_PER_SUBJECT). @default 0 */
  maxPerSubject: number;
  /** Streams of one client IP across every process on the Redis (CLUSTER_MAX_STREAMS_PER_IP). @default 0 */
  clusterMaxPerIp: number;
  /** Streams of one token subject across the cluster (CLUSTER_MAX_STREAMS_PER_SUBJECT). @default 0 */
  clusterMaxPerSubject: number;
}

export interface StreamCounterOptions {
  limits?: Partial<StreamLimits>;
  /** Counts across the gateways in this Redis or Redis Cluster (each script touches one key: one slot); without it, the cluster limits are not applied. */
  redis?: Redis | Cluster;
  /** As REDIS_PREFIX. @default 'sse' */
  keyPrefix?: string;
  /**
   * A process's counts stop counting this long after it last refreshed them, so the counts of
   * a crashed gateway do not stick (STREAM_COUNT_TTL_S). Refreshed every third of it. @default 30000
   */
  countTtlMs?: number;
  /** Reports Redis trouble (the cluster limits fail open meanwhile). */
  onWarning?: (message: string, detail?: object) => void;
}

/** Who a stream belongs to; an undefined part is not counted. */
export interface StreamClient {
  ip?: string;
  subject?: string;
}

interface Scripts {
  streamcastStreamsAcquire(
    key: string,
    gateway: string,
    count: number,
    limit: number,
    staleMs: number,
    ttlMs: number,
  ): Promise<number>;
  streamcastStreamsSet(key: string, gateway: string, count: number, ttlMs: number): Promise<number>;
}

/** A Retry-After for refusals: streams last long, so do not hammer. */
const RETRY_AFTER_S = { connections: 5, streams: 10 };
/** A cluster check slower than this is skipped (fail open) rather than delay the stream. */
const REDIS_TIMEOUT_MS = 1000;

/**
 * Counts open streams per process, per client IP and per token subject, and refuses the one
 * over a limit with 429 (TOO_MANY_CONNECTIONS, TOO_MANY_STREAMS). The per-IP and per-subject
 * counts also live in Redis, one hash per client with one field per process, so that the
 * limits hold across the cluster; each process refreshes its fields, and fields not refreshed
 * within `countTtlMs` (a crashed process) stop counting. When Redis does not answer, the
 * cluster limits fail open: the per-process limits still apply.
 */
export class StreamCounter {
  readonly limits: StreamLimits;
  /** This process's field name in the cluster hashes. */
  readonly gatewayId = randomUUID();
  private openCount = 0;
  private readonly byIp = new Map<string, number>();
  private readonly bySubject = new Map<string, number>();
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly scripts: Scripts | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly warn: (message: string, detail?: object) => void;
  private warnedAt = 0;

  constructor(private readonly options: StreamCounterOptions = {}) {
    this.limits = {
      maxConnections: 0,
      maxPerIp: 0,
      maxPerSubject: 0,
      clusterMaxPerIp: 0,
      clusterMaxPerSubject: 0,
      ...defined(options.limits ?? {}),
    };
    this.prefix = options.keyPrefix ?? 'sse';
    this.ttlMs = options.countTtlMs ?? 30_000;
    this.warn = options.onWarning ?? (() => {});
    const redis = options.redis;
    const clustered = this.limits.clusterMaxPerIp > 0 || this.limits.clusterMaxPerSubject > 0;
    if (redis && clustered) {
      for (const [name, file] of [
        ['streamcastStreamsAcquire', 'streams-acquire-1.lua'],
        ['streamcastStreamsSet', 'streams-set-1.lua'],
      ] as const) {
        redis.defineCommand(name, {
          numberOfKeys: 1,
          lua: readFileSync(join(LUA_DIR, file), 'utf8'),
        });
      }
      this.scripts = redis as unknown as Scripts;
      this.timer = setInterval(() => this.refresh(), Math.max(100, Math.floor(this.ttlMs / 3)));
      this.timer.unref();
    }
  }

  /** Streams open (or being opened) through this counter. */
  get open(): number {
    return this.openCount;
  }

  /** Distinct client IPs and token subjects with open streams here. */
  get clients(): { ips: number; subjects: number } {
    return { ips: this.byIp.size, subjects: this.bySubject.size };
  }

  /** Whether the cluster-wide limits are counted in Redis. */
  get clustered(): boolean {
    return this.scripts !== undefined;
  }

  /**
   * Admits one stream of `client`, or throws 429 (with `retryAfter`, in seconds). Resolves to
   * the function that gives the place back when the stream ends (call it once; more is harmless).
   */
  async acquire(client: StreamClient): Promise<() => void> {
    const { ip, subject } = client;
    const limits = this.limits;
    if (limits.maxConnections > 0 && this.openCount >= limits.maxConnections) {
      throw retryAfter(new TooManyConnections(limits.maxConnections), RETRY_AFTER_S.connections);
    }
    if (ip !== undefined && limits.maxPerIp > 0 && (this.byIp.get(ip) ?? 0) >= limits.maxPerIp) {
      throw tooMany(`${limits.maxPerIp} streams from ${ip} on this gateway (MAX_STREAMS_PER_IP)`);
    }
    if (
      subject !== undefined &&
      limits.maxPerSubject > 0 &&
      (this.bySubject.get(subject) ?? 0) >= limits.maxPerSubject
    ) {
      throw tooMany(
        `${limits.maxPerSubject} streams of this token's subject on this gateway (MAX_STREAMS_PER_SUBJECT)`,
      );
    }
    // Reserve before any await, so that concurrent requests see each other.
    this.openCount++;
    if (ip !== undefined) bump(this.byIp, ip, 1);
    if (subject !== undefined) bump(this.bySubject, subject, 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.openCount--;
      if (ip !== undefined) this.record('ip', ip, bump(this.byIp, ip, -1));
      if (subject !== undefined) this.record('sub', subject, bump(this.bySubject, subject, -1));
    };
    try {
      if (ip !== undefined && limits.clusterMaxPerIp > 0) {
        await this.clusterAcquire(
          'ip',
          ip,
          limits.clusterMaxPerIp,
          `streams from ${ip}`,
          'CLUSTER_MAX_STREAMS_PER_IP',
        );
      }
      if (subject !== undefined && limits.clusterMaxPerSubject > 0) {
        await this.clusterAcquire(
          'sub',
          subject,
          limits.clusterMaxPerSubject,
          "streams of this token's subject",
          'CLUSTER_MAX_STREAMS_PER_SUBJECT',
        );
      }
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /** Stops refreshing; the fields left in Redis expire by themselves. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async clusterAcquire(
    kind: 'ip' | 'sub',
    id: string,
    limit: number,
    what: string,
    variable: string,
  ): Promise<void> {
    if (!this.scripts) return;
    const count = (kind === 'ip' ? this.byIp : this.bySubject).get(id) ?? 0;
    let others: number;
    try {
      others = await withTimeout(
        this.scripts.streamcastStreamsAcquire(
          streamsKey(this.prefix, kind, id),
          this.gatewayId,
          count,
          limit,
          this.ttlMs,
          this.ttlMs,
        ),
        REDIS_TIMEOUT_MS,
        `no answer within ${REDIS_TIMEOUT_MS} ms`,
      );
    } catch (err) {
      this.redisTrouble(err);
      return;
    }
    if (others >= 0) throw tooMany(`${limit} ${what} across the cluster (${variable})`);
  }

  /** Writes this process's count for a client to Redis (fire and forget). */
  private record(kind: 'ip' | 'sub', id: string, count: number): void {
    if (!this.scripts) return;
    const limit = kind === 'ip' ? this.limits.clusterMaxPerIp : this.limits.clusterMaxPerSubject;
    if (limit <= 0) return;
    this.scripts
      .streamcastStreamsSet(streamsKey(this.prefix, kind, id), this.gatewayId, count, this.ttlMs)
      .catch((err: unknown) => this.redisTrouble(err));
  }

  /** Keeps this process's fields fresh (and restores them after Redis lost its data). */
  private refresh(): void {
    for (const [ip, count] of this.byIp) this.record('ip', ip, count);
    for (const [subject, count] of this.bySubject) this.record('sub', subject, count);
  }

  private redisTrouble(err: unknown): void {
    const now = Date.now();
    if (now - this.warnedAt < 10_000) return;
    this.warnedAt = now;
    this.warn('cluster stream counts unavailable; per-gateway limits only meanwhile', {
      err: (err as Error).message,
    });
  }
}

/** Adds `delta` to a count; removes the entry at 0. Returns the new count. */
function bump(map: Map<string, number>, key: string, delta: number): number {
  const next = (map.get(key) ?? 0) + delta;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
  return Math.max(0, next);
}

function tooMany(what: string): Error {
  return retryAfter(new TooManyStreams(`at most ${what}`), RETRY_AFTER_S.streams);
}

/** Marks an error with the Retry-After (seconds) its answer carries. */
export function retryAfter<E extends Error>(err: E, seconds: number): E & { retryAfter: number } {
  return Object.assign(err, { retryAfter: seconds });
}

function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
