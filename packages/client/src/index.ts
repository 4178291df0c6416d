/**
 * @streamcast/client: subscribes a browser (or any runtime with `fetch`) to a streamcast gateway.
 *
 * - EventSource underneath, with typed handlers (data JSON-parsed) and the cursor tracked;
 * - resumes from the last cursor after every reconnection, with exponential backoff and full
 *   jitter where EventSource would give up (a 503 from a balancer, a network change);
 * - asks a token callback before every (re)connection, and reopens the stream itself when a
 *   token expires (the gateway ends a stream at its token's `exp`);
 * - long-polls `GET /poll` where EventSource is missing or blocked, with the same cursor,
 *   resume and `reset` semantics.
 *
 * One file, no dependencies, no DOM typings needed: bundlers import this source, and every
 * gateway serves it transpiled as `/streamcast-client.js`, which defines the global `Streamcast`.
 */

/** The data type of each event type: `{ priceUpdate: { symbol: string; price: string } }`. */
export type EventMap = Record<string, unknown>;

export interface EventMeta {
  /** The event's id: the connection's cursor once this event is delivered. */
  id: string;
  /** Its type: `message` when it was published without one. */
  event: string;
  /** The topic it was published to: always known with one topic, read from the cursor with several. */
  topic?: string;
}

export type ResetReason = 'history-trimmed' | 'history-lost' | 'cursor-unknown';

/** The gateway's `reset`: these topics could not be resumed and continue live from here. */
export interface ResetInfo {
  topics: string[];
  reason: ResetReason;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';
export type Transport = 'sse' | 'poll';

export interface StreamcastOptions {
  /** Topics of the subscription (`?topic=`; may be empty for a route that names its own). */
  topics: string[];
  /** Gateway base URL. @default the page's origin */
  url?: string;
  /** @default '/events' */
  streamPath?: string;
  /** @default '/poll' */
  pollPath?: string;
  /** Resume after this cursor (an event id seen earlier) instead of starting live. */
  lastEventId?: string;
  /**
   * Returns a token (JWT) valid now; called before every connection and every poll. Sent as
   * `?token=` to the stream (EventSource cannot set headers), as `Authorization: Bearer` to `/poll`.
   */
  token?: () => string | Promise<string>;
  /** Send cookies (the `sse_token` cookie) to another origin. @default false */
  withCredentials?: boolean;
  /** `auto`: EventSource, long-polling where it is missing or blocked. @default 'auto' */
  transport?: 'auto' | Transport;
  /** Backoff: the first reconnection waits up to this long (full jitter), doubling per failure. @default 1000 */
  minDelayMs?: number;
  /** Backoff ceiling. @default 30000 */
  maxDelayMs?: number;
  /** A stream not open after this long counts as a failed attempt. @default 10000 */
  openTimeoutMs?: number;
  /** How long one poll may wait for events, 0–30 s. @default 25 */
  pollTimeoutS?: number;
  /** Connected (again): the stream opened, or a poll was answered. */
  onOpen?: (info: { transport: Transport }) => void;
  /** Any failure; the client reconnects by itself unless `error.fatal` (then it is closed). */
  onError?: (error: StreamcastError) => void;
  onStateChange?: (state: ConnectionState, previous: ConnectionState) => void;
  /** The gateway could not resume these topics (history trimmed or lost, cursor unknown). */
  onReset?: (reset: ResetInfo, meta: EventMeta) => void;
}

/** A failed connection or poll. `status` and `code` are the gateway's when it answered. */
export class StreamcastError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  /** True when retrying cannot help (400, 401 other than TOKEN_EXPIRED, 403, 404): the client closed. */
  readonly fatal: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { status?: number; code?: string; fatal?: boolean; retryAfterMs?: number } = {},
  ) {
    super(message);
    this.name = 'StreamcastError';
    this.status = details.status;
    this.code = details.code;
    this.fatal = details.fatal === true;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Opens a subscription; register handlers with `on` right away (nothing is delivered before the next tick). */
export function connect<E extends EventMap = EventMap>(
  options: StreamcastOptions,
): StreamcastClient<E> {
  return new StreamcastClient<E>(options);
}

// What the client needs of the platform, typed here so that it compiles without the DOM library.
interface MessageEventLike {
  data?: unknown;
  lastEventId?: string;
}
interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: MessageEventLike) => void): void;
  close(): void;
}
interface ResponseLike {
  status: number;
  headers: { get(name: string): string | null };
  json(): Promise<unknown>;
}
interface AbortControllerLike {
  signal: unknown;
  abort(): void;
}
interface Platform {
  EventSource?: new (url: string, init: { withCredentials: boolean }) => EventSourceLike;
  fetch?: (url: string, init: Record<string, unknown>) => Promise<ResponseLike>;
  AbortController?: new () => AbortControllerLike;
  location?: { origin?: string };
  addEventListener?: (type: string, listener: () => void) => void;
  removeEventListener?: (type: string, listener: () => void) => void;
}
const platform = () => globalThis as unknown as Platform;

