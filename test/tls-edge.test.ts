import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import {
  connect,
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
} from 'node:http2';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  publishHttp,
  readMetric,
  testPrefix,
  testRedisUrl,
  waitFor,
  type SseEvent,
} from '@streamcast/testing';
import { createParser } from 'eventsource-parser';
import {
  MAKE_CERT,
  clusterEnv,
  startCluster,
  type Cluster,
  type ClusterOptions,
} from '../scripts/cluster';

/**
 * HTTPS and HTTP/2 at the edge (docs/cluster.md, "HTTPS and HTTP/2"), from real processes: 2 gateways on
 * the suite's Redis behind nginx from the shared template with TLS on, started by the code behind
 * `TLS=1 npm run cluster`, with a self-signed pair that scripts/make-cert.sh makes in a temporary
 * directory. A browser's streams share one HTTP/2 connection; nginx fans them out to the gateways
 * over HTTP/1.1, unbuffered, as it does without TLS.
 */

const STREAMS = 20;
const EVENTS = 25;

/** One SSE request on an HTTP/2 session, every frame recorded. */
interface H2Sse {
  readonly request: ClientHttp2Stream;
  headers: IncomingHttpHeaders | undefined;
  raw: string;
  events: SseEvent[];
  /** From sending the request to its first body bytes. */
  firstBytesMs: number | undefined;
}

function openSse(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): H2Sse {
  const started = Date.now();
  const request = session.request({ ':path': path, accept: 'text/event-stream', ...headers });
  const sse: H2Sse = { request, headers: undefined, raw: '', events: [], firstBytesMs: undefined };
  const parser = createParser({
    onEvent: (e) => sse.events.push({ id: e.id, event: e.event ?? 'message', data: e.data }),
  });
  request.on('response', (h) => (sse.headers = h));
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => {
    sse.firstBytesMs ??= Date.now() - started;
    sse.raw += chunk;
    parser.feed(chunk);
  });
  request.on('error', () => {}); // a cancelled stream, at the end
  return sse;
}

/** A whole non-stream answer over the session. */
function h2Get(
  session: ClientHttp2Session,
  path: string,
  method = 'GET',
): Promise<{ headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = session.request({
      ':path': path,
      ':method': method,
      'content-type': 'application/json',
    });
    let body = '';
    let headers: IncomingHttpHeaders = {};
    request.on('response', (h) => (headers = h));
    request.setEncoding('utf8');
    request.on('data', (c: string) => (body += c));
    request.on('end', () => resolve({ headers, body }));
    request.on('error', reject);
    request.end(method === 'POST' ? JSON.stringify({ topic: 'x', data: 1 }) : undefined);
  });
}

/** A plain HTTP/1.1 or HTTPS request; the answer as it comes (redirects not followed). */
function request1(
  url: string,
  options: { method?: string; ca?: Buffer } = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(
      url,
      { method: options.method ?? 'GET', ca: options.ca, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.once('error', reject);
    req.end(options.method === 'POST' ? '{}' : undefined);
  });
}

function connectH2(cluster: Cluster, ca: Buffer): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // The self-signed certificate is its own authority: verified, not waved through.
    const session = connect(cluster.url, { ca });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

const clusterOptions = (tls: ClusterOptions['tls']): ClusterOptions => ({
  gateways: 2,
  port: 0,
  redisUrl: testRedisUrl(),
  env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn' },
  gatewayEnv: { REDIS_PREFIX: testPrefix(), RETRY_MS: '500' },
  producers: false,
  uploadWorker: false,
  readyTimeoutMs: 120_000,
  tls,
});

