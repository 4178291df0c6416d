import type { Hub, Sink } from '@streamcast/hub';
import { NotReady, ParamInvalid, type Viewer } from '@streamcast/protocol';
import type { StreamRequest } from './stream';

/** Longest wait of one poll, in seconds (`timeout` above it is refused). */
export const POLL_MAX_TIMEOUT_S = 30;
export const POLL_DEFAULT_TIMEOUT_S = 25;
/** Most events in one answer; the client polls again at once when it got any. */
export const POLL_MAX_EVENTS = 500;

/** Reads the `timeout` query parameter of a poll: whole seconds, 0–30; default 25. */
export function readPollTimeout(value: unknown): number {
  if (value === undefined || value === '') return POLL_DEFAULT_TIMEOUT_S;
  if (typeof value !== 'string' || !/^\d{1,3}$/.test(value) || Number(value) > POLL_MAX_TIMEOUT_S) {
    throw new ParamInvalid(`timeout must be whole seconds from 0 to ${POLL_MAX_TIMEOUT_S}`);
  }
  return Number(value);
}

export interface PollOptions {
  /** How long to wait for an event when there is nothing new, in ms. */
  waitMs: number;
  /** Resolves when the client has gone: the poll ends without an answer. */
  gone?: Promise<void>;
  /** Who is asking, for events with private fields (see Hub.subscribe). */
  viewer?: Viewer;
}

/**
 * One long poll: the same subscription as a stream (placement, replay, reset, the hand-over to
 * live), run on a sink that collects what the hub writes instead of sending it. Resolves to the
 * JSON answer `{"events":[…],"lastEventId":"…","retry":…}`, as soon as there is at least one
 * event (or a reset), at once when the poll had no cursor (it learns where the topics stand),
 * else after `waitMs` with no events; at most POLL_MAX_EVENTS events, and no more once their
 * text passes the hub's `maxQueueBytes`. Throws NOT_READY when the hub cannot serve, or ended
 * the poll (draining) before it began.
 */
export async function poll(
  hub: Hub,
  request: StreamRequest,
  options: PollOptions,
): Promise<string> {
  // Bytes bounded as a stream's send queue is: an answer stops after the event that passes it.
  const sink = new PollSink(hub.options.maxQueueBytes);
  const waited = new Promise<void>((resolve) => {
    sink.onEvent = resolve;
    const timer = setTimeout(resolve, options.waitMs);
    timer.unref();
    void options.gone?.then(resolve);
    sink.onClose(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  try {
    await hub.subscribe(sink, request.topics, request.cursor, undefined, options.viewer);
    if (request.cursor !== undefined && !sink.hasEvents && !sink.isClosed) {
      await waited;
      // Events published together usually arrive in the same tick or the next: one answer.
      if (sink.hasEvents && !sink.isClosed) await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (err) {
    if (!sink.begun) throw err instanceof NotReady ? err : new NotReady((err as Error).message);
    // Ended while catching up: answer what was collected, the client polls again from there.
  } finally {
    sink.finish();
  }
  const answer = sink.answer(hub.options.retryMs);
  // Ended before it began: draining, or dropped while catching up.
  if (answer === undefined) throw new NotReady('the poll ended before it began; poll again');
  return answer;
}

/**
 * A hub Sink that parses the frames the hub writes back into events. Frames are whole SSE
 * blocks (`id:`, `event:`, `data:` lines, a blank line); comments and `retry:` are skipped, an
 * `id:` with no data moves the cursor only. After POLL_MAX_EVENTS events it closes: the hub then
 * stops writing, and the cursor is that of the last event kept.
 */
class PollSink implements Sink {
  readonly bufferedBytes = 0;
  begun = false;
  onEvent: (() => void) | undefined;
  private readonly events: string[] = [];
  private bytes = 0;
  private cursor: string | undefined;
  private closed = false;
  private readonly closeListeners: (() => void)[] = [];

  constructor(private readonly maxBytes: number) {}

  get hasEvents(): boolean {
    return this.events.length > 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  begin(): void {
    this.begun = true;
  }

  write(chunk: Buffer | string): void {
    if (this.closed) return;
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    for (const block of text.split('\n\n')) {
      if (block !== '') this.take(block);
      if (this.events.length >= POLL_MAX_EVENTS || this.bytes >= this.maxBytes) {
        this.finish();
        return;
      }
    }
  }

  private take(block: string): void {
    let id: string | undefined;
    let event = 'message';
    let data: string | undefined;
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: '))
        data = data === undefined ? line.slice(6) : `${data}\n${line.slice(6)}`;
    }
    if (id !== undefined) this.cursor = id;
    if (data === undefined) return;
    // `data` is the published JSON text: spliced in as it is, not parsed and re-encoded.
    const json = `{"id":${JSON.stringify(id ?? this.cursor ?? '')},"event":${JSON.stringify(event)},"data":${data}}`;
    this.events.push(json);
    this.bytes += json.length;
    this.onEvent?.();
  }

  /** The answer, or undefined if the stream ended before it began (no cursor to give). */
  answer(retryMs: number): string | undefined {
    if (this.cursor === undefined) return undefined;
    return `{"events":[${this.events.join(',')}],"lastEventId":${JSON.stringify(this.cursor)},"retry":${retryMs}}`;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  end(): void {
    this.finish();
  }

  destroy(): void {
    this.finish();
  }

  /** Stops collecting and tells the hub the connection is gone. */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.closeListeners.push(listener);
  }
}