type Timer = ReturnType<typeof setTimeout>;
type Handler = (data: unknown, meta: EventMeta) => void;
interface PollAnswer {
  events: { id: string; event: string; data: unknown }[];
  lastEventId: string;
  /** The gateway's reconnection delay, ms. */
  retry?: number;
}

/** EventSource.CLOSED */
const CLOSED = 2;
/** SSE attempts that never open before the gateway is asked, over /poll, whether SSE is blocked. */
const SSE_ATTEMPTS = 3;
/** A stream open this long (or that delivered an event) resets the backoff. */
const HEALTHY_MS = 3000;

export class StreamcastClient<E extends EventMap = EventMap> {
  private readonly options: StreamcastOptions;
  private readonly topics: string[];
  private readonly base: string;
  private cursor: string | undefined;
  /** Topics by their name in cursors, built when first needed. */
  private fingerprints: Map<string, string> | undefined;
  private currentState: ConnectionState = 'connecting';
  private currentTransport: Transport;
  private readonly handlers = new Map<string, Set<Handler>>();
  /** Bumped by every attempt and by close(): callbacks of an older attempt ignore themselves. */
  private run = 0;
  private source: EventSourceLike | undefined;
  private sourceTypes = new Set<string>();
  private sourceOpen = false;
  private aborter: AbortControllerLike | undefined;
  private timer: Timer | undefined;
  private openTimer: Timer | undefined;
  private healthyTimer: Timer | undefined;
  private everOpened = false;
  /** Consecutive failed attempts: the backoff exponent. */
  private failures = 0;
  /** Consecutive SSE attempts that never opened. */
  private sseFailures = 0;
  private probeDue = false;
  /** A probe poll was answered while SSE would not open: one more SSE failure and we poll. */
  private pollAnswered = false;
  /** The server has no poll route (see isMissingRoute): no fallback, no start cursor. */
  private pollMissing = false;
  private expiredRetried = false;
  private readonly onOnline = () => {
    if (this.timer !== undefined) this.schedule(0);
  };

  constructor(options: StreamcastOptions) {
    if (!Array.isArray(options.topics)) throw new TypeError('streamcast: topics must be an array');
    this.options = options;
    // The gateway's order: cursor entries are indexed by the sorted, distinct topics.
    this.topics = [...new Set(options.topics)].sort();
    const base = options.url ?? platform().location?.origin;
    if (!base) throw new TypeError('streamcast: url is required outside a page');
    this.base = base.replace(/\/+$/, '');
    this.cursor = options.lastEventId || undefined;
    const hasEventSource = typeof platform().EventSource === 'function';
    const transport = options.transport ?? 'auto';
    if (transport === 'sse' && !hasEventSource)
      throw new TypeError('streamcast: EventSource is not available');
    this.currentTransport = transport === 'poll' || !hasEventSource ? 'poll' : 'sse';
    if (this.currentTransport === 'poll' && this.topics.length === 0) {
      throw new TypeError('streamcast: long-polling needs topics');
    }
    platform().addEventListener?.('online', this.onOnline);
    this.schedule(0);
  }