describe('the balancer with TLS: HTTP/2 to browsers, HTTP/1.1 to the gateways', () => {
  let certDir: string;
  let cluster: Cluster;
  let ca: Buffer;
  const sessions: ClientHttp2Session[] = [];

  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'streamcast-tls-edge-'));
    // No certificate given: the cluster makes the pair in certDir with scripts/make-cert.sh.
    cluster = await startCluster(clusterOptions({ certDir: join(certDir, 'certs') }));
    ca = readFileSync(cluster.tls?.certFile as string);
  }, 180_000);

  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await cluster?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  const session = async () => {
    const s = await connectH2(cluster, ca);
    sessions.push(s);
    return s;
  };

  it('serves a self-signed pair made by scripts/make-cert.sh: localhost and 127.0.0.1, the key private', () => {
    const tls = cluster.tls as NonNullable<Cluster['tls']>;
    expect(tls.certFile).toBe(join(certDir, 'certs', 'cert.pem'));
    expect(tls.keyFile).toBe(join(certDir, 'certs', 'key.pem'));
    expect(existsSync(tls.keyFile)).toBe(true);
    expect(statSync(tls.keyFile).mode & 0o077).toBe(0);
    const cert = new X509Certificate(ca);
    expect(cert.ca).toBe(false);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cluster.url).toBe(`https://127.0.0.1:${tls.port}`);
    expect(cluster.httpUrl).toBe(`http://127.0.0.1:${cluster.port}`);
  });

  it(`${STREAMS} streams over one HTTP/2 connection: first bytes at once, every event in order on each`, async () => {
    const h2 = await session();
    // Negotiated by ALPN in the TLS handshake.
    expect(h2.alpnProtocol).toBe('h2');
    expect(h2.encrypted).toBe(true);
    const topic = `h2-${testPrefix()}`;
    const streams = Array.from({ length: STREAMS }, () =>
      openSse(h2, `/events?topic=${topic}`, { 'accept-encoding': 'gzip, br' }),
    );
    // Unbuffered: each stream's first bytes (retry: and its cursor) arrive while it stays open.
    await waitFor(
      () => streams.every((s) => s.firstBytesMs !== undefined),
      () =>
        `first bytes on every stream (${streams.filter((s) => s.firstBytesMs !== undefined).length}/${STREAMS})`,
      10_000,
    );
    for (const s of streams) {
      expect(s.headers?.[':status']).toBe(200);
      expect(s.headers?.['content-type']).toBe('text/event-stream');
      expect(s.headers?.['cache-control']).toBe('no-cache, no-transform');
      expect(s.headers?.['content-encoding']).toBeUndefined();
      // No HSTS unless configured (HSTS_MAX_AGE).
      expect(s.headers?.['strict-transport-security']).toBeUndefined();
      expect(s.raw).toMatch(/^retry: 500\n/);
      expect(s.firstBytesMs).toBeLessThan(3000);
    }
    // One client connection, 20 gateway connections: nginx spread them over both gateways.
    const held = await Promise.all(
      cluster.gateways.map((g) => readMetric(g.url, 'sse_connections')),
    );
    expect(held.reduce((a, b) => a + b, 0)).toBe(STREAMS);
    for (const n of held) expect(n).toBeGreaterThan(0);

    // Published to a gateway directly; each event reaches every stream before the next is sent,
    // well within the heartbeat (15 s): nothing waits in a buffer on the HTTP/2 path.
    for (let i = 0; i < EVENTS; i++) {
      const sent = Date.now();
      await publishHttp(cluster.gateways[i % 2]?.url as string, topic, 'n', { seq: i });
      await waitFor(
        () => streams.every((s) => s.events.length > i),
        () =>
          `event ${i} on every stream (${streams.filter((s) => s.events.length > i).length}/${STREAMS})`,
        5000,
        5,
      );
      expect(Date.now() - sent).toBeLessThan(5000);
    }
    for (const s of streams) {
      expect(s.events.map((e) => e.event)).toEqual(Array(EVENTS).fill('n'));
      expect(s.events.map((e) => (JSON.parse(e.data) as { seq: number }).seq)).toEqual([
        ...Array(EVENTS).keys(),
      ]);
    }
    // Still the one session, its streams open until now.
    expect(h2.closed || h2.destroyed).toBe(false);
    for (const s of streams) expect(s.request.closed).toBe(false);

    for (const s of streams) s.request.close(constants.NGHTTP2_CANCEL);
    h2.close();
    // nginx's side (access log, written as each request ends): every stream came in as HTTP/2
    // on one and the same connection, and went out to a gateway.
    const lines = await waitFor(
      () => {
        const log = readFileSync(join(cluster.dir, 'access.log'), 'utf8');
        const found = log.split('\n').filter((l) => l.includes(`/events?topic=${topic} `));
        return found.length >= STREAMS ? found : undefined;
      },
      `${STREAMS} access log lines of the streams`,
      10_000,
    );
    expect(lines).toHaveLength(STREAMS);
    for (const line of lines)
      expect(line).toMatch(new RegExp(`"GET /events\\?topic=${topic} HTTP/2\\.0" 200 `));
    const connections = new Set(lines.map((l) => /conn=(\d+)/.exec(l)?.[1]));
    expect(connections.size).toBe(1);
    const upstreams = new Set(lines.map((l) => /upstream=(\S+)/.exec(l)?.[1]));
    expect([...upstreams].sort()).toEqual(
      cluster.gateways.map((g) => `127.0.0.1:${g.port}`).sort(),
    );
  }, 90_000);

  it('keeps refusing POST /publish at the balancer over HTTP/2', async () => {
    const h2 = await session();
    for (const path of ['/publish', '//publish', '/%70ublish']) {
      const res = await h2Get(h2, path, 'POST');
      expect({ path, status: res.headers[':status'] }).toEqual({ path, status: 403 });
      expect(JSON.parse(res.body).error.code).toBe('PUBLISH_FORBIDDEN');
    }
    const ready = await h2Get(h2, '/readyz');
    expect(ready.headers[':status']).toBe(200);
    expect(ready.headers['strict-transport-security']).toBeUndefined();
    h2.close();
  });

  it('redirects plain HTTP to HTTPS with 308, path and query kept', async () => {
    const https = `https://127.0.0.1:${cluster.tls?.port}`;
    for (const [method, path] of [
      ['GET', '/events?topic=a&topic=b%2Fc&x=1%202'],
      ['GET', '/'],
      ['GET', '/healthz'],
      ['POST', '/api/upload?name=a.txt'],
      ['POST', '/publish'],
    ] as const) {
      const res = await request1(`${cluster.httpUrl}${path}`, { method });
      expect({ method, path, status: res.status, location: res.headers.location }).toEqual({
        method,
        path,
        status: 308,
        location: `${https}${path}`,
      });
      expect(res.headers['strict-transport-security']).toBeUndefined();
    }
    // The host the client asked for, not nginx's idea of it.
    const byName = await new Promise<string | undefined>((resolve, reject) => {
      const req = httpRequest(
        `${cluster.httpUrl}/x?y=1`,
        { headers: { host: `localhost:${cluster.port}` }, agent: false },
        (res) => {
          res.resume();
          resolve(res.headers.location);
        },
      );
      req.once('error', reject);
      req.end();
    });
    expect(byName).toBe(`https://localhost:${cluster.tls?.port}/x?y=1`);
    // HTTP/1.1 over TLS still works (clients without ALPN h2), verified against the certificate.
    const viaHttps = await request1(`${https}/healthz`, { ca });
    expect(viaHttps.status).toBe(200);
  });
});

