import { isValidTopic, parseCursor } from '@streamcast/protocol';
import { EventSource, type ErrorEvent, type EventSourceInit, type FetchLike } from 'eventsource';
import {
  EXIT,
  UsageError,
  note,
  parseCommandLine,
  parseCount,
  parseHttpUrl,
  parseSeconds,
  runMain,
} from '@streamcast/command-line';
import { formatPretty, locateEvent, type TailEvent } from './format-event';

const PROGRAM = 'streamcast-tail';
const DEFAULT_GATEWAY = 'http://127.0.0.1:3000';

export const TAIL_HELP = `Usage:
  ${PROGRAM} [options] <topic>...

Subscribes to topics on a gateway (GET /events?topic=...) and prints their events as they
arrive: readable lines on a terminal, one JSON object per line when the output is piped
({"id": "<cursor>", "event": "<type>", "data": <the data, parsed>}). Reconnects by itself after
a lost connection and resumes after the last event printed, so nothing is missed or repeated.

Options:
  --url <url>      the gateway (env GATEWAY_URL; default ${DEFAULT_GATEWAY})
  --from <cursor>  start after this event: an id printed by ${PROGRAM} or streamcast-publish;
                   the topics it covers replay their history after it first, others start live
  --json           print JSON lines even on a terminal
  --pretty         print readable lines even when piped
  --token <jwt>    bearer token, sent as the Authorization header (env STREAMCAST_TOKEN)
  --count <n>      exit 0 after <n> events (reset notices not counted)
  --timeout <s>    exit 3 if no event arrives for <s> seconds (the clock restarts with each)
  -q, --quiet      no connection notices on stderr (errors are still printed)
  -h, --help       show this help

Reset: when history no longer holds the events after the cursor (trimmed, or Redis lost it),
the gateway sends a "reset" event naming the topics; they continue live from there, with no
replay of what was stored before it. A terminal
gets a note on stderr; JSON output gets it as a line like any other event:
  {"id":"...","event":"reset","data":{"topics":["news"],"reason":"history-trimmed"}}

Connection notices go to stderr: connected, connection lost, reconnected. Refusals that
retrying cannot cure (400 bad request, 401/403 token, 404) end the run with the gateway's
error code and message; other failures (5xx, a balancer's 502) are retried with a growing
pause, resuming from the last event.

Exit codes:
  0  --count reached, or interrupted (Ctrl-C)
  1  the gateway refused the subscription (the error code and message are printed)
  2  bad usage: unknown option, bad topic, bad cursor (also when the gateway answers 400)
  3  --timeout passed without an event

Examples:
  ${PROGRAM} news
  ${PROGRAM} --url http://127.0.0.1:3000 news stocks/AAPL
  ${PROGRAM} --json news | jq -c .data
  ${PROGRAM} --from 2~tc0otp.k3x9ab12cd.mwwam29w.0 news
  ${PROGRAM} --count 1 --timeout 30 uploads/42      # wait for one event, in a script

From the repository root: npm run -s tail -- --url http://127.0.0.1:3000 news
`;

interface TailOptions {
  base: URL;
  topics: string[];
  from: string | undefined;
  json: boolean;
  token: string | undefined;
  count: number | undefined;
  timeoutS: number | undefined;
  quiet: boolean;
}

/** Retrying cannot help: wrong request, wrong or missing token, wrong URL. */
const PERMANENT = new Set([400, 401, 403, 404, 405, 410]);
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/**
 * EventSource delivers an event only to listeners of its type, and tail wants every type: this
 * sees each MessageEvent as it is dispatched, whatever its name.
 */
class AnyEventSource extends EventSource {
  constructor(
    url: URL,
    init: EventSourceInit,
    private readonly onAny: (event: MessageEvent) => void,
  ) {
    super(url, init);
  }

  override dispatchEvent(event: Event): boolean {
    if (event instanceof MessageEvent) this.onAny(event);
    return super.dispatchEvent(event);
  }
}

export function main(argv: string[]): void {
  runMain(PROGRAM, () => tailCommand(argv));
}

