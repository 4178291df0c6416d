import { connect } from 'node:net';
import {
  SseClient,
  fetchJson,
  mintToken,
  startGatewayProcess,
  tamperedToken,
  testPrefix,
  testRedisUrl,
  unsignedToken,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';

/**
 * Thousands of generated hostile requests (topics, cursors, headers, bodies, encodings, huge
 * and truncated inputs, malformed HTTP over raw sockets) against a running gateway, with a
 * stream open beside them. Seeded: a failure names its seed and case, and replays with
 * FUZZ_SEED=<seed>. Bounded by FUZZ_BUDGET_MS.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const CASES = Number(process.env.FUZZ_CASES ?? 12_000);
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? 40_000);
const CONCURRENCY = 24;
const SECRET = 'fuzz-secret-0123456789abcdef-0123456789';
const MAX_BODY = 65_536;

/** mulberry32: small, fast, seeded. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  float(): number {
    return this.next();
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  chars(alphabet: string, min: number, max: number): string {
    const n = this.int(min, max);
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }
  bytes(min: number, max: number): Buffer {
    const n = this.int(min, max);
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

const TOPIC_ALPHABET = 'abcXYZ019_-.:/';
const CURSOR_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz.~';
const NASTY = [
  '',
  ' ',
  '%',
  '%zz',
  '%00',
  '%0d%0aSet-Cookie:%20x=1',
  '%C0%AF',
  '%E2%80%AE',
  '%FF%FE%FD',
  '%F0%9F%98%80',
  '%ED%A0%80',
  '..%2F..%2Fetc%2Fpasswd',
  '../../etc/passwd',
  '*',
  'stocks/*',
  '{sub}',
  'user/{sub}/x',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  '%3Cscript%3Ealert(1)%3C%2Fscript%3E',
  '%24%7Bjndi%3Aldap%3A%2F%2Fx%7D',
  "'%3B%20DROP%20TABLE%20t%3B--",
  'sse%3A%7Bx%7D%3Alog',
  'x%7D%3Ameta',
  '*%0D%0A%244%0D%0APING%0D%0A',
  'a%2Fb',
  'public/witness',
  'events',
  'user/alice/inbox',
];

/** A raw request: what is sent, how, and how long to wait for the answer. */
interface RawCase {
  kind: string;
  chunks: Buffer[];
  /** Close our side right after sending (truncated input). */
  abortAfterSend?: boolean;
  /** Wait at most this long for the server to answer or close. */
  waitMs?: number;
}

interface Outcome {
  status: number | undefined;
  json: unknown;
  stream: boolean;
  /** Everything received, as latin1 text. */
  text: string;
}

function http(
  method: string,
  target: string,
  headers: Array<[string, string | Buffer]>,
  body?: Buffer | string,
  options: { close?: boolean; host?: boolean } = {},
): Buffer {
  const lines: Buffer[] = [Buffer.from(`${method} ${target} HTTP/1.1\r\n`, 'latin1')];
  if (options.host !== false) lines.push(Buffer.from('Host: 127.0.0.1\r\n'));
  for (const [name, value] of headers) {
    lines.push(
      Buffer.from(`${name}: `, 'latin1'),
      Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1'),
      Buffer.from('\r\n'),
    );
  }
  const payload =
    body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  if (
    payload !== undefined &&
    !headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n))
  ) {
    lines.push(Buffer.from(`Content-Length: ${payload.length}\r\n`));
  }
  if (options.close !== false) lines.push(Buffer.from('Connection: close\r\n'));
  lines.push(Buffer.from('\r\n'));
  if (payload) lines.push(payload);
  return Buffer.concat(lines);
}