describe('the balancer with TLS and HSTS_MAX_AGE', () => {
  let certDir: string;
  let cluster: Cluster;

  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'streamcast-tls-hsts-'));
    const made = spawnSync('bash', [MAKE_CERT, certDir], { encoding: 'utf8' });
    expect(made.stderr).toBe('');
    expect(made.status).toBe(0);
    // A given pair (TLS_CERT_FILE, TLS_KEY_FILE); one gateway is enough here.
    cluster = await startCluster({
      ...clusterOptions({
        certFile: join(certDir, 'cert.pem'),
        keyFile: join(certDir, 'key.pem'),
        hstsMaxAge: 600,
      }),
      gateways: 1,
    });
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  it('sends Strict-Transport-Security on every HTTPS answer, never over plain HTTP', async () => {
    const ca = readFileSync(join(certDir, 'cert.pem'));
    const h2 = await connectH2(cluster, ca);
    try {
      const stream = openSse(h2, '/events?topic=hsts');
      await waitFor(() => stream.firstBytesMs !== undefined, 'the stream to begin');
      expect(stream.headers?.['strict-transport-security']).toBe('max-age=600');
      stream.request.close(constants.NGHTTP2_CANCEL);
      for (const [path, method, status] of [
        ['/healthz', 'GET', 200],
        ['/publish', 'POST', 403],
        ['/nowhere', 'GET', 404],
      ] as const) {
        const res = await h2Get(h2, path, method);
        expect({
          path,
          status: res.headers[':status'],
          hsts: res.headers['strict-transport-security'],
        }).toEqual({
          path,
          status,
          hsts: 'max-age=600',
        });
      }
    } finally {
      h2.destroy();
    }
    const plain = await request1(`${cluster.httpUrl}/healthz`);
    expect(plain.status).toBe(308);
    expect(plain.headers['strict-transport-security']).toBeUndefined();
  });
});

