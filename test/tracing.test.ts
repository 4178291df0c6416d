import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { tracesRequested } from '@streamcast/telemetry';
import {
  SseClient,
  fetchJson,
  freePort,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
} from '@streamcast/testing';

/*
 * OpenTelemetry traces of a real gateway process on a real Redis, exported by the SDK's OTLP
 * exporter (http/json) to a receiver in this test, as they would be to a collector.
 */

const ROOT = join(__dirname, '..');

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
  links?: Array<{ traceId: string; spanId: string }>;
}

const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };

function attr(span: OtlpSpan, key: string): unknown {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}

/** A stand-in for an OpenTelemetry collector: OTLP/HTTP with JSON bodies. */
class OtlpReceiver {
  readonly spans: OtlpSpan[] = [];
  readonly services = new Set<string>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    const port = await freePort();
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          const message = JSON.parse(body) as {
            resourceSpans: Array<{
              resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
              scopeSpans: Array<{ spans: OtlpSpan[] }>;
            }>;
          };
          for (const rs of message.resourceSpans) {
            const name = rs.resource.attributes.find((a) => a.key === 'service.name');
            if (name?.value.stringValue) this.services.add(name.value.stringValue);
            for (const ss of rs.scopeSpans) this.spans.push(...ss.spans);
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${port}`;
  }

  named(name: string): OtlpSpan[] {
    return this.spans.filter((s) => s.name === name);
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

describe('traces (OpenTelemetry)', () => {
  it('are on only when the standard variables ask for them', () => {
    expect(tracesRequested({})).toBe(false);
    expect(tracesRequested({ OTEL_SERVICE_NAME: 'x' })).toBe(false);
    expect(tracesRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracesRequested({ OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
    expect(tracesRequested({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracesRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracesRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toBe(
      true,
    );
    expect(
      tracesRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }),
    ).toBe(false);
  });

  it('cost nothing when off: the compiled gateway loads no OpenTelemetry module', () => {
    const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
    expect(build.status).toBe(0);
    const loaded = (env: Record<string, string>) => {
      const probe = `require('./apps/gateway/dist/main.js');
setTimeout(() => {
  const files = Object.keys(require.cache);
  console.log(JSON.stringify(files.filter((f) => /node_modules\\/(@opentelemetry|@fastify\\/otel)\\//.test(f)).map((f) => f.replace(/.*node_modules\\//, '').split('/').slice(0, 2).join('/'))));
  process.exit(0);
}, 1500);`;
      const out = spawnSync(process.execPath, ['-e', probe], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', ...env },
      });
      return [...new Set(JSON.parse(out.stdout.trim().split('\n').pop() as string) as string[])];
    };
    // The API alone (no SDK, a no-op) is prom-client's own dependency, loaded by /metrics.
    expect(loaded({}).filter((m) => m !== '@opentelemetry/api')).toEqual([]);
    // The same probe sees the SDK when traces are on: the check above can fail.
    expect(
      loaded({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:9/v1/traces',
      }),
    ).toEqual(expect.arrayContaining(['@opentelemetry/sdk-node', '@fastify/otel']));
  }, 120_000);

  describe('a gateway exporting to a collector', () => {
    const receiver = new OtlpReceiver();
    let gateway: GatewayProcess;

    beforeAll(async () => {
      await receiver.start();
      gateway = await startGatewayProcess({
        REDIS_URL: testRedisUrl(),
        REDIS_PREFIX: testPrefix(),
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_SERVICE_NAME: 'gateway-under-test',
      });
    }, 60_000);
    afterAll(async () => {
      await gateway?.stop();
      await receiver.stop();
    });

    it("traces a stream's set-up, a publish from the producer's trace, and the delivery linked to it", async () => {
      const client = await SseClient.open(`${gateway.url}/events?topic=traced`);
      await waitFor(() => client.raw.length > 0, 'the stream to open');
      // The producer's own trace: the gateway continues it (W3C traceparent).
      const producerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
      const producerSpan = '00f067aa0ba902b7';
      const res = await fetchJson(`${gateway.url}/publish`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          traceparent: `00-${producerTrace}-${producerSpan}-01`,
        },
        body: JSON.stringify({ topic: 'traced', data: { n: 1 } }),
      });
      expect(res.status).toBe(200);
      await client.waitForEvents(1);
      await waitFor(
        () =>
          receiver.named('streamcast.deliver').length > 0 &&
          receiver.named('streamcast.subscribe').length > 0,
        () => `spans (got ${receiver.spans.map((s) => s.name).join(', ')})`,
        15_000,
      );
      expect([...receiver.services]).toEqual(['gateway-under-test']);
      const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));

      // The publish: POST /publish (Fastify) in the producer's trace, the publish span under it,
      // the Redis script under that.
      const [publish] = receiver.named('streamcast.publish');
      if (!publish) throw new Error('no streamcast.publish span');
      expect(publish.traceId).toBe(producerTrace);
      expect(publish.kind).toBe(KIND.producer);
      expect(attr(publish, 'messaging.destination.name')).toBe('traced');
      const ancestors = (span: OtlpSpan): OtlpSpan[] => {
        const parent = byId.get(span.parentSpanId ?? '');
        return parent ? [parent, ...ancestors(parent)] : [];
      };
      const request = ancestors(publish).at(-1) as OtlpSpan;
      expect(request.parentSpanId).toBe(producerSpan);
      expect(request.kind).toBe(KIND.server);
      expect(attr(request, 'http.route')).toBe('/publish');
      const redisUnderPublish = receiver.spans.filter((s) => s.parentSpanId === publish.spanId);
      expect(
        redisUnderPublish.map((s) => attr(s, 'db.system') ?? attr(s, 'db.system.name')),
      ).toContain('redis');

      // The delivery: a trace of its own, linked to the publish span, one span for the fan-out.
      const [deliver] = receiver.named('streamcast.deliver');
      if (!deliver) throw new Error('no streamcast.deliver span');
      expect(deliver.kind).toBe(KIND.consumer);
      expect(deliver.traceId).not.toBe(producerTrace);
      expect(deliver.links?.map((l) => [l.traceId, l.spanId])).toEqual([
        [publish.traceId, publish.spanId],
      ]);
      expect(attr(deliver, 'streamcast.streams')).toBe(1);
      expect(attr(deliver, 'messaging.message.id')).toMatch(/^\d+-\d+$/);

      // The stream's set-up: GET /events, with auth and placement (its history read in Redis)
      // under it; the request's span ends once the stream is live.
      const [subscribe] = receiver.named('streamcast.subscribe');
      const [auth] = receiver.named('streamcast.auth');
      if (!subscribe || !auth) throw new Error('no set-up spans');
      const streamRequest = ancestors(subscribe).at(-1) as OtlpSpan;
      expect(attr(streamRequest, 'http.route')).toBe('/events');
      expect(ancestors(auth).at(-1)?.spanId).toBe(streamRequest.spanId);
      expect(ancestors(subscribe).map((s) => s.spanId)).toContain(auth.parentSpanId);
      const readUnder = receiver.spans.filter((s) => s.parentSpanId === subscribe.spanId);
      expect(readUnder.length).toBeGreaterThan(0);
      // Probes and scrapes are not traced, nor the readiness probe's Redis commands.
      await fetchJson(`${gateway.url}/metrics`);
      await fetchJson(`${gateway.url}/readyz`);
      await new Promise((r) => setTimeout(r, 500));
      expect(
        receiver.spans
          .filter((s) => !s.parentSpanId && s.name !== 'streamcast.deliver')
          .map((s) => attr(s, 'http.route')),
      ).toEqual(['/events']);
      client.close();
    });
  });
});