  /** The cursor: the id of the last event delivered (or where the stream started). */
  get lastEventId(): string | undefined {
    return this.cursor;
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get transport(): Transport {
    return this.currentTransport;
  }

  /** Calls `handler` with each event of this type, its data parsed; returns the unsubscribe. */
  on<K extends keyof E & string>(
    event: K,
    handler: (data: E[K], meta: EventMeta) => void,
  ): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler);
    this.listen(event);
    return () => this.off(event, handler);
  }

  off<K extends keyof E & string>(event: K, handler: (data: E[K], meta: EventMeta) => void): void {
    this.handlers.get(event)?.delete(handler as Handler);
  }

  /** Ends the subscription for good. */
  close(): void {
    if (this.currentState === 'closed') return;
    this.stop();
    platform().removeEventListener?.('online', this.onOnline);
    this.setState('closed');
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.attempt();
    }, delayMs);
  }

  /** Drops the current attempt: its stream, its poll, its timers. */
  private stop(): void {
    this.run++;
    for (const timer of [this.timer, this.openTimer, this.healthyTimer]) {
      if (timer !== undefined) clearTimeout(timer);
    }
    this.timer = this.openTimer = this.healthyTimer = undefined;
    this.source?.close();
    this.source = undefined;
    this.sourceOpen = false;
    this.aborter?.abort();
    this.aborter = undefined;
  }

  private async attempt(): Promise<void> {
    this.stop();
    const run = this.run;
    try {
      const token = await this.getToken();
      if (run !== this.run) return;
      if (
        this.currentTransport === 'sse' &&
        this.pollable() &&
        (this.probeDue || this.cursor === undefined)
      ) {
        // Without a cursor: learn where the topics stand first, so that a reconnection before
        // the first event resumes from there (EventSource hides the stream's first id).
        // After SSE_ATTEMPTS failed opens: ask whether the gateway answers at all.
        const probing = this.probeDue;
        this.probeDue = false;
        const answer = await this.poll(run, token, 0).catch((err: unknown) => {
          if (!isMissingRoute(err)) throw err;
          this.pollMissing = true;
          return undefined;
        });
        if (run !== this.run) return;
        if (answer) this.take(run, answer);
        if (probing && answer) {
          // The gateway answers; SSE does not open. A second time: SSE is blocked on this path.
          if (this.pollAnswered) this.currentTransport = 'poll';
          this.pollAnswered = true;
        }
        if (run !== this.run) return;
      }
      if (this.currentTransport === 'poll') await this.pollLoop(run, token);
      else this.openSource(run, token);
    } catch (err) {
      if (run === this.run) this.failed(asError(err));
    }
  }

  private pollable(): boolean {
    return !this.pollMissing && this.topics.length > 0;
  }

  private canFallBack(): boolean {
    return this.pollable() && this.options.transport !== 'sse';
  }

  private openSource(run: number, token: string | undefined): void {
    const EventSource = platform().EventSource!;
    const url = this.url(
      this.options.streamPath ?? '/events',
      token === undefined ? [] : [['token', token]],
    );
    const source = new EventSource(url, { withCredentials: this.options.withCredentials === true });
    this.source = source;
    this.sourceTypes = new Set(['open', 'error']);
    for (const type of ['message', 'reset', ...this.handlers.keys()]) this.listen(type);
    // Published event types may be called "open" or "error" too: those carry data.
    source.addEventListener('open', (event) => {
      if (run !== this.run) return;
      if (typeof event.data === 'string') this.fromSource(run, 'open', event);
      else this.sourceOpened(run);
    });
    source.addEventListener('error', (event) => {
      if (run !== this.run) return;
      if (typeof event.data === 'string') this.fromSource(run, 'error', event);
      else this.sourceFailed(run, source.readyState === CLOSED);
    });
    this.armOpenTimer(run);
  }

  private listen(type: string): void {
    const source = this.source;
    if (!source || this.sourceTypes.has(type)) return;
    this.sourceTypes.add(type);
    const run = this.run;
    source.addEventListener(type, (event) => {
      if (run === this.run) this.fromSource(run, type, event);
    });
  }

  private fromSource(run: number, type: string, event: MessageEventLike): void {
    const text = typeof event.data === 'string' ? event.data : '';
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON (a route's own greeting, say): the text as it is
    }
    this.dispatch(run, type, data, event.lastEventId || undefined);
  }

  private armOpenTimer(run: number): void {
    if (this.openTimer !== undefined) clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      this.openTimer = undefined;
      if (run === this.run && !this.sourceOpen) this.sourceFailed(run, true);
    }, this.options.openTimeoutMs ?? 10_000);
  }

  private sourceOpened(run: number): void {
    if (this.openTimer !== undefined) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    this.sourceOpen = true;
    this.sseFailures = 0;
    this.pollAnswered = false;
    this.healthyTimer = setTimeout(() => {
      if (run === this.run) this.failures = 0;
    }, HEALTHY_MS);
    this.opened();
  }

  private sourceFailed(run: number, closed: boolean): void {
    const wasOpen = this.sourceOpen;
    this.sourceOpen = false;
    if (this.healthyTimer !== undefined) clearTimeout(this.healthyTimer);
    this.healthyTimer = undefined;
    if (!wasOpen) this.sseFailures++;
    const error = new StreamcastError(
      wasOpen ? 'the stream was interrupted' : 'the stream did not open',
    );
    const probe =
      !wasOpen &&
      this.canFallBack() &&
      (this.pollAnswered || this.sseFailures % SSE_ATTEMPTS === 0);
    if (closed || probe || this.options.token) {
      // EventSource will not retry (closed), or must not (its URL holds a token that may have
      // expired), or the gateway is to be asked over /poll: reconnect ourselves, with the cursor.
      this.probeDue = probe;
      this.failed(error);
      return;
    }
    // EventSource reconnects by itself, sending Last-Event-ID.
    this.emitError(error);
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    this.armOpenTimer(run);
  }

  private async pollLoop(run: number, token: string | undefined): Promise<void> {
    for (;;) {
      const waited = this.cursor !== undefined;
      const started = Date.now();
      const answer = await this.poll(run, token, this.options.pollTimeoutS ?? 25);
      if (run !== this.run) return;
      this.opened();
      this.take(run, answer);
      // Events: poll again at once; none: the gateway waited already, poll again at once too,
      // unless it answered nothing at once (it is closing, say): then after its retry delay.
      if (waited && answer.events.length === 0 && Date.now() - started < 1000) {
        await new Promise((resolve) =>
          setTimeout(resolve, typeof answer.retry === 'number' ? answer.retry : 1000),
        );
      }
      if (run !== this.run) return;
      token = await this.getToken();
      if (run !== this.run) return;
    }
  }

  /** One `GET /poll`; throws a StreamcastError for anything but a well-formed 200. */
  private async poll(
    run: number,
    token: string | undefined,
    timeoutS: number,
  ): Promise<PollAnswer> {
    const { fetch, AbortController } = platform();
    if (!fetch) throw new StreamcastError('fetch is not available', { fatal: true });
    const aborter = AbortController ? new AbortController() : undefined;
    this.aborter = aborter;
    // A poll that outlives its wait by far is a dead connection.
    const deadline = setTimeout(() => aborter?.abort(), (timeoutS + 10) * 1000);
    try {
      const url = this.url(this.options.pollPath ?? '/poll', [['timeout', String(timeoutS)]]);
      const headers: Record<string, string> = { accept: 'application/json' };
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      let res: ResponseLike;
      let body: unknown;
      try {
        res = await platform().fetch!(url, {
          headers,
          credentials: this.options.withCredentials ? 'include' : 'same-origin',
          cache: 'no-store',
          signal: aborter?.signal,
        });
        body = await res.json().catch(() => undefined);
      } catch (err) {
        throw new StreamcastError(`poll failed: ${(err as Error)?.message ?? err}`);
      }
      if (res.status === 200 && isPollAnswer(body)) return body;
      const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof error?.code === 'string' ? error.code : undefined;
      const seconds = Number(res.headers.get('retry-after') ?? '');
      const fatal =
        res.status >= 400 &&
        res.status < 500 &&
        ![408, 429].includes(res.status) &&
        code !== 'TOKEN_EXPIRED';
      throw new StreamcastError(
        typeof error?.message === 'string' ? error.message : `poll answered ${res.status}`,
        {
          status: res.status,
          ...(code === undefined ? {} : { code }),
          fatal,
          ...(seconds > 0 ? { retryAfterMs: seconds * 1000 } : {}),
        },
      );
    } finally {
      clearTimeout(deadline);
      if (this.aborter === aborter && run === this.run) this.aborter = undefined;
    }
  }

  private take(run: number, answer: PollAnswer): void {
    for (const { id, event, data } of answer.events) {
      if (run !== this.run) return; // a handler closed the client
      this.dispatch(run, event, data, id);
    }
    if (run === this.run) this.cursor = answer.lastEventId;
  }

  private dispatch(run: number, event: string, data: unknown, id: string | undefined): void {
    const previous = this.cursor;
    if (id) this.cursor = id;
    this.failures = 0;
    const meta: EventMeta = { id: id ?? '', event };
    if (event === 'reset') {
      const reset = data as ResetInfo;
      safely(() => this.options.onReset?.(reset, meta));
    } else {
      const topic = this.topicOf(previous, id);
      if (topic !== undefined) meta.topic = topic;
    }
    for (const handler of [...(this.handlers.get(event) ?? [])]) {
      if (run !== this.run) return;
      safely(() => handler(data, meta));
    }
  }

  /**
   * The topic of an event: the one topic, or the only cursor entry that differs from the previous
   * cursor. Entries are `<fingerprint>.<epoch>.<ms>.<seq>` (`2~…`; the gateway's topicFingerprint)
   * or, from gateways of the previous version, `<index>.<epoch>.<ms>.<seq>` (`1~…`, index into the
   * sorted topics).
   */
  private topicOf(previous: string | undefined, id: string | undefined): string | undefined {
    if (this.topics.length === 1) return this.topics[0];
    const version = id?.slice(0, 2);
    if (!previous || !id || (version !== '2~' && version !== '1~') || !previous.startsWith(version))
      return undefined;
    const before = new Set(previous.split('~').slice(1));
    const changed = id
      .split('~')
      .slice(1)
      .filter((entry) => !before.has(entry));
    if (changed.length !== 1) return undefined;
    const key = changed[0]!.split('.')[0]!;
    if (version === '1~') return this.topics[parseInt(key, 36)];
    this.fingerprints ??= new Map(this.topics.map((topic) => [topicFingerprint(topic), topic]));
    return this.fingerprints.get(key);
  }

  private opened(): void {
    this.expiredRetried = false;
    if (this.currentState === 'open') return;
    this.everOpened = true;
    this.setState('open');
    const transport = this.currentTransport;
    safely(() => this.options.onOpen?.({ transport }));
  }

  private failed(error: StreamcastError): void {
    this.stop();
    this.emitError(error);
    if (error.fatal) {
      this.close();
      return;
    }
    let delay: number;
    if (error.code === 'TOKEN_EXPIRED' && !this.expiredRetried) {
      this.expiredRetried = true; // a fresh token, at once (once: a callback may hand out stale ones)
      delay = 0;
    } else {
      const ceiling = Math.min(
        this.options.maxDelayMs ?? 30_000,
        (this.options.minDelayMs ?? 1000) * 2 ** this.failures,
      );
      this.failures++;
      delay = Math.max(error.retryAfterMs ?? 0, Math.random() * ceiling);
    }
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    this.schedule(delay);
  }

  private emitError(error: StreamcastError): void {
    safely(() => this.options.onError?.(error));
  }

  private setState(state: ConnectionState): void {
    const previous = this.currentState;
    if (state === previous) return;
    this.currentState = state;
    safely(() => this.options.onStateChange?.(state, previous));
  }

  private async getToken(): Promise<string | undefined> {
    if (!this.options.token) return undefined;
    let token: unknown;
    try {
      token = await this.options.token();
    } catch (err) {
      throw new StreamcastError(`the token callback failed: ${(err as Error)?.message ?? err}`);
    }
    if (typeof token !== 'string' || token === '') {
      throw new StreamcastError('the token callback returned no token');
    }
    return token;
  }

  private url(path: string, extra: [string, string][]): string {
    const params: [string, string][] = this.topics.map((topic) => ['topic', topic]);
    if (this.cursor !== undefined) params.push(['lastEventId', this.cursor]);
    params.push(...extra);
    const query = params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    if (query === '') return this.base + path;
    return `${this.base}${path}${path.includes('?') ? '&' : '?'}${query}`;
  }
}