function parseOptions(argv: string[]): TailOptions | undefined {
  const parsed = parseCommandLine({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      from: { type: 'string' },
      json: { type: 'boolean' },
      pretty: { type: 'boolean' },
      token: { type: 'string' },
      count: { type: 'string' },
      timeout: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  if (positionals.length === 0) throw new UsageError('no topic: give one or more topics');
  for (const topic of positionals) {
    if (!isValidTopic(topic)) {
      throw new UsageError(
        `topic ${JSON.stringify(topic)}: a topic is 1-200 characters of A-Z a-z 0-9 _ - . : /`,
      );
    }
  }
  if (values.json && values.pretty) throw new UsageError('give --json or --pretty, not both');
  if (values.from !== undefined) {
    try {
      parseCursor(values.from);
    } catch {
      throw new UsageError(
        `--from ${JSON.stringify(values.from.slice(0, 40))} is not a cursor: give an id printed by ${PROGRAM} or streamcast-publish`,
      );
    }
  }
  const envUrl = process.env.GATEWAY_URL || undefined;
  const raw = values.url ?? envUrl ?? DEFAULT_GATEWAY;
  return {
    base: parseHttpUrl(values.url !== undefined ? '--url' : 'GATEWAY_URL', raw),
    // The cursor's topic indexes refer to the sorted, distinct list (as the gateway sorts it).
    topics: [...new Set(positionals)].sort(),
    from: values.from || undefined,
    json: values.json ?? (values.pretty ? false : !process.stdout.isTTY),
    token: values.token ?? (process.env.STREAMCAST_TOKEN || undefined),
    count: parseCount('--count', values.count),
    timeoutS: parseSeconds('--timeout', values.timeout),
    quiet: values.quiet ?? false,
  };
}

async function tailCommand(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (!options) {
    process.stdout.write(TAIL_HELP);
    return EXIT.ok;
  }
  return new Promise<number>((resolve) => new Tail(options, resolve).start());
}

class Tail {
  private source: AnyEventSource | undefined;
  private cursor: string | undefined;
  private received = 0;
  private everConnected = false;
  /** Set when a loss was announced; cleared once the next connection proves itself. */
  private lost = false;
  private confirmTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private backoffMs = BACKOFF_MIN_MS;
  /** The answer of the last request that was not a stream, for EventSource tells only its status. */
  private refusal: { status: number; code?: string; message?: string } | undefined;
  private done = false;
  private readonly shownUrl: string;

  constructor(
    private readonly options: TailOptions,
    private readonly finish: (code: number) => void,
  ) {
    this.cursor = options.from;
    this.shownUrl = new URL('/events', options.base).toString();
  }

  start(): void {
    const stop = () => {
      if (!this.options.json && this.cursor)
        this.info(`stopped; resume with --from ${this.cursor}`);
      this.end(EXIT.ok);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    this.armIdleTimer();
    this.connect();
  }

  private connect(): void {
    const url = new URL('/events', this.options.base);
    for (const topic of this.options.topics) url.searchParams.append('topic', topic);
    // First connection of this EventSource: the query parameter. EventSource itself sends
    // Last-Event-ID on its reconnects, which the gateway prefers.
    if (this.cursor) url.searchParams.set('lastEventId', this.cursor);
    const source = new AnyEventSource(url, { fetch: this.fetch }, (e) => this.onEvent(e));
    source.addEventListener('open', () => this.onOpen());
    source.addEventListener('error', (e) => this.onError(source, e));
    this.source = source;
  }

  private readonly fetch: FetchLike = async (input, init) => {
    const headers: Record<string, string> = { ...init.headers };
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    const res = await fetch(input, { ...init, headers });
    this.refusal = undefined;
    if (res.status !== 200) {
      const body = (await res.json().catch(() => undefined)) as
        { error?: { code?: string; message?: string } } | undefined;
      this.refusal = { status: res.status, code: body?.error?.code, message: body?.error?.message };
      // Read to the end (the connection is free again); EventSource looks at the status only.
      return {
        status: res.status,
        headers: res.headers,
        redirected: res.redirected,
        url: res.url,
        body: null,
      };
    } else if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      this.refusal = {
        status: 200,
        message: `not an event stream (content-type ${res.headers.get('content-type') ?? 'none'}); is --url a gateway?`,
      };
    }
    return res;
  };

  private onOpen(): void {
    this.backoffMs = BACKOFF_MIN_MS;
    if (!this.everConnected) {
      this.everConnected = true;
      this.info(`connected to ${this.shownUrl} (${this.options.topics.join(', ')})`);
      return;
    }
    // A gateway that cannot serve answers 200 and closes at once: call it reconnected only
    // once the stream has stayed open a moment (or delivered an event).
    clearTimeout(this.confirmTimer);
    this.confirmTimer = setTimeout(() => this.confirmReconnect(), 1000);
  }

  private confirmReconnect(): void {
    clearTimeout(this.confirmTimer);
    if (!this.lost) return;
    this.lost = false;
    this.info(this.cursor ? `reconnected; resuming after ${this.cursor}` : 'reconnected');
  }

  private onError(source: AnyEventSource, event: Event): void {
    // An event published with the type "error" is data, not a connection error.
    if (event instanceof MessageEvent || this.done) return;
    clearTimeout(this.confirmTimer);
    const detail = (event as ErrorEvent).message;
    if (source.readyState === EventSource.CONNECTING) {
      // EventSource retries by itself (after the gateway's retry: delay), with Last-Event-ID.
      if (!this.lost) {
        this.lost = true;
        this.info(
          this.everConnected
            ? `connection lost${detail ? ` (${detail})` : ''}; reconnecting`
            : `cannot reach ${this.shownUrl}${detail ? ` (${detail})` : ''}; retrying`,
        );
      }
      return;
    }
    // EventSource gave up for good (an error status or not a stream): decide ourselves.
    source.close();
    const refusal = this.refusal;
    const what = refusal
      ? [refusal.status === 200 ? undefined : String(refusal.status), refusal.code, refusal.message]
          .filter(Boolean)
          .join(' ')
      : (detail ?? 'the stream failed');
    if (!refusal || refusal.status === 200 || PERMANENT.has(refusal.status)) {
      const resume = this.cursor ? `; resume with --from ${this.cursor}` : '';
      note(PROGRAM, `${this.shownUrl} refused: ${what}${resume}`);
      // 400: the gateway disagrees with the arguments (e.g. a lower MAX_TOPICS): bad usage.
      this.end(refusal?.status === 400 ? EXIT.usage : EXIT.failed);
      return;
    }
    const delay = Math.round(this.backoffMs * (0.75 + Math.random() / 2));
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.lost = true;
    this.info(`gateway answered ${what}; trying again in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private onEvent(message: MessageEvent): void {
    if (this.done) return;
    const previous = this.cursor;
    if (message.lastEventId) this.cursor = message.lastEventId;
    if (this.lost) this.confirmReconnect();
    this.armIdleTimer();
    const text = String(message.data);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
    const event: TailEvent = { id: message.lastEventId, event: message.type, data };
    const isReset = event.event === 'reset';
    if (this.options.json) {
      process.stdout.write(`${JSON.stringify(event)}\n`);
    } else if (isReset) {
      const reset = data as { topics?: string[]; reason?: string };
      note(
        PROGRAM,
        `reset ${(reset.topics ?? []).join(', ')} (${reset.reason ?? 'unknown'}): ` +
          'history no longer has every event after the cursor; these topics continue from here',
      );
    } else {
      const where = event.id ? locateEvent(this.options.topics, previous, event.id) : {};
      process.stdout.write(
        formatPretty(event, {
          ...where,
          colors: process.stdout.hasColors?.() ?? false,
          columns: process.stdout.columns || 120,
        }),
      );
    }
    if (isReset) return;
    this.received++;
    if (this.options.count !== undefined && this.received >= this.options.count) this.end(EXIT.ok);
  }

  private armIdleTimer(): void {
    if (this.options.timeoutS === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      note(PROGRAM, `no event for ${this.options.timeoutS} s (--timeout)`);
      this.end(EXIT.timeout);
    }, this.options.timeoutS * 1000);
  }

  /** Notices about the connection: stderr, unless --quiet. */
  private info(message: string): void {
    if (!this.options.quiet) note(PROGRAM, message);
  }

  private end(code: number): void {
    if (this.done) return;
    this.done = true;
    this.source?.close();
    for (const timer of [this.confirmTimer, this.retryTimer, this.idleTimer]) clearTimeout(timer);
    this.finish(code);
  }
}

if (require.main === module) main(process.argv.slice(2));
