import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fetchJson,
  launchChromium,
  mintToken,
  publishHttp,
  sleep,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';
import { createBroadcaster, sse, type Broadcaster } from '@streamcast/express';
import express from 'express';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * @streamcast/client (docs/client.md, "Client library") in real headless Chromium, loaded as the plain
 * script every gateway serves (/streamcast-client.js), against real gateway processes: events
 * over SSE and over long polling, tokens that expire under a live subscription, `reset`,
 * reconnection with backoff after a non-200, and the fallback when SSE is blocked.
 */

const SECRET = 'client-library-test-secret-0123456789abcdef';
const CURSOR_RE = /^2~[0-9a-z.~]+$/;

let browser: Browser;
let contexts: BrowserContext[] = [];
let webRoot: string;

beforeAll(async () => {
  browser = await launchChromium();
  // A blank page on the gateway's origin: the client script is added to it by the test.
  webRoot = mkdtempSync(join(tmpdir(), 'client-library-web-'));
  writeFileSync(join(webRoot, 'index.html'), '<!doctype html><title>client library</title>');
}, 60_000);

afterEach(async () => {
  for (const context of contexts) await context.close();
  contexts = [];
});

afterAll(async () => {
  await browser?.close();
  if (webRoot) rmSync(webRoot, { recursive: true, force: true });
});

interface Seen {
  url: string;
  path: string;
  time: number;
  /** Response status, once it came. */
  status?: number;
  headers: Record<string, string>;
}

interface ClientPage {
  page: Page;
  /** Every request the page made to the gateway, in order. */
  requests: Seen[];
  /** Uncaught exceptions and console errors other than the browser's own network notices. */
  errors: string[];
}