function send(port: number, c: RawCase): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(received).toString('latin1');
      // The last status line: after a `100 Continue`, or of pipelined requests.
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => m[1]);
      const status = statuses.find((code) => Number(code) >= 500) ?? statuses.at(-1);
      const stream = /content-type: text\/event-stream/i.test(text);
      let json: unknown;
      const bodyAt = text.indexOf('\r\n\r\n');
      if (bodyAt !== -1 && /content-type: application\/json/i.test(text.slice(0, bodyAt))) {
        try {
          json = JSON.parse(Buffer.from(text.slice(bodyAt + 4), 'latin1').toString('utf8'));
        } catch {
          json = undefined;
        }
      }
      resolve({ status: status === undefined ? undefined : Number(status), json, stream, text });
    };
    const timer = setTimeout(finish, c.waitMs ?? 2000);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      size += chunk.length;
      // A stream that opened: its first bytes are enough; a flood is not our business here.
      const head = Buffer.concat(received).toString('latin1');
      if (
        (/text\/event-stream/i.test(head) && /\r\n\r\n[\s\S]*retry:/.test(head)) ||
        size > 1_000_000
      )
        finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', async () => {
      for (const chunk of c.chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        if (c.chunks.length > 1) await new Promise((r) => setTimeout(r, 2));
      }
      if (c.abortAfterSend) socket.destroy();
    });
  });
}

/** Tokens of every kind, minted once: the generator picks among them. */
async function tokenPool(): Promise<string[]> {
  const hour = Math.floor(Date.now() / 1000) + 3600;
  const valid = await mintToken({
    key: SECRET,
    claims: { sub: 'fuzzer', sse: { subscribe: ['*'], publish: ['fz/*'] } },
  });
  return [
    valid,
    await mintToken({
      key: SECRET,
      claims: {
        sub: '../../alice',
        sse: { subscribe: ['user/{sub}/*'], publish: ['user/{sub}/*'] },
      },
    }),
    await mintToken({ key: SECRET, claims: { sub: 'x'.repeat(3000), sse: { subscribe: ['*'] } } }),
    await mintToken({ key: SECRET, claims: { sse: { subscribe: [1, 2, 3] } } }),
    await mintToken({ key: SECRET, claims: { sse: 'everything' } }),
    await mintToken({
      key: SECRET,
      claims: { sse: { subscribe: Array.from({ length: 300 }, (_, i) => `t${i}`) } },
    }),
    await mintToken({
      key: SECRET,
      claims: { sub: 'late', exp: hour - 7200, sse: { subscribe: ['*'] } },
    }),
    await mintToken({
      key: SECRET,
      claims: { sub: 'early', nbf: hour, sse: { subscribe: ['*'] } },
    }),
    await mintToken({
      key: SECRET,
      claims: { sub: 'forever', exp: undefined, sse: { subscribe: ['*'] } },
    }),
    await mintToken({
      key: `${SECRET}!`,
      claims: { sub: 'forged', sse: { subscribe: ['*'], publish: ['*'] } },
    }),
    unsignedToken({ sub: 'none', sse: { subscribe: ['*'], publish: ['*'] } }),
    tamperedToken(valid, { sub: 'fuzzer', sse: { subscribe: ['*'], publish: ['*'] } }),
    `${valid}x`,
    valid.split('.').slice(0, 2).join('.'),
    'eyJhbGciOiJIUzI1NiJ9.e30.',
    'a.b.c',
    '...',
    '',
    'x'.repeat(9000),
    `${Buffer.from(JSON.stringify({ alg: 'HS256', crit: ['exp'] })).toString('base64url')}.e30.sig`,
    `${Buffer.from(JSON.stringify({ alg: 'RS256', jku: 'http://evil.example/jwks' })).toString('base64url')}.e30.sig`,
  ];
}

