import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SseClient,
  fetchJson,
  launchChromium,
  publishHttp,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';
import { singleTopicCursor } from '@streamcast/protocol';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * The demo pages (apps/web/public) in real headless Chromium: the Debian `chromium` package,
 * which scripts/test-all.sh installs, driven by playwright-core (no browser download). A missing
 * Chromium fails the suite. Screenshots go to artifacts/screenshots/<page>.png.
 */

const ROOT = join(__dirname, '..');
const SHOTS = join(ROOT, 'artifacts', 'screenshots');
const STANDALONE = join(ROOT, 'apps', 'standalone', 'src', 'main.ts');
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** An event's id: the connection's cursor. */
const CURSOR_RE = /^2~[0-9a-z.~]+$/;

interface OpenPage {
  page: Page;
  /** Console errors and uncaught exceptions, in order. */
  errors: string[];
}

let browser: Browser;
let contexts: BrowserContext[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 60_000);

afterEach(async () => {
  for (const context of contexts) await context.close();
  contexts = [];
});

afterAll(async () => {
  await browser?.close();
});

/** A fresh browser context (its own connections and storage) with one page at `url`. */
async function openPage(url: string, viewport = LAPTOP): Promise<OpenPage> {
  const phone = viewport.width < 600;
  const context = await browser.newContext({
    viewport,
    deviceScaleFactor: phone ? 2 : 1,
    isMobile: phone,
    hasTouch: phone,
  });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console.error: ${message.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors };
}

/** Polls `read` in the test until `accept` holds; fails naming `what` and the last value. */
async function until<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  let last: T | undefined;
  await waitFor(
    async () => {
      last = await read();
      return accept(last);
    },
    () => `${what} (last seen: ${JSON.stringify(last)})`,
    timeoutMs,
    200,
  );
  return last as T;
}

const count = (page: Page, selector: string) => () => page.locator(selector).count();
const text = (page: Page, selector: string) => async () =>
  (await page.locator(selector).textContent()) ?? '';
