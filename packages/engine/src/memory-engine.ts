import { ZERO_ID, compareIds, type StreamId } from '@streamcast/protocol';
import { newEpoch } from './epoch';
import {
  DEFAULT_RETENTION,
  type Engine,
  type EngineHandlers,
  type HistoryPage,
  type PublishResult,
  type RetentionOptions,
  type StoredEvent,
} from './types';

interface TopicLog {
  entries: StoredEvent[];
  /** Index of the oldest retained entry in `entries` (trimming advances it; compaction is lazy). */
  head: number;
  lastMs: number;
  lastSeq: number;
  lastId: StreamId;
}

/**
 * The embedded engine: history in memory, live delivery within this process. One epoch per
 * process life, so a cursor from an earlier run is recognised as lost history.
 */
export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  readonly epoch = newEpoch();
  private readonly logs = new Map<string, TopicLog>();
  private readonly listened = new Set<string>();
  private handlers: EngineHandlers | undefined;
  private closed = false;

  constructor(readonly retention: RetentionOptions = DEFAULT_RETENTION) {}

  setHandlers(handlers: EngineHandlers): void {
    this.handlers = handlers;
  }

  async start(): Promise<void> {}

  async publish(
    topic: string,
    event: string,
    data: string,
    privateFields?: string,
    trace?: string,
  ): Promise<PublishResult> {
    if (this.closed) throw new Error('engine closed');
    const log = this.logFor(topic);
    const now = Date.now();
    if (now > log.lastMs) {
      log.lastMs = now;
      log.lastSeq = 0;
    } else {
      log.lastSeq += 1;
    }
    const id = `${log.lastMs}-${log.lastSeq}`;
    const stored: StoredEvent = { topic, epoch: this.epoch, id, prev: log.lastId, event, data };
    if (privateFields !== undefined) stored.private = privateFields;
    if (trace !== undefined) stored.trace = trace;
    log.entries.push(stored);
    log.lastId = id;
    this.trim(log, now);
    if (this.listened.has(topic)) {
      // Asynchronous like a real transport, in storage order.
      queueMicrotask(() => {
        if (this.listened.has(topic)) this.handlers?.message(stored);
      });
    }
    return { epoch: this.epoch, id };
  }

  async read(topic: string, after: StreamId | null, limit: number): Promise<HistoryPage> {
    const log = this.logs.get(topic);
    if (!log) return { epoch: this.epoch, lastId: ZERO_ID, entries: [] };
    this.trim(log, Date.now());
    const entries: StoredEvent[] = [];
    if (after !== null) {
      let lo = log.head;
      let hi = log.entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareIds((log.entries[mid] as StoredEvent).id, after) <= 0) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < log.entries.length && entries.length < limit; i++) {
        entries.push(log.entries[i] as StoredEvent);
      }
    }
    return { epoch: this.epoch, lastId: log.lastId, entries };
  }

  async listen(topic: string): Promise<void> {
    this.listened.add(topic);
  }

  async unlisten(topic: string): Promise<void> {
    this.listened.delete(topic);
  }

  isReady(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listened.clear();
  }

  /** Number of topics with history (for leak checks). */
  get topicCount(): number {
    return this.logs.size;
  }

  private logFor(topic: string): TopicLog {
    let log = this.logs.get(topic);
    if (!log) {
      log = { entries: [], head: 0, lastMs: 0, lastSeq: 0, lastId: ZERO_ID };
      this.logs.set(topic, log);
    }
    return log;
  }

  private trim(log: TopicLog, now: number): void {
    const { maxLen, maxAgeS } = this.retention;
    while (log.entries.length - log.head > maxLen) log.head++;
    if (maxAgeS > 0) {
      const minMs = now - maxAgeS * 1000;
      while (log.head < log.entries.length) {
        const id = (log.entries[log.head] as StoredEvent).id;
        if (Number(id.slice(0, id.indexOf('-'))) >= minMs) break;
        log.head++;
      }
    }
    // Compact once the dead prefix is as long as the live part: amortised O(1) per publish.
    if (log.head > 64 && log.head * 2 > log.entries.length) {
      log.entries = log.entries.slice(log.head);
      log.head = 0;
    }
  }
}