function topic(g: Gen): string {
  const roll = g.float();
  if (roll < 0.35) return g.pick(NASTY);
  if (roll < 0.6) return encodeURIComponent(g.chars(TOPIC_ALPHABET, 1, 30));
  if (roll < 0.7) return 'a'.repeat(g.pick([199, 200, 201, 1000, 8000]));
  if (roll < 0.8)
    return encodeURIComponent(
      String.fromCharCode(...Array.from({ length: g.int(1, 20) }, () => g.int(0, 0x2fff))),
    );
  if (roll < 0.9) return `fz/${g.chars(TOPIC_ALPHABET, 0, 10)}`;
  return g
    .bytes(1, 40)
    .toString('latin1')
    .replace(/[\r\n ]/g, '');
}

function cursor(g: Gen): string {
  const roll = g.float();
  if (roll < 0.3) return g.chars(CURSOR_ALPHABET, 0, g.pick([20, 200, 1100]));
  if (roll < 0.6) {
    const parts = Array.from({ length: g.int(1, 40) }, () =>
      [
        g.pick(['0', '1', '31', '999999', '-1', 'z', '']),
        g.chars('0123456789abcdefghijklmnopqrstuvwxyz', 0, 24),
        g.chars('0123456789abcdefghijklmnopqrstuvwxyz', 0, 14),
        g.pick(['0', '1', 'zzzzzzzz', '-3', '']),
      ].join('.'),
    );
    return `${g.pick(['1', '0', '2', '', '1~1'])}~${parts.join('~')}`;
  }
  if (roll < 0.8)
    return g.pick([
      '~',
      '1~',
      '1~.',
      '1~0....',
      '1~0.a.b.c~0.a.b.c',
      '%00',
      '%FF',
      'null',
      'undefined',
      '[]',
      '{}',
    ]);
  return encodeURIComponent(g.bytes(0, 60).toString('latin1'));
}

function query(g: Gen, tokens: string[]): string {
  const params: string[] = [];
  const n = g.pick([0, 1, 1, 2, 3, 5, 33, 200]);
  for (let i = 0; i < n; i++) {
    params.push(
      `${g.pick(['topic', 'topic', 'topic', 'topic[]', 'topic[0]', 'Topic', 'topic%00', 'topic.x'])}=${topic(g)}`,
    );
  }
  if (g.chance(0.3)) params.push(`lastEventId=${cursor(g)}`);
  if (g.chance(0.1)) params.push(`lastEventId=${cursor(g)}`);
  if (g.chance(0.3)) params.push(`token=${encodeURIComponent(g.pick(tokens))}`);
  if (g.chance(0.05)) params.push(`token=${encodeURIComponent(g.pick(tokens))}`);
  if (g.chance(0.05)) params.push('&&&=&=%%');
  if (g.chance(0.03)) params.push(`x=${'y'.repeat(g.pick([1000, 10_000]))}`);
  return params.join('&');
}