async function openClientPage(
  baseUrl: string,
  options: { noEventSource?: boolean; token?: () => Promise<string> } = {},
): Promise<ClientPage> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  const requests: Seen[] = [];
  const errors: string[] = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    requests.push({
      url: request.url(),
      path: url.pathname,
      time: Date.now(),
      headers: request.headers(),
    });
  });
  page.on('response', (response) => {
    const seen = [...requests]
      .reverse()
      .find((r) => r.url === response.url() && r.status === undefined);
    if (seen) seen.status = response.status();
  });
  page.on('console', (message) => {
    // The browser logs refused requests (401, 503, 403) itself: expected here.
    if (
      message.type() === 'error' &&
      !/Failed to load resource|EventSource|net::ERR_/.test(message.text())
    ) {
      errors.push(`console.error: ${message.text()}`);
    }
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  if (options.token) await page.exposeFunction('mintToken', options.token);
  await page.goto(`${baseUrl}/`, { waitUntil: 'load' });
  if (options.noEventSource) await page.evaluate('delete window.EventSource');
  await page.addScriptTag({ url: '/streamcast-client.js' });
  return { page, requests, errors };
}

interface ClientSetup {
  topics: string[];
  types: string[];
  lastEventId?: string;
  transport?: 'auto' | 'sse' | 'poll';
  token?: boolean;
  minDelayMs?: number;
  maxDelayMs?: number;
}

interface Delivered {
  data: any;
  meta: { id: string; event: string; topic?: string };
}

interface Snapshot {
  events: Delivered[];
  resets: { reset: { topics: string[]; reason: string }; meta: { id: string; event: string } }[];
  states: string[];
  errors: { message: string; code?: string; status?: number; fatal: boolean }[];
  opens: string[];
  lastEventId: string | undefined;
  state: string;
  transport: string;
}

/** Starts Streamcast.connect in the page; every callback is logged into window.__log. */
async function startClient(page: Page, setup: ClientSetup): Promise<void> {
  await page.evaluate((setup) => {
    const w = globalThis as any;
    const log: Record<'events' | 'resets' | 'states' | 'errors' | 'opens', unknown[]> = {
      events: [],
      resets: [],
      states: [],
      errors: [],
      opens: [],
    };
    w.__log = log;
    const client = w.Streamcast.connect({
      topics: setup.topics,
      lastEventId: setup.lastEventId,
      transport: setup.transport,
      minDelayMs: setup.minDelayMs,
      maxDelayMs: setup.maxDelayMs,
      token: setup.token ? () => w.mintToken() : undefined,
      onReset: (reset: unknown, meta: unknown) => log.resets.push({ reset, meta }),
      onStateChange: (state: string) => log.states.push(state),
      onOpen: (info: { transport: string }) => log.opens.push(info.transport),
      onError: (e: any) =>
        log.errors.push({ message: e.message, code: e.code, status: e.status, fatal: e.fatal }),
    });
    for (const type of setup.types) {
      client.on(type, (data: unknown, meta: unknown) => log.events.push({ data, meta }));
    }
    w.__client = client;
  }, setup);
}

function snapshot(page: Page): Promise<Snapshot> {
  return page.evaluate(() => {
    const w = globalThis as any;
    return {
      ...w.__log,
      lastEventId: w.__client.lastEventId,
      state: w.__client.state,
      transport: w.__client.transport,
    };
  });
}

async function until(
  page: Page,
  accept: (s: Snapshot) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<Snapshot> {
  let last: Snapshot | undefined;
  await waitFor(
    async () => accept((last = await snapshot(page))),
    () => `${what} (last seen: ${JSON.stringify(last).slice(0, 2000)})`,
    timeoutMs,
    100,
  );
  return last as Snapshot;
}

const numbers = (events: Delivered[]) => events.map((e) => e.data?.n as number);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Publishes {n: 1}, {n: 2}, … every `everyMs` until stopped; resolves to the count published. */
function publishContinuously(
  publish: (n: number) => Promise<unknown>,
  everyMs: number,
): { stop(): Promise<number> } {
  let stopped = false;
  let n = 0;
  const loop = (async () => {
    while (!stopped) {
      await publish(++n);
      await sleep(everyMs);
    }
    return n;
  })();
  return {
    stop: async () => {
      stopped = true;
      return loop;
    },
  };
}

describe('@streamcast/client on one gateway (Redis)', () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      WEB_ROOT: webRoot,
      // Streams end every 2.4-4 s (a random point of the lifetime's last fifth, then the next
      // once-a-second sweep): the client must resume across those closes (native reconnect).
      STREAM_MAX_LIFETIME_S: '3',
    });
  }, 60_000);

  afterAll(async () => {
    expect(await gateway?.stop()).toBe(0);
  });

  it('serves /streamcast-client.js as a cacheable script defining Streamcast', async () => {
    const res = await fetch(`${gateway.url}/streamcast-client.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const body = await res.text();
    expect(body).toContain('root.Streamcast = exports');
    expect(body).not.toMatch(/\brequire\(/);
    const again = await fetch(`${gateway.url}/streamcast-client.js`, {
      headers: { 'if-none-match': etag! },
    });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });

  it('1. receives events over SSE in order, parsed, with meta, and tracks the cursor', async () => {
    const topic = `cl-sse-${testPrefix()}`;
    const { page, requests, errors } = await openClientPage(gateway.url);
    await startClient(page, { topics: [topic], types: ['tick', 'message'] });
    await until(page, (s) => s.state === 'open', 'the client to open');
    const ids: string[] = [];
    for (const n of range(1, 5))
      ids.push(await publishHttp(gateway.url, topic, 'tick', { n, text: `n=${n}` }));
    ids.push(await publishHttp(gateway.url, topic, undefined, { n: 6 })); // untyped: "message"
    let seen = await until(page, (s) => s.events.length >= 6, 'six events');
    expect(numbers(seen.events)).toEqual(range(1, 6));
    expect(seen.events[0]).toEqual({
      data: { n: 1, text: 'n=1' },
      meta: { id: ids[0], event: 'tick', topic },
    });
    expect(seen.events[5]!.meta).toEqual({ id: ids[5], event: 'message', topic });
    expect(seen.events.map((e) => e.meta.id)).toEqual(ids);
    expect(seen.lastEventId).toBe(ids[5]);
    expect(seen.transport).toBe('sse');

    // Across the gateway's lifetime closes (every 2.4-4 s, then a retry of at most 1 s)
    // EventSource resumes by itself: 10 s hold at least two of them.
    const publisher = publishContinuously(
      (n) => publishHttp(gateway.url, topic, 'tick', { n: n + 6 }),
      50,
    );
    await sleep(10_000);
    const last = (await publisher.stop()) + 6;
    seen = await until(page, (s) => s.events.length >= last, `${last} events`);
    expect(numbers(seen.events)).toEqual(range(1, last));
    const streams = requests.filter((r) => r.path === '/events');
    expect(streams.length).toBeGreaterThanOrEqual(3);
    // The first stream starts at the cursor the client learned first (one poll, no cursor).
    expect(requests.find((r) => r.path === '/poll')?.url).not.toContain('lastEventId');
    expect(streams[0]!.url).toMatch(/[?&]lastEventId=2~/);
    expect(seen.state).toBe('open');
    expect(seen.errors.every((e) => !e.fatal)).toBe(true);
    expect(errors).toEqual([]);
  }, 60_000);

  it('1b. tells the topic of each event on a multi-topic connection', async () => {
    const a = `cl-a-${testPrefix()}`;
    const b = `cl-b-${testPrefix()}`;
    const { page } = await openClientPage(gateway.url);
    await startClient(page, { topics: [b, a], types: ['tick'] });
    await until(page, (s) => s.state === 'open', 'the client to open');
    const order = [a, b, b, a, b];
    for (const [i, topic] of order.entries())
      await publishHttp(gateway.url, topic, 'tick', { n: i + 1 });
    const seen = await until(page, (s) => s.events.length >= order.length, 'five events');
    expect(seen.events.map((e) => e.meta.topic)).toEqual(order);
    expect(seen.events.every((e) => CURSOR_RE.test(e.meta.id))).toBe(true);
    expect(seen.lastEventId).toBe(seen.events[4]!.meta.id);
  });

  for (const transport of ['sse', 'poll'] as const) {
    it(`1c. resumes a page that changed its topics with its cursor: each position on its own topic (${transport})`, async () => {
      const [x, y, z] = ['x', 'y', 'z'].map((t) => `cl-set-${transport}-${t}-${testPrefix()}`) as [
        string,
        string,
        string,
      ];
      const first = await openClientPage(gateway.url);
      await startClient(first.page, { topics: [x, y], types: ['tick'], transport });
      await until(first.page, (s) => s.state === 'open', 'the first client to open');
      await publishHttp(gateway.url, x, 'tick', { n: 1, t: 'x' });
      await publishHttp(gateway.url, y, 'tick', { n: 1, t: 'y' });
      const before = await until(first.page, (s) => s.events.length >= 2, 'two events');
      await first.page.evaluate(() => (globalThis as any).__client.close());
      // While away: x's event is history to resume; z's happened before z was asked for.
      for (const [topic, t] of [
        [x, 'x'],
        [y, 'y'],
        [z, 'z'],
      ])
        await publishHttp(gateway.url, topic!, 'tick', { n: 2, t });

      // The same page, reloaded with topics x and z and the cursor it kept.
      const second = await openClientPage(gateway.url);
      await startClient(second.page, {
        topics: [z, x],
        types: ['tick'],
        lastEventId: before.lastEventId,
        transport,
      });
      await until(second.page, (s) => s.events.length >= 1, 'the history of x');
      // One at a time: the order across topics is kept live, but a poll that catches up on both
      // replays them topic by topic (the API orders events per topic only).
      await publishHttp(gateway.url, z, 'tick', { n: 3, t: 'z' });
      await until(second.page, (s) => s.events.length >= 2, "z's event");
      await publishHttp(gateway.url, x, 'tick', { n: 3, t: 'x' });
      const seen = await until(second.page, (s) => s.events.length >= 3, 'three events');
      await sleep(300);
      const after = await snapshot(second.page);
      expect(after.events.map((e) => `${e.data.t}${e.data.n}`)).toEqual(['x2', 'z3', 'x3']);
      expect(after.resets).toEqual([]);
      // After the first event (which moved x and added z's entry), the cursor tells each topic.
      expect(seen.events.slice(1).map((e) => e.meta.topic)).toEqual([z, x]);
      expect([...first.errors, ...second.errors]).toEqual([]);
    });
  }

  it('2. without EventSource, receives the same events in order over long polling', async () => {
    const topic = `cl-poll-${testPrefix()}`;
    const { page, requests, errors } = await openClientPage(gateway.url, { noEventSource: true });
    expect(await page.evaluate('typeof EventSource')).toBe('undefined');
    await startClient(page, { topics: [topic], types: ['tick', 'message'] });
    await until(page, (s) => s.state === 'open', 'the client to open');
    const ids: string[] = [];
    for (const n of range(1, 5))
      ids.push(await publishHttp(gateway.url, topic, 'tick', { n, text: `n=${n}` }));
    ids.push(await publishHttp(gateway.url, topic, undefined, { n: 6 }));
    let seen = await until(page, (s) => s.events.length >= 6, 'six events');
    expect(numbers(seen.events)).toEqual(range(1, 6));
    expect(seen.events[0]).toEqual({
      data: { n: 1, text: 'n=1' },
      meta: { id: ids[0], event: 'tick', topic },
    });
    expect(seen.events[5]!.meta).toEqual({ id: ids[5], event: 'message', topic });
    expect(seen.lastEventId).toBe(ids[5]);
    expect(seen.transport).toBe('poll');
    expect(seen.opens).toEqual(['poll']);

    // A burst, published faster than one poll round trip: several events per answer.
    const publisher = publishContinuously(
      (n) => publishHttp(gateway.url, topic, 'tick', { n: n + 6 }),
      5,
    );
    await sleep(2000);
    const last = (await publisher.stop()) + 6;
    seen = await until(page, (s) => s.events.length >= last, `${last} events`);
    expect(numbers(seen.events)).toEqual(range(1, last));

    const polls = requests.filter((r) => r.path === '/poll');
    expect(requests.filter((r) => r.path === '/events')).toEqual([]);
    expect(polls.length).toBeGreaterThanOrEqual(3);
    expect(polls[0]!.url).not.toContain('lastEventId');
    expect(polls.slice(1).every((r) => /[?&]lastEventId=2~/.test(r.url))).toBe(true);
    expect(polls.every((r) => r.status === undefined || r.status === 200)).toBe(true);
    expect(errors).toEqual([]);
  }, 30_000);

  for (const transport of ['sse', 'poll'] as const) {
    it(`4. surfaces a reset through onReset (${transport}), then continues live`, async () => {
      const topic = `cl-reset-${transport}-${testPrefix()}`;
      const cursor = '1~0.zzzzzzzz.1.0'; // well-formed, from no epoch this deployment made
      const { page, errors } = await openClientPage(gateway.url);
      await startClient(page, { topics: [topic], types: ['tick'], lastEventId: cursor, transport });
      let seen = await until(page, (s) => s.resets.length === 1, 'the reset');
      const [{ reset, meta }] = seen.resets as [Snapshot['resets'][number]];
      expect(reset.topics).toEqual([topic]);
      expect(['history-lost', 'cursor-unknown']).toContain(reset.reason);
      expect(meta.event).toBe('reset');
      expect(meta.id).toMatch(CURSOR_RE);
      expect(meta.id).not.toBe(cursor);
      expect(seen.lastEventId).toBe(meta.id);
      expect(seen.events).toEqual([]);
      const id = await publishHttp(gateway.url, topic, 'tick', { n: 1 });
      seen = await until(page, (s) => s.events.length === 1, 'the live event after the reset');
      expect(seen.events[0]!.meta.id).toBe(id);
      expect(seen.lastEventId).toBe(id);
      expect(seen.resets).toHaveLength(1);
      expect(seen.transport).toBe(transport);
      expect(errors).toEqual([]);
    });
  }

  it('6. falls back to long polling when SSE is blocked on the way', async () => {
    const topic = `cl-blocked-${testPrefix()}`;
    const { page, requests, errors } = await openClientPage(gateway.url);
    // A proxy that refuses event streams.
    await page.route(
      (url) => url.pathname === '/events',
      (route) =>
        route.fulfill({ status: 403, contentType: 'text/html', body: '<h1>blocked by proxy</h1>' }),
    );
    await startClient(page, { topics: [topic], types: ['tick'], minDelayMs: 100, maxDelayMs: 400 });
    await until(
      page,
      (s) => s.transport === 'poll' && s.state === 'open',
      'the switch to long polling',
    );
    for (const n of range(1, 3)) await publishHttp(gateway.url, topic, 'tick', { n });
    const seen = await until(page, (s) => s.events.length >= 3, 'three events');
    expect(numbers(seen.events)).toEqual(range(1, 3));
    // Several SSE attempts, and the gateway asked over /poll in between, before giving SSE up.
    expect(requests.filter((r) => r.path === '/events').length).toBeGreaterThanOrEqual(3);
    expect(seen.states[0]).toBe('open');
    expect(seen.errors.every((e) => !e.fatal)).toBe(true);
    expect(errors).toEqual([]);
  }, 30_000);
});

describe('@streamcast/client with short-lived tokens', () => {
  let gateway: GatewayProcess;
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      WEB_ROOT: webRoot,
      JWT_SECRET: SECRET,
      // A stream ends at its token's exp exactly (the hub's sweep runs every second).
      JWT_CLOCK_SKEW_S: '0',
    });
  }, 60_000);

  afterAll(async () => {
    expect(await gateway?.stop()).toBe(0);
  });

  async function publishAuthed(topic: string, data: unknown, token: string): Promise<string> {
    const res = await fetchJson(`${gateway.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ topic, event: 'tick', data }),
    });
    if (res.status !== 200)
      throw new Error(`publish answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  }

  /**
   * The page's token callback: tokens valid 2-3 s, reused while valid, and, like an app whose
   * clock lags, the expired one handed out once more before a fresh one is minted.
   */
  function tokenSource() {
    let current: { token: string; exp: number } | undefined;
    let staleServed = false;
    const minted: string[] = [];
    return {
      minted,
      next: async (): Promise<string> => {
        if (current && current.exp > now()) return current.token;
        if (current && !staleServed) {
          staleServed = true;
          return current.token;
        }
        staleServed = false;
        const exp = now() + 3;
        const token = await mintToken({
          key: SECRET,
          claims: { sub: 'reader', exp, sse: { subscribe: ['secret/*'] } },
        });
        current = { token, exp };
        minted.push(token);
        return token;
      },
    };
  }

  for (const transport of ['sse', 'poll'] as const) {
    it(`3. a subscription survives several token expiries without loss or duplicates (${transport})`, async () => {
      const topic = `secret/cl-${transport}-${testPrefix()}`;
      const feed = await mintToken({
        key: SECRET,
        claims: { sub: 'feed', sse: { publish: ['secret/*'] } },
      });
      // Without a token the topic is refused: the gateway really wants one.
      expect(
        (await fetchJson(`${gateway.url}/poll?topic=${encodeURIComponent(topic)}`)).status,
      ).toBe(401);
      const tokens = tokenSource();
      const { page, requests, errors } = await openClientPage(gateway.url, { token: tokens.next });
      await startClient(page, {
        topics: [topic],
        types: ['tick'],
        token: true,
        transport,
        minDelayMs: 200,
        maxDelayMs: 1000,
      });
      await until(page, (s) => s.state === 'open', 'the client to open');
      const publisher = publishContinuously((n) => publishAuthed(topic, { n }, feed), 50);
      // Three expiries at least (a fresh token each), under continuous publishing.
      await waitFor(() => tokens.minted.length >= 4, 'four tokens', 30_000, 100);
      await sleep(1000);
      const last = await publisher.stop();
      const seen = await until(page, (s) => s.events.length >= last, `${last} events`, 20_000);
      expect(numbers(seen.events)).toEqual(range(1, last));
      expect(new Set(seen.events.map((e) => e.meta.id)).size).toBe(last);
      expect(tokens.minted.length).toBeGreaterThanOrEqual(4);
      expect(seen.errors.every((e) => !e.fatal)).toBe(true);
      expect(seen.transport).toBe(transport);

      if (transport === 'sse') {
        // Each stream ended at its token's exp; the client reopened it with a fresh ?token= and
        // the cursor (a stale token in between was refused: 401, and retried).
        const streams = requests.filter((r) => r.path === '/events');
        expect(streams.length).toBeGreaterThanOrEqual(4);
        expect(streams.every((r) => /[?&]token=ey/.test(r.url))).toBe(true);
        expect(streams.every((r) => /[?&]lastEventId=2~/.test(r.url))).toBe(true);
        expect(streams.some((r) => r.status === 401)).toBe(true);
        expect(seen.states.filter((s) => s === 'reconnecting').length).toBeGreaterThanOrEqual(3);
      } else {
        // Bearer tokens on every poll; a stale one answered 401 TOKEN_EXPIRED, retried at once.
        const polls = requests.filter((r) => r.path === '/poll');
        expect(polls.every((r) => /^Bearer ey/.test(r.headers.authorization ?? ''))).toBe(true);
        expect(polls.every((r) => !r.url.includes('token='))).toBe(true);
        expect(polls.filter((r) => r.status === 401).length).toBeGreaterThanOrEqual(2);
        expect(seen.errors.filter((e) => e.code === 'TOKEN_EXPIRED').length).toBeGreaterThanOrEqual(
          2,
        );
      }
      expect(errors).toEqual([]);
    }, 60_000);
  }
});

/** An HTTP proxy to a gateway that can be switched to answer every request 503 NOT_READY. */
interface FlakyProxy {
  url: string;
  log: { url: string; time: number; down: boolean }[];
  setDown(down: boolean): void;
  close(): Promise<void>;
}

async function startFlakyProxy(target: string): Promise<FlakyProxy> {
  let down = false;
  const sockets = new Set<Socket>();
  const log: FlakyProxy['log'] = [];
  const server: Server = createServer((req, res) => {
    log.push({ url: req.url ?? '', time: Date.now(), down });
    if (down) {
      res
        .writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' })
        .end(JSON.stringify({ error: { code: 'NOT_READY', message: 'down for the test' } }));
      return;
    }
    const upstream = httpRequest(
      `${target}${req.url}`,
      { method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    setDown: (value) => {
      down = value;
      // Open streams die with the connection under them, as behind a balancer that lost its upstream.
      if (value) for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('@streamcast/client behind a balancer that answers 503', () => {
  let gateway: GatewayProcess;
  let proxy: FlakyProxy;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      WEB_ROOT: webRoot,
      RETRY_MS: '300',
    });
    proxy = await startFlakyProxy(gateway.url);
  }, 60_000);

  afterAll(async () => {
    await proxy?.close();
    expect(await gateway?.stop()).toBe(0);
  });

  it('5. reconnects with backoff while refused, then resumes with no loss', async () => {
    const topic = `cl-503-${testPrefix()}`;
    const { page, errors } = await openClientPage(proxy.url);
    await startClient(page, {
      topics: [topic],
      types: ['tick'],
      minDelayMs: 250,
      maxDelayMs: 2000,
    });
    await until(page, (s) => s.state === 'open', 'the client to open');
    const publisher = publishContinuously(
      (n) => publishHttp(gateway.url, topic, 'tick', { n }),
      100,
    );
    await until(page, (s) => s.events.length >= 5, 'five events');

    proxy.setDown(true);
    const downAt = Date.now();
    await until(page, (s) => s.state === 'reconnecting', 'the client to notice');
    await sleep(6000);
    const during = proxy.log.filter((r) => r.down && /^\/(events|poll)\?/.test(r.url));
    proxy.setDown(false);
    const upAt = Date.now();

    await until(page, (s) => s.state === 'open', 'the client to reconnect', 10_000);
    await sleep(1000);
    const last = await publisher.stop();
    const seen = await until(page, (s) => s.events.length >= last, `${last} events`);
    expect(numbers(seen.events)).toEqual(range(1, last));
    expect(seen.transport).toBe('sse');

    // Retried while refused (EventSource alone would have given up after one 503), but with
    // backoff, not in a loop: RETRY_MS would allow 20 attempts in 6 s, a loop thousands.
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(during.length).toBeLessThanOrEqual(15);
    const gaps = during.slice(1).map((r, i) => r.time - during[i]!.time);
    expect(Math.max(...gaps)).toBeGreaterThan(250);
    // The stream after the outage resumed from the cursor (query: a new EventSource).
    const resumed = proxy.log.find((r) => r.time >= upAt && r.url.startsWith('/events?'));
    expect(resumed?.url).toMatch(/[?&]lastEventId=2~/);
    expect(seen.states).toContain('reconnecting');
    expect(seen.errors.every((e) => !e.fatal)).toBe(true);
    expect(downAt).toBeLessThan(upAt);
    expect(errors).toEqual([]);
  }, 60_000);
});

describe('@streamcast/client in an Express app that serves no /poll', () => {
  let broadcaster: Broadcaster;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    broadcaster = await createBroadcaster({
      redisUrl: testRedisUrl(),
      keyPrefix: testPrefix(),
      retryMs: 200,
    });
    const app = express();
    app.get('/', (_req, res) => {
      res.sendFile(join(webRoot, 'index.html'));
    });
    // The plain script the package ships (built by the test setup), as a host app would serve it.
    const script = readFileSync(require.resolve('@streamcast/client/streamcast-client.js'), 'utf8');
    app.get('/streamcast-client.js', (_req, res) => {
      res.type('text/javascript').send(script);
    });
    // Streams only: GET /poll gets Express's own 404, an HTML page.
    app.get('/events', sse({ broadcaster }));
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await broadcaster?.close();
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      server?.closeAllConnections();
    });
  });

  it("streams (and resumes) over SSE when the start-cursor probe meets the host's HTML 404", async () => {
    const { page, requests, errors } = await openClientPage(url);
    const topic = `express/${Date.now()}`;
    await startClient(page, { topics: [topic], types: ['note'] });
    await until(page, (s) => s.state === 'open', 'the client to open');
    for (const n of range(1, 3)) await broadcaster.publish(topic, 'note', { n });
    let seen = await until(page, (s) => s.events.length >= 3, '3 events');
    expect(numbers(seen.events)).toEqual([1, 2, 3]);
    // The probe was answered 404 by Express: no poll route, not a refusal of the stream.
    const probe = requests.find((r) => r.path === '/poll');
    expect(probe?.status).toBe(404);
    expect(seen.errors.filter((e) => e.fatal)).toEqual([]);
    expect(seen.transport).toBe('sse');
    // The stream ends (every connection closed by the host): the client resumes from its cursor.
    server.closeAllConnections();
    for (const n of range(4, 5)) await broadcaster.publish(topic, 'note', { n });
    seen = await until(page, (s) => s.events.length >= 5, '5 events after the reconnection');
    expect(numbers(seen.events)).toEqual(range(1, 5));
    expect(seen.state).toBe('open');
    expect(errors).toEqual([]);
  }, 60_000);
});
