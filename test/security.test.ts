import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SseClient,
  fetchJson,
  generateSigningKey,
  keySet,
  mintToken,
  readMetric,
  serveJwks,
  sleep,
  startGatewayProcess,
  tamperedToken,
  testPrefix,
  testRedisUrl,
  unsignedToken,
  waitFor,
  type GatewayProcess,
  type JwksServer,
  type TestSigningKey,
} from '@streamcast/testing';
import { Authorizer, Guard, StreamCounter, createBroadcaster, sse } from '@streamcast/express';
import express from 'express';
import Redis from 'ioredis';

/**
 * Authentication, browser protections and limits, attacked from outside: gateway processes
 * on a real Redis, tokens minted here with jose (HS256; RS256 and ES256 through a JWKS file
 * and a JWKS URL).
 */

const SECRET = 'test-secret-0123456789abcdef-0123456789';
const ISSUER = 'https://issuer.test';
const AUDIENCE = 'streamcast';
const APP_ORIGIN = 'https://app.example';
const now = () => Math.floor(Date.now() / 1000);

interface Answer {
  status: number;
  code: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  raw: string;
}

const clients: SseClient[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** A stream request that must succeed: open, first bytes arrived. */
async function stream(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await SseClient.open(url, headers);
  clients.push(client);
  if (client.status !== 200) {
    await client.waitForEnd().catch(() => {});
    throw new Error(`stream ${url} answered ${client.status}: ${client.raw}`);
  }
  await waitFor(() => client.raw.length > 0, `first bytes of ${url}`);
  return client;
}

/**
 * A stream request that may be refused: a refusal's status, code and whole body, or a stream
 * (status 200, kept open until the test ends) once its first bytes arrived.
 */
async function attempt(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const client = await SseClient.open(url, headers);
  if (client.status === 200) {
    clients.push(client);
    await waitFor(() => client.raw.length > 0 || client.ended, `first bytes of ${url}`);
    if (!client.ended)
      return { status: 200, code: undefined, headers: client.headers, raw: client.raw };
  }
  await client.waitForEnd(5000).catch(() => {});
  client.close();
  let code: string | undefined;
  try {
    code = (JSON.parse(client.raw) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: client.status, code, headers: client.headers, raw: client.raw };
}

/** A stream request expected to be refused (a stream that opens instead is closed). */
async function refused(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const answer = await attempt(url, headers);
  if (answer.status === 200) clients.pop()?.close();
  return answer;
}

async function publish(
  baseUrl: string,
  body: unknown,
  headers: Record<string, string> = {},
  query = '',
): Promise<Answer> {
  const res = await fetchJson(`${baseUrl}/publish${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    code: res.body?.error?.code,
    headers: res.headers,
    raw: typeof res.body === 'string' ? res.body : JSON.stringify(res.body),
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const cookie = (token: string) => ({ cookie: `theme=dark; sse_token=${token}` });
const from = (ip: string) => ({ 'x-forwarded-for': ip });

describe('tokens and claims', () => {
  const prefix = testPrefix();
  const dir = mkdtempSync(join(tmpdir(), 'streamcast-security-'));
  let gateway: GatewayProcess;
  let rsa: TestSigningKey;
  let ec: TestSigningKey;
  let stranger: TestSigningKey;
  let redis: Redis;
  const tokensUsed: string[] = [];

  /** A token of this deployment, recorded so that the log check can look for it. */
  async function token(
    claims: Record<string, unknown>,
    key: string | TestSigningKey = SECRET,
  ): Promise<string> {
    const minted = await mintToken({ key, claims: { iss: ISSUER, aud: AUDIENCE, ...claims } });
    tokensUsed.push(minted);
    return minted;
  }

  const alice = {
    sub: 'alice',
    sse: { subscribe: ['news', 'stocks/*', 'user/{sub}/*'], publish: ['news', 'user/{sub}/*'] },
  };

  beforeAll(async () => {
    [rsa, ec, stranger] = await Promise.all([
      generateSigningKey('RS256', 'rsa-1'),
      generateSigningKey('ES256', 'ec-1'),
      generateSigningKey('RS256', 'rsa-1'), // same kid, other key: a forger's
    ]);
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(keySet(rsa, ec)));
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      RETRY_MS: '100',
      JWT_SECRET: SECRET,
      JWT_JWKS_FILE: jwksFile,
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: `other,${AUDIENCE}`,
      JWT_CLOCK_SKEW_S: '1',
      PUBLIC_TOPICS: 'public/*',
      CORS_ORIGINS: APP_ORIGIN,
      // Debug logging: the log check below must find no token even there.
      LOG_LEVEL: 'debug',
    });
    redis = new Redis(testRedisUrl());
  });

  afterAll(async () => {
    redis?.disconnect();
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves public topics without a token, and nothing else', async () => {
    const open = await stream(`${gateway.url}/events?topic=public/lobby`);
    expect(open.status).toBe(200);
    const answer = await refused(`${gateway.url}/events?topic=public/lobby&topic=news`);
    expect([answer.status, answer.code]).toEqual([401, 'AUTH_REQUIRED']);
    expect(answer.raw).not.toContain('data:');
  });

  it('accepts HS256 by header, RS256 by cookie and ES256 by query parameter', async () => {
    const byHeader = await stream(`${gateway.url}/events?topic=news`, bearer(await token(alice)));
    const byCookie = await stream(
      `${gateway.url}/events?topic=stocks/AAPL`,
      cookie(await token(alice, rsa)),
    );
    const query = encodeURIComponent(await token(alice, ec));
    const byQuery = await stream(`${gateway.url}/events?topic=user/alice/inbox&token=${query}`);
    const publisher = bearer(await token(alice));
    for (const [client, topic] of [
      [byHeader, 'news'],
      [byCookie, 'stocks/AAPL'],
      [byQuery, 'user/alice/inbox'],
    ] as const) {
      const res = await publish(gateway.url, { topic, data: topic }, publisher);
      if (topic === 'stocks/AAPL') {
        // alice may read stocks/* but not publish there; another publisher's token may.
        expect([res.status, res.code]).toEqual([403, 'TOPIC_FORBIDDEN']);
        const trader = bearer(await token({ sub: 'feed', sse: { publish: ['stocks/*'] } }, ec));
        expect((await publish(gateway.url, { topic, data: topic }, trader)).status).toBe(200);
      } else {
        expect(res.status).toBe(200);
      }
      await client.waitForEvents(1);
      expect(client.data()).toEqual([topic]);
    }
  });

  it('refuses bad tokens on streams with 401 and the right code, before the stream starts', async () => {
    const url = `${gateway.url}/events?topic=news`;
    const valid = await token(alice);
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ['no token', {}, 401, 'AUTH_REQUIRED'],
      ['expired', bearer(await token({ ...alice, exp: now() - 60 })), 401, 'TOKEN_EXPIRED'],
      ['not yet valid', bearer(await token({ ...alice, nbf: now() + 60 })), 401, 'TOKEN_INVALID'],
      ['no exp', bearer(await token({ ...alice, exp: undefined })), 401, 'TOKEN_INVALID'],
      [
        'signed with another secret',
        bearer(
          await mintToken({ key: `${SECRET}-x`, claims: { ...alice, iss: ISSUER, aud: AUDIENCE } }),
        ),
        401,
        'TOKEN_INVALID',
      ],
      [
        'signed by a key not in the set',
        bearer(await token(alice, stranger)),
        401,
        'TOKEN_INVALID',
      ],
      [
        'claims changed after signing',
        bearer(
          tamperedToken(valid, { ...alice, iss: ISSUER, aud: AUDIENCE, sse: { subscribe: ['*'] } }),
        ),
        401,
        'TOKEN_INVALID',
      ],
      [
        'alg: none',
        bearer(unsignedToken({ ...alice, iss: ISSUER, aud: AUDIENCE })),
        401,
        'TOKEN_INVALID',
      ],
      [
        'wrong issuer',
        bearer(await token({ ...alice, iss: 'https://evil.test' })),
        401,
        'TOKEN_INVALID',
      ],
      [
        'wrong audience',
        bearer(await token({ ...alice, aud: 'someone-else' })),
        401,
        'TOKEN_INVALID',
      ],
      ['no audience', bearer(await token({ ...alice, aud: undefined })), 401, 'TOKEN_INVALID'],
      [
        'HS256 keyed with the public RSA key',
        bearer(
          await mintToken({
            key: JSON.stringify(rsa.publicJwk),
            claims: { ...alice, iss: ISSUER, aud: AUDIENCE },
          }),
        ),
        401,
        'TOKEN_INVALID',
      ],
      ['not a JWT', bearer('not-a-jwt'), 401, 'TOKEN_INVALID'],
      ['Basic scheme', { authorization: 'Basic YWxpY2U6c2VjcmV0' }, 401, 'TOKEN_INVALID'],
      [
        'a claim of the wrong shape',
        bearer(await token({ sub: 'alice', sse: { subscribe: 'news' } })),
        401,
        'TOKEN_INVALID',
      ],
      [
        'expired in the cookie',
        cookie(await token({ ...alice, exp: now() - 60 })),
        401,
        'TOKEN_EXPIRED',
      ],
    ];
    for (const [name, headers, status, code] of cases) {
      const answer = await refused(url, headers);
      expect({ name, status: answer.status, code: answer.code }).toEqual({ name, status, code });
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
    }
    const bad = encodeURIComponent(await token({ ...alice, exp: now() - 60 }));
    expect((await refused(`${url}&token=${bad}`)).code).toBe('TOKEN_EXPIRED');
    expect((await refused(`${url}&token=a&token=b`)).code).toBe('TOKEN_INVALID');
  });

  it("refuses topics outside the claims and other users' private topics with 403", async () => {
    const headers = bearer(await token(alice));
    const bob = bearer(await token({ sub: 'bob', sse: { subscribe: ['user/{sub}/*'] } }));
    const noSub = bearer(await token({ sse: { subscribe: ['user/{sub}/*'] } }));
    const sneaky = bearer(
      await token({ sub: 'bob/../alice', sse: { subscribe: ['user/{sub}/*'] } }),
    );
    const cases: Array<[string, string, Record<string, string>]> = [
      ['a topic outside the claims', 'topic=weather', headers],
      [
        'one forbidden topic among allowed ones',
        'topic=news&topic=stocks/X&topic=secrets',
        headers,
      ],
      ["another user's private topic", 'topic=user/bob/inbox', headers],
      ['a prefix of the private pattern', 'topic=user/alice', headers],
      ['bob asking for alice', 'topic=user/alice/inbox', bob],
      ['{sub} without a sub', 'topic=user/alice/inbox', noSub],
      ['a sub that tries to climb', 'topic=user/alice/inbox', sneaky],
    ];
    for (const [name, query, h] of cases) {
      const answer = await refused(`${gateway.url}/events?${query}`, h);
      expect({ name, status: answer.status, code: answer.code }).toEqual({
        name,
        status: 403,
        code: 'TOPIC_FORBIDDEN',
      });
    }
    // The seed's routes are the same subscriptions, with the same checks.
    expect((await refused(`${gateway.url}/api/stocks/aapl`)).code).toBe('AUTH_REQUIRED');
    await stream(`${gateway.url}/api/stocks/aapl`, headers);
    expect((await refused(`${gateway.url}/api/blog/updates`, headers)).code).toBe(
      'TOPIC_FORBIDDEN',
    );
    await stream(`${gateway.url}/events?topic=user/bob/inbox`, bob);
  });

  it('refuses bad publishes with the right code and stores nothing', async () => {
    const url = gateway.url;
    const body = { topic: 'user/alice/outbox', data: 'must not be stored' };
    const valid = await token(alice);
    const subscribeOnly = await token({ sub: 'reader', sse: { subscribe: ['*'] } });
    const witness = await stream(
      `${url}/events?topic=user/alice/outbox&topic=user/bob/inbox&topic=weather`,
      bearer(await token({ sub: 'ops', sse: { subscribe: ['*'] } })),
    );
    const cases: Array<[string, unknown, Record<string, string>, string, number, string]> = [
      ['no token', body, {}, '', 401, 'AUTH_REQUIRED'],
      ['a valid token in the query', body, {}, `?token=${valid}`, 401, 'AUTH_REQUIRED'],
      [
        'a query token beside a header',
        body,
        bearer(valid),
        `?token=${valid}`,
        401,
        'AUTH_REQUIRED',
      ],
      [
        'expired',
        body,
        bearer(await token({ ...alice, exp: now() - 60 })),
        '',
        401,
        'TOKEN_EXPIRED',
      ],
      [
        'alg: none',
        body,
        bearer(unsignedToken({ ...alice, iss: ISSUER, aud: AUDIENCE })),
        '',
        401,
        'TOKEN_INVALID',
      ],
      [
        'bad signature',
        body,
        bearer(tamperedToken(valid, { ...alice, sse: { publish: ['*'] } })),
        '',
        401,
        'TOKEN_INVALID',
      ],
      [
        'a topic outside the claims',
        { topic: 'weather', data: 1 },
        bearer(valid),
        '',
        403,
        'TOPIC_FORBIDDEN',
      ],
      [
        "another user's private topic",
        { topic: 'user/bob/inbox', data: 1 },
        bearer(valid),
        '',
        403,
        'TOPIC_FORBIDDEN',
      ],
      ['a subscribe-only token', body, bearer(subscribeOnly), '', 403, 'TOPIC_FORBIDDEN'],
      [
        'a cookie from another site',
        body,
        { ...cookie(valid), origin: 'https://evil.example' },
        '',
        403,
        'ORIGIN_FORBIDDEN',
      ],
      ['a cookie with no origin', body, cookie(valid), '', 403, 'ORIGIN_FORBIDDEN'],
      [
        'a cookie with Origin: null',
        body,
        { ...cookie(valid), origin: 'null' },
        '',
        403,
        'ORIGIN_FORBIDDEN',
      ],
      [
        'a cookie and a look-alike origin',
        body,
        { ...cookie(valid), origin: `${APP_ORIGIN}.evil.example` },
        '',
        403,
        'ORIGIN_FORBIDDEN',
      ],
      [
        'a cookie and a foreign referer',
        body,
        { ...cookie(valid), referer: 'https://evil.example/page' },
        '',
        403,
        'ORIGIN_FORBIDDEN',
      ],
    ];
    for (const [name, payload, headers, query, status, code] of cases) {
      const answer = await publish(url, payload, headers, query);
      expect({ name, status: answer.status, code: answer.code }).toEqual({ name, status, code });
    }
    // Uploads are writes too: the same origin and query-token rules, before the body is read.
    const upload = await fetchJson(`${url}/api/upload`, {
      method: 'POST',
      headers: {
        ...cookie(valid),
        origin: 'https://evil.example',
        'content-type': 'multipart/form-data; boundary=x',
      },
      body: '--x--\r\n',
    });
    expect([upload.status, upload.body.error?.code]).toEqual([403, 'ORIGIN_FORBIDDEN']);
    const uploadByQuery = await fetchJson(`${url}/api/upload?token=${valid}`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body: '--x--\r\n',
    });
    expect([uploadByQuery.status, uploadByQuery.body.error?.code]).toEqual([401, 'AUTH_REQUIRED']);

    await sleep(200);
    expect(witness.events).toEqual([]);
    for (const topic of ['user/alice/outbox', 'weather', 'user/bob/inbox']) {
      expect(await redis.exists(`${prefix}:{${topic}}:log`)).toBe(0);
    }
    // The same cookie from the allowed origin, or from this very host, may publish.
    const mine = 'user/alice/outbox';
    expect(
      (await publish(url, { topic: mine, data: 1 }, { ...cookie(valid), origin: APP_ORIGIN }))
        .status,
    ).toBe(200);
    const host = new URL(url).host;
    expect(
      (await publish(url, { topic: mine, data: 2 }, { ...cookie(valid), origin: `http://${host}` }))
        .status,
    ).toBe(200);
    await witness.waitForEvents(2);
    expect(witness.data()).toEqual([1, 2]);
  });

  it('answers CORS from the allowlist only, with credentials and never *', async () => {
    const preflight = await fetchJson(`${gateway.url}/publish`, {
      method: 'OPTIONS',
      headers: {
        origin: APP_ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');
    expect(String(preflight.headers['access-control-allow-headers'])).toContain('authorization');

    const foreign = await fetchJson(`${gateway.url}/publish`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();

    // A cookie-authenticated EventSource from the app's origin (withCredentials).
    const es = await stream(`${gateway.url}/events?topic=news`, {
      ...cookie(await token(alice)),
      origin: APP_ORIGIN,
    });
    expect(es.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
    expect(es.headers['access-control-allow-credentials']).toBe('true');
    expect(es.headers['content-type']).toBe('text/event-stream');
    const other = await stream(`${gateway.url}/events?topic=public/x`, {
      origin: 'https://evil.example',
    });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    // Refusals carry CORS too, so the page can read why.
    const refusal = await refused(`${gateway.url}/events?topic=news`, { origin: APP_ORIGIN });
    expect(refusal.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
    expect(refusal.status).toBe(401);
  });

  it('closes a stream when its token expires; a fresh token resumes where it stopped', async () => {
    const short = await token({ ...alice, exp: now() + 2 });
    const client = await stream(`${gateway.url}/events?topic=news`, bearer(short));
    const publisher = bearer(await token(alice));
    const first = await publish(gateway.url, { topic: 'news', data: 'before' }, publisher);
    expect(first.status).toBe(200);
    await client.waitForEvents(1);
    // exp + JWT_CLOCK_SKEW_S (1 s), checked by the hub's once-a-second sweep.
    await client.waitForEnd(6000);
    expect(client.raw).toContain(': token expired');
    expect((await publish(gateway.url, { topic: 'news', data: 'missed' }, publisher)).status).toBe(
      200,
    );
    // Reconnecting with the expired token: refused, as EventSource would be.
    expect((await refused(`${gateway.url}/events?topic=news`, bearer(short))).code).toBe(
      'TOKEN_EXPIRED',
    );
    const resumed = await stream(`${gateway.url}/events?topic=news`, {
      ...bearer(await token(alice)),
      'last-event-id': client.lastId as string,
    });
    await resumed.waitForEvents(1);
    expect(resumed.data()).toEqual(['missed']);
    expect(await readMetric(gateway.url, 'sse_streams_expired_total')).toBeGreaterThanOrEqual(1);
  });

  it('counts refusals in /metrics and never writes a token to the log', async () => {
    expect(
      await readMetric(gateway.url, 'sse_requests_refused_total{code="TOKEN_INVALID"}'),
    ).toBeGreaterThan(10);
    expect(
      await readMetric(gateway.url, 'sse_requests_refused_total{code="TOPIC_FORBIDDEN"}'),
    ).toBeGreaterThan(5);
    expect(await readMetric(gateway.url, 'sse_auth_enabled')).toBe(1);
    const log = gateway.output();
    expect(log.length).toBeGreaterThan(0);
    for (const used of tokensUsed) expect(log).not.toContain(used.split('.')[2]);
    expect(log).not.toMatch(/token=ey/);
  });
});

describe('keys from a JWKS URL', () => {
  let jwks: JwksServer;
  let gateway: GatewayProcess;
  let rsa: TestSigningKey;
  let ec: TestSigningKey;

  beforeAll(async () => {
    [rsa, ec] = await Promise.all([
      generateSigningKey('RS256', 'r1'),
      generateSigningKey('ES256', 'e1'),
    ]);
    jwks = await serveJwks(keySet(rsa, ec));
    // Unreachable at first: the gateway fetches the set on the first token it sees.
    jwks.setDown(true);
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      RETRY_MS: '100',
      JWT_JWKS_URL: jwks.url,
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await jwks?.close();
  });

  it('asks streams to retry, and answers publishes 503, while the key set cannot be fetched', async () => {
    const claims = { sub: 'u', sse: { subscribe: ['t'], publish: ['t'] } };
    const token = await mintToken({ key: rsa, claims });
    const answer = await refused(`${gateway.url}/events?topic=t`, bearer(token));
    // 200 + retry + close, as while Redis is away: EventSource tries again instead of giving up.
    expect([answer.status, answer.raw]).toEqual([200, 'retry: 100\n\n']);
    const res = await publish(gateway.url, { topic: 't', data: 1 }, bearer(token));
    expect([res.status, res.code, res.headers['retry-after']]).toEqual([503, 'NOT_READY', '1']);
    expect(jwks.requests).toBeGreaterThanOrEqual(2);
    expect((await fetchJson(`${gateway.url}/healthz`)).status).toBe(200);
  });

  it('verifies RS256 and ES256 tokens against the fetched key set, and refuses HS256', async () => {
    jwks.setDown(false);
    const claims = { sub: 'u', sse: { subscribe: ['t'], publish: ['t'] } };
    const client = await stream(
      `${gateway.url}/events?topic=t`,
      bearer(await mintToken({ key: rsa, claims })),
    );
    const res = await publish(
      gateway.url,
      { topic: 't', data: 'hi' },
      bearer(await mintToken({ key: ec, claims })),
    );
    expect(res.status).toBe(200);
    await client.waitForEvents(1);
    expect(client.data()).toEqual(['hi']);
    // An HS256 token "signed" with anything: no secret is configured, the algorithm is not accepted.
    const hs = await mintToken({ key: JSON.stringify(rsa.publicJwk), claims });
    expect((await refused(`${gateway.url}/events?topic=t`, bearer(hs))).code).toBe('TOKEN_INVALID');
    // Cached: a second token does not fetch the set again.
    const fetched = jwks.requests;
    await stream(`${gateway.url}/events?topic=t`, bearer(await mintToken({ key: ec, claims })));
    expect(jwks.requests).toBe(fetched);
  });
});

describe('loopback publishing without keys', () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      TRUST_PROXY: 'loopback',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('takes the client address from X-Forwarded-For of a trusted balancer', async () => {
    const body = { topic: 'news', data: 1 };
    expect((await publish(gateway.url, body)).status).toBe(200);
    // Through a balancer on this host: the real client is elsewhere.
    const remote = await publish(gateway.url, body, from('203.0.113.7'));
    expect([remote.status, remote.code]).toEqual([403, 'PUBLISH_FORBIDDEN']);
    // A client that claims loopback through the balancer is still the balancer's client.
    const spoof = await publish(gateway.url, body, from('127.0.0.1, 203.0.113.7'));
    expect(spoof.status).toBe(403);
  });

  it('does not let a page on another origin borrow the loopback trust', async () => {
    const answer = await publish(
      gateway.url,
      { topic: 'news', data: 1 },
      { origin: 'https://evil.example' },
    );
    expect([answer.status, answer.code]).toEqual([403, 'ORIGIN_FORBIDDEN']);
    expect(await readMetric(gateway.url, 'sse_auth_enabled')).toBe(0);
  });
});

describe('limits', () => {
  const prefix = testPrefix();
  let gateway: GatewayProcess;
  let redis: Redis;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      JWT_SECRET: SECRET,
      PUBLIC_TOPICS: 'open/*',
      TRUST_PROXY: 'loopback',
      MAX_STREAMS_PER_IP: '2',
      MAX_STREAMS_PER_SUBJECT: '2',
      MAX_CONNECTIONS: '5',
      PUBLISH_RATE_PER_MIN: '60',
      MAX_BODY_BYTES: '1024',
      MAX_TOPICS: '3',
    });
    redis = new Redis(testRedisUrl());
  });

  afterAll(async () => {
    redis?.disconnect();
    await gateway?.stop();
  });

  /** Waits until the gateway has let go of every stream. */
  async function drained(): Promise<void> {
    for (const client of clients.splice(0)) client.close();
    await waitFor(
      async () => (await readMetric(gateway.url, 'sse_connections')) === 0,
      'no open streams',
    );
  }

  it('limits streams per client IP, and lets the client in again once one closes', async () => {
    const url = `${gateway.url}/events?topic=open/a`;
    const first = await stream(url, from('203.0.113.1'));
    await stream(url, from('203.0.113.1'));
    const over = await refused(url, from('203.0.113.1'));
    expect([over.status, over.code]).toEqual([429, 'TOO_MANY_STREAMS']);
    expect(over.headers['retry-after']).toBe('10');
    expect(over.raw).not.toContain('retry:');
    // Another client is not affected; loopback (local tools) is not counted per IP.
    await stream(url, from('203.0.113.2'));
    first.close();
    // The place is given back when the gateway sees the connection close.
    await waitFor(
      async () => (await attempt(url, from('203.0.113.1'))).status === 200,
      'a place again',
      5000,
      50,
    );
    expect((await refused(url, from('203.0.113.1'))).status).toBe(429);
    await drained();
  });

  it('limits streams per token subject across addresses', async () => {
    const carol = bearer(
      await mintToken({ key: SECRET, claims: { sub: 'carol', sse: { subscribe: ['c/*'] } } }),
    );
    const streams = [
      await stream(`${gateway.url}/events?topic=c/1`, { ...carol, ...from('198.51.100.1') }),
      await stream(`${gateway.url}/events?topic=c/2`, { ...carol, ...from('198.51.100.2') }),
    ];
    const over = await refused(`${gateway.url}/events?topic=c/3`, {
      ...carol,
      ...from('198.51.100.3'),
    });
    expect([over.status, over.code]).toEqual([429, 'TOO_MANY_STREAMS']);
    streams[0]?.close();
    await waitFor(
      async () => (await readMetric(gateway.url, 'sse_connections')) === 1,
      'one stream left',
    );
    await stream(`${gateway.url}/events?topic=c/3`, { ...carol, ...from('198.51.100.3') });
    await drained();
  });

  it('limits the streams of the whole gateway', async () => {
    const open = [];
    for (let i = 0; i < 5; i++) open.push(await stream(`${gateway.url}/events?topic=open/${i}`));
    const over = await refused(`${gateway.url}/events?topic=open/x`);
    expect([over.status, over.code]).toEqual([429, 'TOO_MANY_CONNECTIONS']);
    expect(over.headers['retry-after']).toBe('5');
    expect(await readMetric(gateway.url, 'sse_limit{name="MAX_CONNECTIONS"}')).toBe(5);
    open[0]?.close();
    await waitFor(
      async () => (await readMetric(gateway.url, 'sse_connections')) === 4,
      '4 streams',
    );
    await stream(`${gateway.url}/events?topic=open/x`);
    await drained();
  });

  it('limits the publish rate per subject, and accepts again after Retry-After', async () => {
    const feed = bearer(
      await mintToken({ key: SECRET, claims: { sub: 'feed', sse: { publish: ['rate'] } } }),
    );
    for (let i = 0; i < 60; i++) {
      const res = await publish(gateway.url, { topic: 'rate', data: i }, feed);
      expect(res.status).toBe(200);
    }
    const over = await publish(gateway.url, { topic: 'rate', data: 'over' }, feed);
    expect([over.status, over.code]).toEqual([429, 'RATE_LIMITED']);
    expect(over.headers['retry-after']).toBe('1');
    // Another subject has its own budget.
    const other = bearer(
      await mintToken({ key: SECRET, claims: { sub: 'other', sse: { publish: ['rate'] } } }),
    );
    expect((await publish(gateway.url, { topic: 'rate', data: 'other' }, other)).status).toBe(200);
    await sleep(1100);
    expect((await publish(gateway.url, { topic: 'rate', data: 'again' }, feed)).status).toBe(200);
    expect(await redis.xlen(`${prefix}:{rate}:log`)).toBe(62);
    expect(await readMetric(gateway.url, 'sse_requests_refused_total{code="RATE_LIMITED"}')).toBe(
      1,
    );
  });

  it('counts a batch as its events against the publish rate, and checks each topic claim', async () => {
    const feed = bearer(
      await mintToken({ key: SECRET, claims: { sub: 'batcher', sse: { publish: ['b/*'] } } }),
    );
    // Short entries: this gateway's MAX_BODY_BYTES is 1024.
    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ topic: 'b/k', data: i }));
    // A claim per entry: the entry outside it is refused alone, the others are stored.
    const mixed = await fetchJson(`${gateway.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...feed },
      body: JSON.stringify([...batch(2), { topic: 'elsewhere', data: 'no' }, ...batch(2)]),
    });
    expect(mixed.status).toBe(200);
    expect(mixed.body.results.map((r: { error?: { code: string } }) => r.error?.code)).toEqual([
      undefined,
      undefined,
      'TOPIC_FORBIDDEN',
      undefined,
      undefined,
    ]);
    expect(await redis.xlen(`${prefix}:{b/k}:log`)).toBe(4);
    expect(await redis.exists(`${prefix}:{elsewhere}:log`)).toBe(0);
    // 5 of the 60 a minute are gone: 55 more pass, then a batch of 2 is refused whole.
    for (const n of [20, 20, 15]) {
      expect((await publish(gateway.url, batch(n), feed)).status).toBe(200);
    }
    const over = await publish(gateway.url, batch(2), feed);
    expect([over.status, over.code]).toEqual([429, 'RATE_LIMITED']);
    expect(await redis.xlen(`${prefix}:{b/k}:log`)).toBe(59);
  });

  it('refuses a body over MAX_BODY_BYTES and more topics than MAX_TOPICS', async () => {
    const feed = bearer(
      await mintToken({ key: SECRET, claims: { sub: 'big', sse: { publish: ['big'] } } }),
    );
    const big = await publish(gateway.url, { topic: 'big', data: 'x'.repeat(2000) }, feed);
    expect([big.status, big.code]).toEqual([413, 'BODY_TOO_LARGE']);
    expect(await redis.exists(`${prefix}:{big}:log`)).toBe(0);
    const many = await refused(
      `${gateway.url}/events?topic=open/1&topic=open/2&topic=open/3&topic=open/4`,
    );
    expect([many.status, many.code]).toEqual([400, 'TOO_MANY_TOPICS']);
    expect((await publish(gateway.url, { topic: 'big', data: 'small' }, feed)).status).toBe(200);
    await stream(`${gateway.url}/events?topic=open/1&topic=open/2&topic=open/3`);
    expect(await readMetric(gateway.url, 'sse_limit{name="MAX_BODY_BYTES"}')).toBe(1024);
    expect(await readMetric(gateway.url, 'sse_limit{name="MAX_TOPICS"}')).toBe(3);
  });

  it('answers 413 to a client still sending a large body, and reads the rest instead of resetting', async () => {
    // The gateway answers on the Content-Length, before the body. A socket closed with unread
    // bytes is reset by the kernel: the client's next writes failed (EPIPE, ECONNRESET), and
    // a client such as fetch could lose the answer. Here the client sends all 16 MiB, each
    // write awaited, then reads the answer and a clean end of the connection.
    const token = await mintToken({
      key: SECRET,
      claims: { sub: 'big', sse: { publish: ['big'] } },
    });
    const { port } = new URL(gateway.url);
    // Half-open: the client keeps sending after the gateway's FIN, as one busy writing would.
    const socket = connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    let failure: Error | undefined;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', (err) => (failure = err));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const size = 16 * 1024 * 1024;
    const write = (chunk: string | Buffer) =>
      new Promise<void>((resolve, reject) =>
        socket.write(chunk, (err) => (err ? reject(err) : resolve())),
      );
    await write(
      `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${token}\r\nContent-Length: ${size}\r\n\r\n`,
    );
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    for (let sent = 0; sent < size; sent += chunk.length) await write(chunk);
    socket.end();
    await ended;
    expect(failure).toBeUndefined();
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    expect(received).toContain('connection: close');
    expect(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { code: 'BODY_TOO_LARGE' },
    });
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});

describe('limits across the cluster', () => {
  const prefix = testPrefix();
  let a: GatewayProcess;
  let b: GatewayProcess;
  let redis: Redis;

  beforeAll(async () => {
    const env = {
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      JWT_SECRET: SECRET,
      PUBLIC_TOPICS: 'open/*',
      TRUST_PROXY: 'loopback',
      MAX_STREAMS_PER_IP: '10',
      CLUSTER_MAX_STREAMS_PER_IP: '3',
      CLUSTER_MAX_STREAMS_PER_SUBJECT: '2',
      STREAM_COUNT_TTL_S: '3',
    };
    [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    redis = new Redis(testRedisUrl());
  });

  afterAll(async () => {
    redis?.disconnect();
    await Promise.all([a?.kill(), b?.stop()]);
  });

  it("counts a client's streams on every gateway, and forgets a dead gateway's", async () => {
    const ip = from('203.0.113.9');
    const url = (g: GatewayProcess, n: number) => `${g.url}/events?topic=open/${n}`;
    await stream(url(a, 1), ip);
    await stream(url(a, 2), ip);
    const onB = await stream(url(b, 3), ip);
    for (const g of [a, b]) {
      const over = await refused(url(g, 4), ip);
      expect([over.status, over.code]).toEqual([429, 'TOO_MANY_STREAMS']);
      expect(over.raw).toContain('CLUSTER_MAX_STREAMS_PER_IP');
    }
    const key = `${prefix}:streams:ip:203.0.113.9`;
    expect(await redis.hlen(key)).toBe(2);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    // One closes on B: A lets the client in again (and that stream takes the place).
    onB.close();
    await waitFor(
      async () => (await attempt(url(a, 5), ip)).status === 200,
      'a place on A',
      5000,
      50,
    );
    expect((await refused(url(b, 7), ip)).status).toBe(429);
    // A crashes holding 3 streams: its count stops counting after STREAM_COUNT_TTL_S (3 s).
    await a.kill();
    const started = Date.now();
    await waitFor(
      async () => (await attempt(url(b, 8), ip)).status === 200,
      "A's count to expire",
      10_000,
      250,
    );
    expect(Date.now() - started).toBeLessThan(8000);
    await stream(url(b, 9), ip);
    await stream(url(b, 10), ip);
    expect((await refused(url(b, 12), ip)).status).toBe(429);
  });

  it("counts a subject's streams across gateways", async () => {
    const dave = bearer(
      await mintToken({ key: SECRET, claims: { sub: 'dave', sse: { subscribe: ['d/*'] } } }),
    );
    await stream(`${b.url}/events?topic=d/1`, { ...dave, ...from('192.0.2.1') });
    await stream(`${b.url}/events?topic=d/2`, { ...dave, ...from('192.0.2.2') });
    const over = await refused(`${b.url}/events?topic=d/3`, { ...dave, ...from('192.0.2.3') });
    expect([over.status, over.code]).toEqual([429, 'TOO_MANY_STREAMS']);
    expect(over.raw).toContain('CLUSTER_MAX_STREAMS_PER_SUBJECT');
    expect(await readMetric(b.url, 'sse_limit{name="CLUSTER_MAX_STREAMS_PER_SUBJECT"}')).toBe(2);
  });
});

describe('the same checks in an Express app', () => {
  it('refuses and admits streams of sse() as the gateway does, and ends them at expiry', async () => {
    const broadcaster = await createBroadcaster({
      redisUrl: testRedisUrl(),
      keyPrefix: testPrefix(),
      retryMs: 100,
    });
    const guard = new Guard({
      auth: new Authorizer({ secret: SECRET, clockSkewS: 0, publicTopics: ['open/*'] }),
      streams: new StreamCounter({ limits: { maxPerSubject: 1 } }),
    });
    const app = express();
    app.get('/events', sse({ broadcaster, guard }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const claims = { sub: 'erin', sse: { subscribe: ['user/{sub}/*'] } };
      await stream(`${url}/events?topic=open/x`);
      expect((await refused(`${url}/events?topic=user/erin/a`)).code).toBe('AUTH_REQUIRED');
      expect(
        (
          await refused(
            `${url}/events?topic=user/frank/a`,
            bearer(await mintToken({ key: SECRET, claims })),
          )
        ).code,
      ).toBe('TOPIC_FORBIDDEN');
      expect(
        (await refused(`${url}/events?topic=user/erin/a`, bearer(unsignedToken(claims)))).code,
      ).toBe('TOKEN_INVALID');
      // Expires 2–3 s from now (exp is in whole seconds): long enough for the checks before it
      // on a loaded machine, whose clock may be just before a second's end.
      const soon = await mintToken({ key: SECRET, claims: { ...claims, exp: now() + 3 } });
      const client = await stream(`${url}/events?topic=user/erin/a&token=${soon}`);
      const over = await refused(
        `${url}/events?topic=user/erin/b`,
        bearer(await mintToken({ key: SECRET, claims })),
      );
      expect([over.status, over.code, over.headers['retry-after']]).toEqual([
        429,
        'TOO_MANY_STREAMS',
        '10',
      ]);
      await broadcaster.publish('user/erin/a', 'note', 1);
      await client.waitForEvents(1);
      await client.waitForEnd(8000);
      expect((await refused(`${url}/events?topic=user/erin/a&token=${soon}`)).code).toBe(
        'TOKEN_EXPIRED',
      );
      // Its place was given back when it ended.
      await stream(
        `${url}/events?topic=user/erin/b`,
        bearer(await mintToken({ key: SECRET, claims })),
      );
    } finally {
      for (const client of clients.splice(0)) client.close();
      guard.close();
      await broadcaster.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
  });
});

describe('npm start with keys configured', () => {
  it('keeps the demo topics public and everything else behind a token', async () => {
    const app = await startGatewayProcess(
      { JWT_SECRET: SECRET, PRODUCERS: 'stocks' },
      { script: join(__dirname, '..', 'apps', 'standalone', 'src', 'main.ts') },
    );
    try {
      const demo = await stream(`${app.url}/api/stocks/aapl`);
      await demo.waitForEvents(1, 15_000);
      await stream(`${app.url}/events?topic=matches/123&topic=system/monitoring`);
      expect((await refused(`${app.url}/events?topic=private`)).code).toBe('AUTH_REQUIRED');
      // The producers publish inside the process; HTTP publishing needs a token now.
      expect((await publish(app.url, { topic: 'events', data: 1 })).code).toBe('AUTH_REQUIRED');
    } finally {
      for (const client of clients.splice(0)) client.close();
      await app.stop();
    }
  });
});