const badge = (page: Page) => async () =>
  (await page.locator('#connection-state').getAttribute('data-state')) ?? '';

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The `n` of each inspector row whose data is `{"n": …}` (the test's events), oldest first. */
async function inspectorNumbers(page: Page): Promise<number[]> {
  const cells = await page.locator('#events tr:not(.sys):not(.reset) td.data').allTextContents();
  return cells
    .map((cell) => (JSON.parse(cell) as { n?: unknown }).n)
    .filter((n): n is number => typeof n === 'number')
    .reverse();
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('demo pages on npm start (embedded engine, every producer)', () => {
  let app: GatewayProcess;

  beforeAll(async () => {
    app = await startGatewayProcess({}, { script: STANDALONE });
  }, 60_000);

  afterAll(async () => {
    expect(await app.stop()).toBe(0);
  });

  it('serves every page beside the API without shadowing its routes', async () => {
    const pages = [
      '/',
      '/index.html',
      '/chat.html',
      '/stocks.html',
      '/blog.html',
      '/upload.html',
      '/match.html',
    ];
    for (const path of [...pages, '/monitoring.html', '/social.html', '/inspector.html']) {
      const res = await fetch(`${app.url}${path}`);
      expect([path, res.status, res.headers.get('content-type')]).toEqual([
        path,
        200,
        'text/html; charset=utf-8',
      ]);
    }
    for (const path of ['/style.css', '/common.js', '/favicon.svg']) {
      expect([path, (await fetch(`${app.url}${path}`)).status]).toEqual([path, 200]);
    }
    expect((await fetchJson(`${app.url}/healthz`)).status).toBe(200);
    expect((await fetchJson(`${app.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${app.url}/metrics`)).headers.get('content-type')).toMatch(/^text\/plain/);
    for (const path of ['/api/nope', '/nope.html', '/events/x', '/../package.json']) {
      const res = await fetchJson(`${app.url}${path}`);
      expect([path, res.status, res.body?.error?.code]).toEqual([path, 404, 'NOT_FOUND']);
    }
    const stream = await SseClient.open(`${app.url}/events?topic=events`);
    try {
      expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    } finally {
      stream.close();
    }
  });

  it('index: links every demo and shows the connection live', async () => {
    const { page, errors } = await openPage(`${app.url}/`);
    await until(badge(page), (s) => s === 'live', 'the badge to say live');
    await until(text(page, '#tick-count'), (t) => Number(t) >= 2, 'two ticks of /api/events');
    const links = await page
      .locator('nav a')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    expect(links).toEqual([
      'stocks.html',
      'chat.html',
      'blog.html',
      'upload.html',
      'match.html',
      'monitoring.html',
      'social.html',
      'inspector.html',
    ]);
    expect(await text(page, '#server-message')()).toBe('实时数据');
    await shoot(page, 'index');
    expect(errors).toEqual([]);

    const phone = await openPage(`${app.url}/`, PHONE);
    await until(text(phone.page, '#tick-count'), (t) => Number(t) >= 1, 'a tick on the phone');
    // Nothing wider than the screen.
    expect(await phone.page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      PHONE.width,
    );
    await shoot(phone.page, 'index-phone');
    expect(phone.errors).toEqual([]);
  });

  it('match: status, minute and events of the live match', async () => {
    const { page, errors } = await openPage(`${app.url}/match.html`);
    // Minutes last a second; between halves and between matches there is a pause of up to 30 s.
    await until(
      text(page, '#match-time'),
      (t) => /^\d+'$/.test(t),
      'a matchStatus with its minute',
      45_000,
    );
    expect(await text(page, '#match-status')()).toMatch(
      /^(kick off|first half|half time|second half|full time)$/,
    );
    // A goal, card or substitution, if one comes soon: the screenshot is better for it.
    await waitFor(count(page, '#match-events > div'), 'a match event', 10_000, 200).catch(
      () => undefined,
    );
    await shoot(page, 'match');
    expect(errors).toEqual([]);
  }, 90_000);

  it('stocks: a price and change for every symbol, coloured by direction', async () => {
    const { page, errors } = await openPage(`${app.url}/stocks.html`);
    for (const symbol of ['AAPL', 'GOOGL', 'MSFT', 'TSLA', 'AMZN']) {
      await until(
        text(page, `#stock-${symbol} .price`),
        (t) => /^\d+\.\d{2}$/.test(t),
        `a price for ${symbol}`,
      );
      const change = page.locator(`#stock-${symbol} .change`);
      const value = Number(((await change.textContent()) ?? '').replace(/[^0-9.-]/g, ''));
      const classes = (await change.getAttribute('class')) ?? '';
      expect([symbol, classes.includes('up'), classes.includes('down')]).toEqual([
        symbol,
        value > 0,
        value < 0,
      ]);
    }
    await shoot(page, 'stocks');
    expect(errors).toEqual([]);

    const phone = await openPage(`${app.url}/stocks.html`, PHONE);
    await until(
      text(phone.page, '#stock-AMZN .price'),
      (t) => /^\d+\.\d{2}$/.test(t),
      'a price on the phone',
    );
    expect(await phone.page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      PHONE.width,
    );
    await shoot(phone.page, 'stocks-phone');
    expect(phone.errors).toEqual([]);
  }, 90_000);

  it('chat: the seed page shows events after start and none after stop', async () => {
    const { page, errors } = await openPage(`${app.url}/chat.html`);
    expect(await page.locator('#notifications .notification').count()).toBe(0);
    await page.click('#startNotifications');
    await until(count(page, '.notification'), (n) => n >= 1, 'the greeting');
    expect(await page.locator('.notification').first().textContent()).toMatch(
      /^\[.+\] SSE 连接已建立$/,
    );
    // A message every 5 s (±40%), a join every 10 s.
    const shown = await until(
      count(page, '.notification'),
      (n) => n >= 3,
      'two chat events',
      30_000,
    );
    const lines = await page.locator('.notification').allTextContents();
    expect(lines.slice(1).every((l) => /(新消息: |用户 .+ (加入|离开)了聊天室)/.test(l))).toBe(
      true,
    );
    expect(shown).toBeGreaterThanOrEqual(3);
    await shoot(page, 'chat');

    await page.click('#stopNotifications');
    await until(badge(page), (s) => s === 'closed', 'the badge to say disconnected');
    const stopped = await page.locator('.notification').count();
    await new Promise((resolve) => setTimeout(resolve, 12_000)); // longer than two message intervals
    expect(await page.locator('.notification').count()).toBe(stopped);
    expect(errors).toEqual([]);
  }, 90_000);

  it('upload: progress to 100%, then the processing results', async () => {
    const { page, errors } = await openPage(`${app.url}/upload.html`);
    const lines = Array.from({ length: 6000 }, (_, i) => `line ${i + 1}: the quick brown fox`);
    const content = Buffer.from(`${lines.join('\n')}\n`);
    const sha256 = createHash('sha256').update(content).digest('hex');
    // Every width the bar takes, in order.
    await page.evaluate(`(() => {
      const bar = document.getElementById('progress-bar');
      window.__widths = [];
      new MutationObserver(() => window.__widths.push(bar.textContent)).observe(bar, { childList: true, characterData: true, subtree: true });
    })()`);
    await page.setInputFiles('#file-input', {
      name: 'fox.txt',
      mimeType: 'text/plain',
      buffer: content,
    });
    await page.click('#upload-button');
    await until(text(page, '#progress-bar'), (t) => t === '100%', 'the bar at 100%', 30_000);
    const result = page.locator('.upload-result').first();
    await until(count(page, '.upload-result'), (n) => n === 1, 'the results');
    expect(await result.locator('h3').textContent()).toBe('fox.txt');
    const facts = await result.locator('dd').allTextContents();
    expect(facts).toContain(sha256);
    expect(facts).toContain('6000');
    const widths = (await page.evaluate('window.__widths')) as string[];
    expect(widths.some((w) => w !== '100%')).toBe(true); // progress came before completion
    expect(widths[widths.length - 1]).toBe('100%');
    expect(await text(page, '#upload-status')()).toBe('文件上传成功: fox.txt');
    await shoot(page, 'upload');
    expect(errors).toEqual([]);
  }, 60_000);

  it('monitoring: CPU and memory gauges and the chart', async () => {
    const { page, errors } = await openPage(`${app.url}/monitoring.html`);
    await until(text(page, '#cpu-gauge .value'), (t) => /^\d+%$/.test(t), 'a CPU figure');
    await until(
      text(page, '#memory-text'),
      (t) => /^\d+\.\d{2} \/ \d+(\.\d+)? GB$/.test(t),
      'a memory figure',
    );
    expect(await text(page, '#memory-gauge .value')()).toMatch(/^\d+%$/);
    await new Promise((resolve) => setTimeout(resolve, 5_000)); // a few samples on the chart
    await shoot(page, 'monitoring');
    expect(errors).toEqual([]);
  });

  it('social: posts, likes and comments', async () => {
    const { page, errors } = await openPage(`${app.url}/social.html`);
    // A like every 2 s lands on its post (added when it was posted before the page opened).
    await until(
      async () => page.locator('[id^="post-"][id$="-likes"]').allTextContents(),
      (likes) => likes.some((l) => /^点赞数: [1-9]\d*$/.test(l)),
      'a like count',
    );
    await until(count(page, '.comment'), (n) => n >= 1, 'a comment', 20_000);
    await shoot(page, 'social');
    expect(errors).toEqual([]);
  }, 60_000);

  it('blog: posts appear, and edits are applied in place', async () => {
    const { page, errors } = await openPage(`${app.url}/blog.html`);
    // An edit every 7 s (±40%), a new post every 20 s.
    await until(count(page, '.blog-post'), (n) => n >= 1, 'a blog post or edit', 30_000);
    const first = page.locator('.blog-post').first();
    expect(((await first.locator('.post-content').textContent()) ?? '').length).toBeGreaterThan(0);
    // Edits land on their post (marked edited), never as a second copy of it.
    await until(count(page, '.blog-post .tag'), (n) => n >= 1, 'an edited post', 30_000);
    const ids = await page.locator('.blog-post').evaluateAll((posts) => posts.map((p) => p.id));
    expect(new Set(ids).size).toBe(ids.length);
    await shoot(page, 'blog');
    expect(errors).toEqual([]);
  }, 60_000);

  it('inspector: events with their ids; disconnect, then connect resumes after the last id', async () => {
    const topic = `demo-${testPrefix()}`;
    const { page, errors } = await openPage(
      `${app.url}/inspector.html?topic=${topic}&topic=stocks/AAPL`,
    );
    await until(badge(page), (s) => s === 'live', 'the badge to say live');
    for (const n of [1, 2, 3]) await publishHttp(app.url, topic, 'message', { n });
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length === 3,
      'three events',
    );
    const ids = await page.locator('#events tr:not(.sys) td.id').allTextContents();
    expect(ids.every((id) => CURSOR_RE.test(id))).toBe(true);
    await until(
      count(page, '#events td.event:text-is("priceUpdate")'),
      (n) => n >= 1,
      'a priceUpdate',
    );

    await page.click('#disconnect');
    await until(badge(page), (s) => s === 'closed', 'the badge to say disconnected');
    for (const n of [4, 5, 6]) await publishHttp(app.url, topic, 'message', { n });
    expect(await inspectorNumbers(page)).toEqual([1, 2, 3]);

    await page.click('#connect');
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length >= 6,
      'the missed events',
    );
    for (const n of [7, 8]) await publishHttp(app.url, topic, 'message', { n });
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length >= 8,
      'the live events',
    );
    expect(await inspectorNumbers(page)).toEqual(range(1, 8));
    const notes = await page.locator('#events tr.sys').allTextContents();
    expect(notes.some((n) => n.includes('connected: resuming after 2~'))).toBe(true);
    expect(await page.locator('#reset-notice').isHidden()).toBe(true);
    await shoot(page, 'inspector');
    expect(errors).toEqual([]);
  });

  it('inspector: a cursor this deployment cannot place shows a reset notice', async () => {
    const topic = `demo-${testPrefix()}`;
    // Well-formed and naming the topic, from no epoch this process made.
    const cursor = singleTopicCursor(topic, { epoch: 'zzzzzzzz', id: '1-0' });
    const { page, errors } = await openPage(
      `${app.url}/inspector.html?topic=${topic}&lastEventId=${encodeURIComponent(cursor)}`,
    );
    const notice = page.locator('#reset-notice');
    await until(
      () => notice.isVisible(),
      (v) => v,
      'the reset notice',
    );
    expect(await notice.textContent()).toContain(topic);
    expect(await page.locator('#events tr.reset td.event').allTextContents()).toEqual(['reset']);
    // The topic continues live after the reset.
    await publishHttp(app.url, topic, 'message', { n: 1 });
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length === 1,
      'the live event after the reset',
    );
    await shoot(page, 'inspector-reset');
    expect(errors).toEqual([]);

    const phone = await openPage(`${app.url}/inspector.html?topic=${topic}`, PHONE);
    // Live from now: publish once the stream is open, not merely once the page has loaded.
    await until(
      () => phone.page.locator('#events tr.sys').allTextContents(),
      (notes) => notes.some((n) => n.includes('connected: live from now')),
      'the phone to connect',
    );
    await publishHttp(app.url, topic, 'message', { n: 2 });
    await until(
      () => inspectorNumbers(phone.page),
      (ns) => ns.length === 1,
      'an event on the phone',
    );
    expect(await phone.page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      PHONE.width,
    );
    await shoot(phone.page, 'inspector-phone');
    expect(phone.errors).toEqual([]);
  });
});