describe('the HTTPS settings of npm run cluster', () => {
  it('is off unless TLS=1 or a certificate is given; checks each variable', () => {
    expect(clusterEnv({}).tls).toBeUndefined();
    expect(clusterEnv({ TLS: '0', HSTS_MAX_AGE: '60' }).tls).toBeUndefined();
    // TLS=1 alone: the self-signed pair in .certs, made when missing.
    expect(clusterEnv({ TLS: '1' }).tls).toEqual({
      certFile: undefined,
      keyFile: undefined,
      port: 8443,
      hstsMaxAge: 0,
    });
    const given = {
      TLS_CERT_FILE: '/etc/ssl/site.pem',
      TLS_KEY_FILE: '/etc/ssl/site.key',
      TLS_PORT: '443',
      HSTS_MAX_AGE: '31536000',
    };
    expect(clusterEnv(given).tls).toEqual({
      certFile: '/etc/ssl/site.pem',
      keyFile: '/etc/ssl/site.key',
      port: 443,
      hstsMaxAge: 31536000,
    });
    expect(clusterEnv({ ...given, TLS: '0' }).tls).toBeUndefined();
    expect(() => clusterEnv({ TLS_CERT_FILE: '/c.pem' })).toThrow(
      'config: TLS_CERT_FILE and TLS_KEY_FILE go together (got only TLS_CERT_FILE)',
    );
    expect(() => clusterEnv({ TLS: 'yes' })).toThrow('config: TLS must be 0 or 1 (got "yes")');
    expect(() => clusterEnv({ TLS: '1', TLS_PORT: '70000' })).toThrow(
      /^config: TLS_PORT must be an integer 1-65535/,
    );
    expect(() => clusterEnv({ TLS: '1', HSTS_MAX_AGE: '1y' })).toThrow(
      /^config: HSTS_MAX_AGE must be an integer/,
    );
  });

  it('refuses a certificate without its key, or one that is not there', async () => {
    await expect(
      startCluster({ port: 0, tls: { certFile: '/nonexistent/cert.pem' } }),
    ).rejects.toThrow(/both a certificate and its key/);
    await expect(
      startCluster({
        port: 0,
        tls: { certFile: '/nonexistent/cert.pem', keyFile: '/nonexistent/key.pem' },
      }),
    ).rejects.toThrow(
      'cluster: /nonexistent/cert.pem does not exist (npm run make-cert makes a self-signed pair)',
    );
  });
});
