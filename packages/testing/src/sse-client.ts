import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createParser } from 'eventsource-parser';
import { waitFor } from './wait';

export interface SseEvent {
  id: string | undefined;
  /** `message` when the frame had no `event:` line, as EventSource reports it. */
  event: string;
  data: string;
}

/**
 * A raw SSE client for tests: one HTTP request, every frame recorded (events, retry lines,
 * comments), no reconnection. For a browser-like client use the `eventsource` package.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  readonly retries: number[] = [];
  readonly comments: string[] = [];
  raw = '';
  ended = false;

  private constructor(
    private readonly response: IncomingMessage,
    readonly body: string,
  ) {}

  get status(): number {
    return this.response.statusCode ?? 0;
  }

  get headers(): IncomingHttpHeaders {
    return this.response.headers;
  }

  /** Opens `url`; resolves once the response headers arrived. */
  static open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream', ...headers } });
      req.once('error', reject);
      req.once('response', (res) => {
        const client = new SseClient(res, '');
        const parser = createParser({
          onEvent: (e) =>
            client.events.push({ id: e.id, event: e.event ?? 'message', data: e.data }),
          onRetry: (ms) => client.retries.push(ms),
          onComment: (c) => client.comments.push(c),
        });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          client.raw += chunk;
          parser.feed(chunk);
        });
        const end = () => {
          client.ended = true;
        };
        res.once('end', end);
        res.once('close', end);
        res.once('error', end);
        resolve(client);
      });
      req.end();
    });
  }

  /** Events other than `reset`, with their data parsed as JSON. */
  data<T = unknown>(event?: string): T[] {
    return this.events
      .filter((e) => e.event !== 'reset' && (event === undefined || e.event === event))
      .map((e) => JSON.parse(e.data) as T);
  }

  resets(): Array<{ topics: string[]; reason: string }> {
    return this.events.filter((e) => e.event === 'reset').map((e) => JSON.parse(e.data));
  }

  get lastId(): string | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const id = this.events[i]?.id;
      if (id) return id;
    }
    return undefined;
  }

  async waitForEvents(count: number, timeoutMs = 10_000, event?: string): Promise<SseEvent[]> {
    const matching = () => this.events.filter((e) => event === undefined || e.event === event);
    await waitFor(
      () => matching().length >= count,
      () =>
        `${count} '${event ?? 'any'}' events (got ${matching().length}; ` +
        `${this.ended ? 'the stream ended' : 'the stream is open'}; last of ${this.events.length}: ` +
        `${
          this.events
            .slice(-3)
            .map((e) => `${e.event ?? 'message'} ${e.id ?? ''} ${e.data.slice(0, 160)}`)
            .join(' | ') || 'none'
        })`,
      timeoutMs,
    );
    return matching();
  }

  async waitForEnd(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.ended, 'the stream to end', timeoutMs);
  }

  close(): void {
    this.response.destroy();
  }
}

/** The body of a non-stream answer (errors), parsed as JSON. */
export function fetchJson(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.once('error', reject);
    if (init.body !== undefined) req.write(init.body);
    req.end();
  });
}

/** POST /publish on a gateway; returns the event's id. */
export async function publishHttp(
  baseUrl: string,
  topic: string,
  event: string | undefined,
  data: unknown,
): Promise<string> {
  const payload: Record<string, unknown> = { topic, data };
  if (event !== undefined) payload.event = event;
  const res = await fetchJson(`${baseUrl}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  if (res.status !== 200)
    throw new Error(`publish answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

/**
 * One sample of a gateway's /metrics, `name` or `name{labels}` as printed; a name without labels
 * sums all its labelled series. NaN when absent.
 */
export async function readMetric(baseUrl: string, name: string): Promise<number> {
  const text = (await fetchJson(`${baseUrl}/metrics`)).body as string;
  return sumSamples(text, name);
}

/** The sample `name` (or `name{labels}`) of a Prometheus text; a bare name sums its series. */
export function sumSamples(text: string, name: string): number {
  let sum = Number.NaN;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const key = line.slice(0, space);
    if (key === name || (!name.includes('{') && key.startsWith(`${name}{`))) {
      sum = (Number.isNaN(sum) ? 0 : sum) + Number(line.slice(space + 1));
    }
  }
  return sum;
}