describe('a page resumes by itself across a gateway restart (Redis, two gateways)', () => {
  const gateways: GatewayProcess[] = [];

  afterEach(async () => {
    for (const gateway of gateways.splice(0)) await gateway.kill();
  });

  it('shows every event published while its gateway was down exactly once', async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix(), RETRY_MS: '300' };
    let pageGateway = await startGatewayProcess(env);
    gateways.push(pageGateway);
    const other = await startGatewayProcess(env);
    gateways.push(other);
    const topic = `resume-${testPrefix()}`;

    const { page, errors } = await openPage(`${pageGateway.url}/inspector.html?topic=${topic}`);
    await until(badge(page), (s) => s === 'live', 'the badge to say live');
    for (const n of range(1, 3)) await publishHttp(other.url, topic, 'message', { n });
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length === 3,
      'three live events',
    );

    expect(await pageGateway.stop()).toBe(0);
    await until(badge(page), (s) => s === 'reconnecting', 'the badge to say reconnecting');
    for (const n of range(4, 8)) await publishHttp(other.url, topic, 'message', { n });
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // a few refused reconnections
    expect(await inspectorNumbers(page)).toEqual(range(1, 3));

    pageGateway = await startGatewayProcess(env, { port: pageGateway.port });
    gateways.push(pageGateway);
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length >= 8,
      'the missed events',
      30_000,
    );
    for (const n of range(9, 10)) await publishHttp(other.url, topic, 'message', { n });
    await until(
      () => inspectorNumbers(page),
      (ns) => ns.length >= 10,
      'live events after the resume',
    );
    expect(await inspectorNumbers(page)).toEqual(range(1, 10));
    expect(await badge(page)()).toBe('live');
    expect(Number(await text(page, '#reconnect-count')())).toBeGreaterThanOrEqual(1);
    const notes = await page.locator('#events tr.sys').allTextContents();
    expect(notes.some((n) => /reconnected by the browser with Last-Event-ID 2~/.test(n))).toBe(
      true,
    );
    await shoot(page, 'inspector-resume');
    // While the gateway was down the browser reports its refused reconnections; nothing else.
    expect(
      errors.filter(
        (e) => !/ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE/.test(e),
      ),
    ).toEqual([]);
  }, 120_000);
});

describe('WEB_ROOT', () => {
  const gateways: GatewayProcess[] = [];
  let dir: string | undefined;

  afterEach(async () => {
    for (const gateway of gateways.splice(0)) await gateway.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('serves the folder it names, and no pages when none', async () => {
    dir = mkdtempSync(join(tmpdir(), 'web-root-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>mine</title>');
    const mine = await startGatewayProcess({ WEB_ROOT: dir });
    gateways.push(mine);
    expect(await (await fetch(`${mine.url}/`)).text()).toContain('<title>mine</title>');
    expect((await fetch(`${mine.url}/chat.html`)).status).toBe(404);

    const none = await startGatewayProcess({ WEB_ROOT: 'none' });
    gateways.push(none);
    for (const path of ['/', '/index.html', '/chat.html']) {
      const res = await fetchJson(`${none.url}${path}`);
      expect([path, res.status, res.body?.error?.code]).toEqual([path, 404, 'NOT_FOUND']);
    }
    expect((await fetchJson(`${none.url}/healthz`)).status).toBe(200);
  });
});