function hostileHeaders(g: Gen, tokens: string[]): Array<[string, string | Buffer]> {
  const headers: Array<[string, string | Buffer]> = [];
  if (g.chance(0.4))
    headers.push([
      'Authorization',
      g.pick([
        `Bearer ${g.pick(tokens)}`,
        'Bearer',
        'Bearer ',
        'bearer  x',
        `Basic ${Buffer.from('a:b').toString('base64')}`,
        `Bearer ${g.pick(tokens)} extra`,
        'Token abc',
        'x'.repeat(g.pick([100, 5000])),
      ]),
    ]);
  if (g.chance(0.3))
    headers.push([
      'Cookie',
      g.pick([
        `sse_token=${g.pick(tokens)}`,
        'sse_token=',
        'sse_token=%',
        'sse_token="',
        `sse_token=${g.pick(tokens)}; sse_token=${g.pick(tokens)}`,
        ';;;=;',
        `a=${'b'.repeat(4000)}`,
        'sse_token=%E0%A4%A',
      ]),
    ]);
  if (g.chance(0.3))
    headers.push([
      'Last-Event-ID',
      g.chance(0.8)
        ? cursor(g)
        : g
            .bytes(1, 30)
            .toString('latin1')
            .replace(/[\r\n]/g, ''),
    ]);
  if (g.chance(0.05)) headers.push(['Last-Event-ID', cursor(g)]);
  if (g.chance(0.3))
    headers.push([
      'Origin',
      g.pick([
        'null',
        'https://evil.example',
        'https://app.example',
        'http://127.0.0.1',
        '://',
        'http://[::1',
        'https://app.example.evil.example',
        'x'.repeat(3000),
      ]),
    ]);
  if (g.chance(0.15))
    headers.push([
      'Referer',
      g.pick([
        'http://[::1',
        '://',
        'https://evil.example/a',
        'javascript:alert(1)',
        'http://127.0.0.1/x',
      ]),
    ]);
  if (g.chance(0.35))
    headers.push([
      'X-Forwarded-For',
      g.pick([
        '203.0.113.5',
        '999.1.1.1',
        'unknown',
        '::1',
        '127.0.0.1',
        '',
        ', , ,',
        '203.0.113.5, 127.0.0.1',
        `${'10.0.0.1, '.repeat(200)}203.0.113.6`,
        'x'.repeat(2000),
        '::ffff:203.0.113.7',
        '[::1]:80',
      ]),
    ]);
  if (g.chance(0.1)) headers.push(['Accept-Encoding', 'gzip, deflate, br']);
  if (g.chance(0.05)) headers.push(['Expect', '100-continue']);
  if (g.chance(0.05)) headers.push(['Upgrade', 'websocket'], ['Connection', 'Upgrade']);
  if (g.chance(0.05)) headers.push(['Range', 'bytes=0-1,5-9']);
  if (g.chance(0.05))
    headers.push([
      g.chars('abcXYZ-_', 1, 20),
      g
        .bytes(0, 50)
        .toString('latin1')
        .replace(/[\r\n]/g, ''),
    ]);
  return headers;
}

function jsonBody(g: Gen): Buffer | string {
  const roll = g.float();
  const value = () =>
    g.pick<unknown>([
      null,
      0,
      -0,
      1e308,
      'x',
      '',
      true,
      [],
      {},
      { a: { b: [1, 2, { c: null }] } },
      'é😀',
      '\u0000',
      Array(50).fill('z'),
    ]);
  if (roll < 0.3) {
    const body: Record<string, unknown> = {};
    if (g.chance(0.9)) body.topic = g.chance(0.6) ? decodeSafe(topic(g)) : value();
    if (g.chance(0.6))
      body.event = g.pick<unknown>([
        'message',
        'reset',
        '',
        'a b',
        'x'.repeat(65),
        5,
        null,
        'ok',
        '\n',
        'evt:1',
      ]);
    if (g.chance(0.8)) body.data = value();
    if (g.chance(0.1)) body[g.pick(['extra', '__proto__', 'constructor', 'evnet'])] = 1;
    return JSON.stringify(body);
  }
  if (roll < 0.4) {
    const depth = g.pick([100, 5000, 20_000, 200_000]);
    const closing = g.chance(0.75) ? depth : g.pick([0, 100, 5000]);
    return `{"topic":"fz/a","data":${g.pick(['[', '{"a":'])}${'['.repeat(depth - 1)}${']'.repeat(Math.max(0, closing - 1))}${g.pick([']', '}'])}}`;
  }
  if (roll < 0.5)
    return g.pick([
      '{"topic":"fz/a","data":1,"__proto__":{"polluted":true}}',
      '{"topic":"fz/a","data":{"constructor":{"prototype":{"polluted":true}}}}',
      '{"topic":"fz/a","topic":"fz/b","data":1}',
    ]);
  if (roll < 0.6) {
    const full = JSON.stringify({
      topic: 'fz/t',
      event: 'e',
      data: { text: 'x'.repeat(g.int(0, 200)) },
    });
    return full.slice(0, g.int(0, full.length - 1));
  }
  if (roll < 0.68)
    return `{"topic":"fz/big","data":"${'x'.repeat(g.pick([MAX_BODY - 40, MAX_BODY, MAX_BODY + 1, MAX_BODY * 2]))}"}`;
  if (roll < 0.75)
    return Buffer.concat([
      Buffer.from('{"topic":"fz/u","data":"'),
      g.bytes(1, 64),
      Buffer.from('"}'),
    ]);
  if (roll < 0.8) return Buffer.from('\ufeff{"topic":"fz/bom","data":1}', 'utf16le');
  if (roll < 0.85)
    return g.pick([
      'NaN',
      'Infinity',
      '-',
      '1e99999',
      '"just a string"',
      '[]',
      'null',
      'true',
      '{}',
      '{"topic":null}',
      ' ',
      '',
    ]);
  if (roll < 0.9) return g.bytes(0, 300);
  return `{"topic":"fz/n","data":${g.pick(['1e400', '-1e400', '123456789012345678901234567890', '0.0000000000000000000001', '"\\ud800"', '"\\u0000"'])}}`;
}

function decodeSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const ROUTES = [
  '/events',
  '/events',
  '/events',
  '/api/events',
  '/api/stocks/%s',
  '/api/match/%s/live-updates',
  '/api/upload-progress/%s',
  '/api/chat-updates',
  '/api/blog/updates',
  '/healthz',
  '/readyz',
  '/metrics',
  '/%s',
  '//events',
  '/events/',
  '/EVENTS',
  '/events/../publish',
  '/events%2F..%2Fpublish',
];

/** One generated hostile request. */
function generate(g: Gen, tokens: string[]): RawCase {
  const roll = g.float();
  if (roll < 0.45) {
    const route = g.pick(ROUTES).replace('%s', () => topic(g));
    const q = query(g, tokens);
    const method = g.pick(['GET', 'GET', 'GET', 'HEAD', 'OPTIONS', 'DELETE', 'PUT']);
    return {
      kind: `${method} stream`,
      chunks: [http(method, q ? `${route}?${q}` : route, hostileHeaders(g, tokens))],
    };
  }
  if (roll < 0.8) {
    const headers = hostileHeaders(g, tokens);
    // A valid publisher's token now and then, so that bodies reach validation and the engine.
    if (g.chance(0.25)) headers.push(['Authorization', `Bearer ${tokens[0]}`]);
    headers.push([
      'Content-Type',
      g.pick([
        'application/json',
        'application/json',
        'application/json; charset=utf-8',
        'application/json; charset=utf-16',
        'application/json; charset=latin1',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data',
        'multipart/form-data; boundary=zz',
        'application/xml',
        '',
        '*/*',
        'application/json, text/plain',
        g.chars('abc/;=', 1, 30),
      ]),
    ]);
    if (g.chance(0.05)) headers.push(['Content-Encoding', g.pick(['gzip', 'br', 'identity', 'x'])]);
    const q = g.chance(0.2) ? `?${query(g, tokens)}` : '';
    const path = g.pick(['/publish', '/publish', '/publish', '/api/upload', '/events', '/nope']);
    const body = jsonBody(g);
    const bytes = http(
      g.pick(['POST', 'POST', 'POST', 'PUT', 'PATCH']),
      `${path}${q}`,
      headers,
      body,
    );
    if (g.chance(0.1)) {
      // Truncated on the wire: Content-Length says more than arrives, then the client leaves.
      const cut = g.int(1, Math.max(1, bytes.length - 1));
      return {
        kind: 'truncated body',
        chunks: [bytes.subarray(0, cut)],
        abortAfterSend: true,
        waitMs: 300,
      };
    }
    if (g.chance(0.1)) {
      // The same bytes in tiny pieces.
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length;) {
        const n = g.int(1, 64);
        chunks.push(bytes.subarray(i, i + n));
        i += n;
        if (chunks.length > 40) {
          chunks.push(bytes.subarray(i));
          break;
        }
      }
      return { kind: 'fragmented publish', chunks };
    }
    return { kind: 'publish', chunks: [bytes] };
  }
  return malformed(g, tokens);
}

