import type { Sink } from '@streamcast/hub';
import { createParser } from 'eventsource-parser';
import type { SseEvent } from './sse-client';
import { waitFor } from './wait';

/**
 * A hub Sink that keeps everything in memory and parses it as a browser would: for engine and
 * hub tests without HTTP.
 */
export class MemorySink implements Sink {
  readonly events: SseEvent[] = [];
  readonly retries: number[] = [];
  begun = false;
  closed = false;
  destroyed = false;
  raw = '';
  /** Pretend this many bytes are stuck in the send queue (a client that stopped reading). */
  stuckBytes = 0;
  private readonly closeListeners: Array<() => void> = [];
  private readonly parser = createParser({
    onEvent: (e) => this.events.push({ id: e.id, event: e.event ?? 'message', data: e.data }),
    onRetry: (ms) => this.retries.push(ms),
  });

  begin(): void {
    this.begun = true;
  }

  write(chunk: Buffer | string): void {
    const text = chunk.toString();
    if (this.stuckBytes > 0) {
      this.stuckBytes += text.length;
      return;
    }
    this.raw += text;
    this.parser.feed(text);
  }

  get bufferedBytes(): number {
    return this.stuckBytes;
  }

  async drained(): Promise<void> {}

  end(): void {
    this.close();
  }

  destroy(): void {
    this.destroyed = true;
    this.close();
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** The client goes away. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  data<T = unknown>(event?: string): T[] {
    return this.events
      .filter((e) => e.event !== 'reset' && (event === undefined || e.event === event))
      .map((e) => JSON.parse(e.data) as T);
  }

  resets(): Array<{ topics: string[]; reason: string }> {
    return this.events.filter((e) => e.event === 'reset').map((e) => JSON.parse(e.data));
  }

  get lastId(): string | undefined {
    return this.events.at(-1)?.id;
  }

  /** Until `count` events (of type `event`, when given) have arrived. */
  async waitForEvents(count: number, timeoutMs = 10_000, event?: string): Promise<void> {
    const got = () =>
      (event === undefined ? this.events : this.events.filter((e) => e.event === event)).length;
    await waitFor(
      () => got() >= count,
      () => `${count} ${event ?? ''} events (got ${got()})`,
      timeoutMs,
    );
  }
}