function isPollAnswer(body: unknown): body is PollAnswer {
  const answer = body as PollAnswer | undefined;
  return typeof answer?.lastEventId === 'string' && Array.isArray(answer.events);
}

/**
 * The server has no poll route: a 404 that is a gateway's NOT_FOUND, or not the API's at all (no
 * error code: an embedding app's own 404 page, Express's HTML one). A 404 with another API code
 * is a refusal, and fatal.
 */
function isMissingRoute(err: unknown): boolean {
  return (
    err instanceof StreamcastError &&
    err.status === 404 &&
    (err.code === 'NOT_FOUND' || err.code === undefined)
  );
}

function asError(err: unknown): StreamcastError {
  return err instanceof StreamcastError
    ? err
    : new StreamcastError(String((err as Error)?.message ?? err));
}

/** Runs a user callback; what it throws is reported as uncaught, and the client carries on. */
function safely(callback: () => void): void {
  try {
    callback();
  } catch (err) {
    setTimeout(() => {
      throw err;
    }, 0);
  }
}

/**
 * A topic's name in the gateway's cursors: the same function as `topicFingerprint` in
 * `@streamcast/protocol` (this file depends on nothing; a test checks the two agree).
 */
export function topicFingerprint(topic: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) {
    h ^= topic.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) % 36 ** 6).toString(36).padStart(6, '0');
}