/** HTTP that is not quite HTTP, over a raw socket. */
function malformed(g: Gen, tokens: string[]): RawCase {
  const valid = `GET /events?topic=fz/raw HTTP/1.1\r\nHost: x\r\n`;
  const options: Array<() => RawCase> = [
    () => ({ kind: 'garbage', chunks: [g.bytes(1, 2000)], waitMs: 500 }),
    () => ({
      kind: 'no version',
      chunks: [Buffer.from('GET /events?topic=a\r\n\r\n')],
      waitMs: 500,
    }),
    () => ({ kind: 'HTTP/0.9', chunks: [Buffer.from('GET /\r\n')], waitMs: 300 }),
    () => ({
      kind: 'bad version',
      chunks: [Buffer.from('GET / HTTP/9.9\r\nHost: x\r\n\r\n')],
      waitMs: 500,
    }),
    () => ({
      kind: 'h2 preface',
      chunks: [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
      waitMs: 500,
    }),
    () => ({
      kind: 'tls hello',
      chunks: [Buffer.from('160301020001000200030304', 'hex'), g.bytes(100, 300)],
      waitMs: 500,
    }),
    () => ({
      kind: 'header without colon',
      chunks: [Buffer.from(`${valid}NoColonHere\r\nConnection: close\r\n\r\n`)],
      waitMs: 500,
    }),
    () => ({
      kind: 'NUL in header',
      chunks: [Buffer.from(`${valid}X-A: a\u0000b\r\nConnection: close\r\n\r\n`, 'latin1')],
      waitMs: 500,
    }),
    () => ({
      kind: 'bare LF',
      chunks: [Buffer.from('GET /events?topic=a HTTP/1.1\nHost: x\nConnection: close\n\n')],
      waitMs: 500,
    }),
    () => ({
      kind: 'obs-fold',
      chunks: [Buffer.from(`${valid}Last-Event-ID: 1~0\r\n  .a.b.c\r\nConnection: close\r\n\r\n`)],
      waitMs: 500,
    }),
    () => ({
      kind: 'huge header',
      chunks: [
        Buffer.from(
          `${valid}X-Big: ${'a'.repeat(g.pick([17_000, 70_000]))}\r\nConnection: close\r\n\r\n`,
        ),
      ],
      waitMs: 1000,
    }),
    () => ({
      kind: 'many headers',
      chunks: [
        Buffer.from(`${valid}${'X-H: 1\r\n'.repeat(g.pick([200, 3000]))}Connection: close\r\n\r\n`),
      ],
      waitMs: 1000,
    }),
    () => ({
      kind: 'huge url',
      chunks: [
        Buffer.from(
          `GET /events?topic=${'a'.repeat(g.pick([9000, 70_000]))} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        ),
      ],
      waitMs: 1000,
    }),
    () => ({
      kind: 'CL and TE',
      chunks: [
        Buffer.from(
          'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n',
        ),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'two CL',
      chunks: [
        Buffer.from(
          'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 30\r\nConnection: close\r\n\r\n{}',
        ),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'bad CL',
      chunks: [
        Buffer.from(
          `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${g.pick(['-1', 'abc', '1e3', '99999999999999999999', ' 5', '0x10'])}\r\nConnection: close\r\n\r\n{}`,
        ),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'bad chunks',
      chunks: [
        Buffer.from(
          `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${g.pick(['zz\r\n{}\r\n0\r\n\r\n', 'FFFFFFFFFFFFFFFF\r\n{}', '2\r\n{}\r\n', '2;ext=1\r\n{}\r\n0\r\n\r\n', '-2\r\n{}\r\n0\r\n\r\n'])}`,
        ),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'TE not chunked',
      chunks: [
        Buffer.from(
          'POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n{}',
        ),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'no host',
      chunks: [http('GET', '/events?topic=fz/nohost', [], undefined, { host: false })],
    }),
    () => ({
      kind: 'two hosts',
      chunks: [http('GET', '/events?topic=fz/h', [['Host', 'evil.example']])],
    }),
    () => ({
      kind: 'absolute form',
      chunks: [
        Buffer.from(
          'GET http://evil.example/events?topic=fz/abs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        ),
      ],
    }),
    () => ({
      kind: 'CONNECT',
      chunks: [Buffer.from('CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n')],
      waitMs: 500,
    }),
    () => ({
      kind: 'unknown method',
      chunks: [
        Buffer.from(
          `${g.pick(['BREW', 'PROPFIND', 'get', 'G\tET', 'TRACE'])} /events?topic=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        ),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'CRLF in target',
      chunks: [Buffer.from('GET /events?topic=a\r\nX-Injected: 1 HTTP/1.1\r\nHost: x\r\n\r\n')],
      waitMs: 500,
    }),
    () => ({
      kind: 'space in target',
      chunks: [
        Buffer.from('GET /events?topic=a b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ],
      waitMs: 500,
    }),
    () => ({
      kind: 'pipelined',
      chunks: [
        Buffer.concat([
          http('GET', '/healthz', [], undefined, { close: false }),
          http('GET', `/events?${query(g, tokens)}`, hostileHeaders(g, tokens), undefined, {
            close: false,
          }),
          http(
            'POST',
            '/publish',
            [['Content-Type', 'application/json']],
            '{"topic":"fz/p","data":1}',
          ),
        ]),
      ],
      waitMs: 1000,
    }),
    () => ({
      kind: 'partial headers then gone',
      chunks: [Buffer.from(valid.slice(0, g.int(1, valid.length)))],
      abortAfterSend: true,
      waitMs: 200,
    }),
    () => ({
      kind: 'stream then gone',
      chunks: [http('GET', `/events?topic=fz/gone${g.int(0, 9)}`, [])],
      abortAfterSend: true,
      waitMs: 200,
    }),
    () => ({
      kind: 'latin1 cursor',
      chunks: [
        Buffer.concat([
          Buffer.from(`${valid}Last-Event-ID: `),
          g.bytes(1, 40).map((b) => (b === 13 || b === 10 ? 65 : b)),
          Buffer.from('\r\nConnection: close\r\n\r\n'),
        ]),
      ],
      waitMs: 1000,
    }),
    () => ({
      kind: 'utf8 in path',
      chunks: [
        Buffer.concat([
          Buffer.from('GET /events?topic='),
          Buffer.from('é😀\u202e', 'utf8'),
          Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        ]),
      ],
      waitMs: 1000,
    }),
    () => ({
      kind: 'expect continue',
      chunks: [
        Buffer.from(
          'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n',
        ),
      ],
      waitMs: 500,
    }),
  ];
  return g.pick(options)();
}

describe('fuzzing a running gateway', () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      RETRY_MS: '100',
      JWT_SECRET: SECRET,
      PUBLIC_TOPICS: 'public/*,events,stocks/*,chat,blog,fz/open*',
      CORS_ORIGINS: 'https://app.example',
      TRUST_PROXY: 'loopback',
      MAX_BODY_BYTES: String(MAX_BODY),
      MAX_STREAMS_PER_IP: '5',
      MAX_CONNECTIONS: '300',
      PUBLISH_RATE_PER_MIN: '600',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('survives thousands of hostile requests with a stream beside them undisturbed', async () => {
    const witness = await SseClient.open(`${gateway.url}/events?topic=public/witness`);
    await waitFor(() => witness.raw.length > 0, 'the witness stream to start');
    const g = new Gen(SEED);
    const tokens = await tokenPool();
    const signatures = tokens.map((t) => t.split('.')[2] ?? '').filter((s) => s.length >= 20);
    const statuses = new Map<string, number>();
    const kinds = new Map<string, number>();
    const failures: string[] = [];
    // Found by this fuzzer once, kept as fixed cases: a publisher's body nested deeper than
    // JSON.stringify can go answered 500 on Node 20 (and 200 on Node 24); past the documented
    // 1,000 levels it is the client's fault (400) on every version.
    const publisher = { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' };
    for (const depth of [1_001, 20_000, 32_000]) {
      const res = await fetchJson(`${gateway.url}/publish`, {
        method: 'POST',
        headers: publisher,
        body: `{"topic":"fz/deep","data":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      });
      expect([depth, res.status, res.body.error?.code]).toEqual([depth, 400, 'BODY_INVALID']);
    }
    const deadline = Date.now() + BUDGET_MS;
    let sent = 0;
    let index = 0;

    const worker = async () => {
      while (index < CASES && Date.now() < deadline) {
        const n = index++;
        const c = generate(g, tokens);
        const outcome = await send(gateway.port, c);
        sent++;
        kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
        const key = outcome.status === undefined ? 'none' : String(outcome.status);
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (outcome.status !== undefined && outcome.status >= 500) {
          failures.push(`case ${n} (${c.kind}): ${outcome.status} ${JSON.stringify(outcome.json)}`);
        }
        if (outcome.json !== undefined && outcome.status !== undefined && outcome.status >= 400) {
          const error = (outcome.json as { error?: { code?: unknown; message?: unknown } }).error;
          if (typeof error?.code !== 'string' || typeof error.message !== 'string') {
            failures.push(
              `case ${n} (${c.kind}): ${outcome.status} without the error shape: ${JSON.stringify(outcome.json)}`,
            );
          }
        }
        // No answer may echo a token back (URLs with ?token= in error messages, say).
        for (const secret of signatures) {
          if (outcome.text.includes(secret))
            failures.push(`case ${n} (${c.kind}): a token echoed in the answer`);
        }
        if (n % 500 === 0) {
          const health = await fetchJson(`${gateway.url}/healthz`);
          if (health.status !== 200) failures.push(`healthz ${health.status} after case ${n}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    // Reported by the closing note of the issue: how many hostile inputs were tried.
    process.stdout.write(
      `fuzz: seed ${SEED}, ${sent} hostile requests, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}\n`,
    );
    process.stdout.write(`fuzz: kinds ${JSON.stringify(Object.fromEntries([...kinds].sort()))}\n`);
    expect(failures.slice(0, 10)).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(Math.min(CASES, 2000));
    expect(gateway.child.exitCode).toBeNull();
    expect((await fetchJson(`${gateway.url}/healthz`)).status).toBe(200);
    expect((await fetchJson(`${gateway.url}/readyz`)).status).toBe(200);

    // The witness: still open, and it gets what is published now.
    expect(witness.ended).toBe(false);
    const token = await mintToken({
      key: SECRET,
      claims: { sub: 'witness', sse: { publish: ['public/*'] } },
    });
    const res = await fetchJson(`${gateway.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ topic: 'public/witness', event: 'after', data: { ok: true } }),
    });
    expect(res.status).toBe(200);
    await witness.waitForEvents(1, 10_000, 'after');
    expect(witness.events.filter((e) => e.event === 'after')).toEqual([
      { id: res.body.id, event: 'after', data: '{"ok":true}' },
    ]);
    witness.close();

    // Nothing left open, nothing unhandled.
    await waitFor(
      async () =>
        /^sse_connections 0$/m.test((await fetchJson(`${gateway.url}/metrics`)).body as string),
      'every fuzz stream to be closed',
      15_000,
      200,
    );
    const log = gateway.output();
    expect(log).not.toMatch(/unhandled/i);
    expect(log).not.toMatch(/"level":(50|60)/);
  }, 120_000);
});
