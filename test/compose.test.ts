import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayEnv } from '@streamcast/config';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { runnerEnv } from '../apps/producers/src/env';
import {
  CLUSTER_TLS_VARIABLES,
  DEFAULT_CERT_DIR,
  MAKE_CERT,
  NGINX_TEMPLATE,
  clusterCommands,
  scriptOf,
  clusterEnv,
  http2StyleFor,
  localUpstreamServer,
  nginxHttp2Style,
  nginxPath,
  nginxTlsDirectives,
  renderNginxConfig,
} from '../scripts/cluster';

/**
 * docker-compose.yml, the Dockerfile and the balancer configs, checked without a Docker engine:
 * the compose file against the Compose schema and against what the local cluster runs (same
 * commands, same variables, same nginx template), nginx and HAProxy configs by the real binaries.
 */

const ROOT = join(__dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  restart?: string;
  deploy?: { replicas?: number | string };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
  container_name?: string;
  stop_grace_period?: string;
  stop_signal?: string;
}

const composeText = read('docker-compose.yml');
const compose = parse(composeText, { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const service = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
const envOf = (name: string) => Object.keys(service(name).environment ?? {});
const seconds = (text: string) => {
  const m = /^(\d+)(ms|s|m)?$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
};

function composeSchemaPath(): string | undefined {
  // Shipped by the docker-compose package (a dependency of testcontainers): no download.
  try {
    return require.resolve('docker-compose/schema/compose-spec.json');
  } catch {
    return undefined;
  }
}

function haproxyPath(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy'], {
    encoding: 'utf8',
  });
  const path = found.stdout.trim().split('\n')[0];
  return found.status === 0 && path ? path : undefined;
}

describe('docker-compose.yml', () => {
  const schemaPath = composeSchemaPath();
  (schemaPath ? it : it.skip)('is valid against the Compose specification schema', () => {
    const schema = JSON.parse(readFileSync(schemaPath as string, 'utf8')) as Record<
      string,
      unknown
    >;
    delete schema.$schema;
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(ajv.errorsText(validate.errors, { separator: '\n' })).toBe('No errors');
    expect(ok).toBe(true);
  });
  if (!schemaPath) {
    it('(Compose schema check skipped: docker-compose/schema/compose-spec.json is not installed)', () => {});
  }

  it('has Redis, the gateways, nginx, the producers and the upload worker', () => {
    const defaults = Object.entries(services).filter(([, s]) => !s.profiles);
    expect(defaults.map(([name]) => name).sort()).toEqual([
      'gateway',
      'nginx',
      'producers',
      'redis',
      'upload-worker',
    ]);
    // HAProxy is there as the alternative, only when asked for.
    expect(service('haproxy').profiles).toEqual(['haproxy']);
  });

  it('publishes one port for users: the balancer, on PORT (default 8080) as npm run cluster', () => {
    const published = Object.entries(services).filter(([, s]) => !s.profiles && s.ports?.length);
    expect(published.map(([name]) => name)).toEqual(['nginx']);
    // On every host address unless PUBLISH_HOST says one (the compose test: 127.0.0.1).
    expect(service('nginx').ports).toEqual(['${PUBLISH_HOST:-0.0.0.0}:${PORT:-8080}:8080']);
    expect(service('haproxy').ports).toEqual([
      '${PUBLISH_HOST:-0.0.0.0}:${HAPROXY_PORT:-8081}:8080',
    ]);
  });

  it('takes the official images by default, each replaceable by a variable (npm run images:local)', () => {
    expect(service('redis').image).toBe('${REDIS_IMAGE:-redis:7.4-alpine}');
    expect(service('nginx').image).toBe('${NGINX_IMAGE:-nginx:1.28-alpine}');
    expect(service('haproxy').image).toBe('${HAPROXY_IMAGE:-haproxy:2.8-alpine}');
    expect(service('gateway').build).toEqual({
      context: '.',
      args: { NODE_IMAGE: '${NODE_IMAGE:-node:24-bookworm-slim}' },
    });
    // The Dockerfile's own default is the same official image.
    expect(read('Dockerfile')).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    // Valid for docker-compose 1.29 too: no top-level name (the project name is in .env).
    expect(Object.keys(compose)).not.toContain('name');
    expect(read('.env').split('\n')).toContain('COMPOSE_PROJECT_NAME=streamcast');
    // The variables images:local writes are the ones the compose file reads.
    const written = [...read('scripts/images-local.sh').matchAll(/^([A-Z_]+)=\$\1$/gm)]
      .map((m) => m[1])
      .sort();
    expect(written).toEqual([
      'HAPROXY_IMAGE',
      'NGINX_IMAGE',
      'NODE_IMAGE',
      'PROMETHEUS_IMAGE',
      'REDIS_IMAGE',
    ]);
    expect(service('prometheus').image).toBe('${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.2}');
    expect(service('grafana').image).toBe('${GRAFANA_IMAGE:-grafana/grafana:11.3.0}');
    expect(read('.gitignore').split('\n')).toContain('/.env.images');
  });

  it('runs Redis with persistence, a health check and a restart policy', () => {
    const redis = service('redis');
    expect(redis.command?.join(' ')).toMatch(/--appendonly yes/);
    expect(redis.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
    expect(redis.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    expect(redis.restart).toBe('unless-stopped');
  });

  it('lets gateways scale: no fixed host port or name, health-checked, restarted, drained on stop', () => {
    const gateway = service('gateway');
    expect(gateway.ports).toBeUndefined();
    expect(gateway.container_name).toBeUndefined();
    expect(gateway.expose).toEqual(['3000']);
    expect(gateway.deploy?.replicas).toBe('${GATEWAYS:-3}');
    expect(gateway.healthcheck?.test?.join(' ')).toContain('/readyz');
    expect(gateway.restart).toBe('unless-stopped');
    expect(gateway.depends_on?.redis?.condition).toBe('service_healthy');
    // Time to drain over DRAIN_S before Docker's SIGKILL.
    const drainS = Number(gateway.environment?.DRAIN_S);
    expect(seconds(gateway.stop_grace_period as string)).toBeGreaterThan(drainS);
  });

  it('gives each process only variables its configuration schema knows', () => {
    const gatewayNames = Object.keys(gatewayEnv);
    for (const name of envOf('gateway')) expect(gatewayNames).toContain(name);
    for (const name of envOf('producers')) expect(Object.keys(runnerEnv.shape)).toContain(name);
    // The upload worker reads the engine's and the uploads' variables, as the gateways do.
    for (const name of envOf('upload-worker')) expect(gatewayNames).toContain(name);
    // Redis and retention alike everywhere.
    for (const name of ['gateway', 'producers', 'upload-worker']) {
      const env = service(name).environment ?? {};
      expect(env.REDIS_URL).toBe('redis://redis:6379');
      expect(env.REDIS_PREFIX).toBe('sse');
      expect(env.HISTORY_MAX_LEN).toBe(service('gateway').environment?.HISTORY_MAX_LEN);
    }
  });

  it('runs the same commands as npm run cluster and the npm scripts, from one image', () => {
    for (const name of ['gateway', 'producers', 'upload-worker'] as const) {
      const s = service(name);
      expect(s.command).toEqual([...clusterCommands[name]]);
      expect(s.image).toBe('streamcast:local');
      expect(s.build).toEqual(service('gateway').build);
      expect(s.restart).toBe('unless-stopped');
      // The compiled script's source (dist/ exists after npm run build only).
      expect(
        existsSync(join(ROOT, scriptOf(name).replace('/dist/', '/src/').replace(/\.js$/, '.ts'))),
      ).toBe(true);
    }
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> })
      .scripts;
    expect(clusterCommands.gateway.join(' ')).toBe(scripts.gateway);
    expect(clusterCommands.producers.join(' ')).toBe(`${scripts.producer} all`);
    expect(scripts.cluster).toBe('node -r ts-node/register/transpile-only scripts/cluster.ts');
    expect(scripts.precluster).toBe('npm run --silent build');
  });

  it('shares the upload directory between the gateways and the upload worker', () => {
    const dir = service('gateway').environment?.UPLOAD_DIR as string;
    expect(service('upload-worker').environment?.UPLOAD_DIR).toBe(dir);
    expect(service('gateway').volumes).toContain(`uploads:${dir}`);
    expect(service('upload-worker').volumes).toContain(`uploads:${dir}`);
  });

  it('renders the shared nginx template with re-resolved gateway replicas', () => {
    const nginx = service('nginx');
    // `resolve` in an upstream needs nginx >= 1.27.3.
    expect(nginx.image).toBe('${NGINX_IMAGE:-nginx:1.28-alpine}');
    expect(nginx.volumes).toContain(
      './infra/nginx/nginx.conf.template:/etc/nginx/templates/nginx.conf.template:ro',
    );
    const env = nginx.environment ?? {};
    expect(env.NGINX_ENVSUBST_OUTPUT_DIR).toBe('/etc/nginx');
    expect(env.STREAMCAST_UPSTREAM_SERVERS).toMatch(/^server gateway:3000 resolve\b/);
    expect(env.STREAMCAST_RESOLVER).toMatch(/^resolver 127\.0\.0\.11 valid=\d+s/);
    // Every placeholder of the template is given, and nothing else.
    const template = readFileSync(NGINX_TEMPLATE, 'utf8');
    const placeholders = [
      ...new Set([...template.matchAll(/\$\{(STREAMCAST_[A-Z0-9_]+)\}/g)].map((m) => m[1])),
    ].sort();
    expect(
      Object.keys(env)
        .filter((k) => k.startsWith('STREAMCAST_'))
        .sort(),
    ).toEqual(placeholders);
    expect(env.NGINX_ENVSUBST_FILTER).toBe('^STREAMCAST_');
    // What envsubst in the image produces, rendered here.
    const rendered = renderNginxConfig(composeNginxValues(env));
    expect(rendered).not.toMatch(/\$\{STREAMCAST_[A-Z0-9_]+\}/);
    expect(rendered).toMatch(/^\s*zone streamcast_gateways \d+k;$/m);
    expect(rendered).toContain('server gateway:3000 resolve');
    // Plain HTTP only, as npm run cluster without TLS: no TLS listener, no redirect, no HSTS.
    expect(env.STREAMCAST_TLS).toMatch(/^#/);
    expect(env.STREAMCAST_HTTPS_PORT).toBe('');
    expect(env.STREAMCAST_HSTS_MAX_AGE).toBe('0');
    expect(rendered).not.toMatch(/^\s*listen .*\bssl\b/m);
  });
});

/** The template's values as the nginx image's envsubst fills them from `env`. */
function composeNginxValues(env: Record<string, string>): Parameters<typeof renderNginxConfig>[0] {
  return {
    listen: env.STREAMCAST_LISTEN as string,
    resolver: env.STREAMCAST_RESOLVER as string,
    upstreamServers: [env.STREAMCAST_UPSTREAM_SERVERS as string],
    accessLog: env.STREAMCAST_ACCESS_LOG as string,
    tls: env.STREAMCAST_TLS?.startsWith('#') ? '' : env.STREAMCAST_TLS,
    httpsPort: env.STREAMCAST_HTTPS_PORT,
    hstsMaxAge: env.STREAMCAST_HSTS_MAX_AGE,
  };
}

describe('docker-compose.tls.yml (HTTPS and HTTP/2 at the balancer)', () => {
  const overrideText = read('docker-compose.tls.yml');
  type Mount = { type: string; source: string; target: string; read_only?: boolean };
  const override = parse(overrideText) as {
    services: Record<string, Omit<Service, 'volumes'> & { volumes?: Mount[] }>;
  };
  const tlsNginx = override.services.nginx as Omit<Service, 'volumes'> & { volumes?: Mount[] };
  // What `docker compose -f docker-compose.yml -f docker-compose.tls.yml` makes of the service:
  // lists appended, the environment merged by name, the health check's test replaced.
  const merged = {
    ...service('nginx'),
    ports: [...(service('nginx').ports ?? []), ...(tlsNginx.ports ?? [])],
    volumes: [...(service('nginx').volumes ?? []), ...(tlsNginx.volumes ?? [])],
    environment: { ...service('nginx').environment, ...tlsNginx.environment },
    healthcheck: { ...service('nginx').healthcheck, ...tlsNginx.healthcheck },
  };
  const env = merged.environment as Record<string, string>;

  it('changes only the balancer, and the result is valid Compose', () => {
    expect(Object.keys(override.services)).toEqual(['nginx']);
    expect(Object.keys(override).filter((k) => !k.startsWith('x-'))).toEqual(['services']);
    const schemaPath = composeSchemaPath();
    if (!schemaPath) return;
    const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
    delete schema.$schema;
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    validate({ ...compose, services: { ...compose.services, nginx: merged } });
    expect(ajv.errorsText(validate.errors, { separator: '\n' })).toBe('No errors');
  });

  it("reads npm run cluster's variables, with the same defaults", () => {
    const used = [
      ...new Set(
        [...overrideText.replace(/^\s*#.*$/gm, '').matchAll(/\$\{([A-Z_]+)/g)].map((m) => m[1]),
      ),
    ].sort();
    // TLS itself is switched on by using this file.
    expect(used).toEqual(
      [...CLUSTER_TLS_VARIABLES.filter((v) => v !== 'TLS'), 'PUBLISH_HOST'].sort(),
    );
    const defaults = clusterEnv({ TLS: '1' }).tls;
    expect(overrideText).toContain(`\${TLS_PORT:-${defaults?.port}}`);
    expect(overrideText).toContain(`\${HSTS_MAX_AGE:-${defaults?.hstsMaxAge}}`);
    // The pair npm run make-cert makes (and TLS=1 npm run cluster uses) by default.
    expect(DEFAULT_CERT_DIR).toBe(join(ROOT, '.certs'));
    expect(overrideText).toContain('${TLS_CERT_FILE:-./.certs/cert.pem}');
    expect(overrideText).toContain('${TLS_KEY_FILE:-./.certs/key.pem}');
    // Documented together (docs/cluster.md, "HTTPS and HTTP/2").
    const page = read('docs/cluster.md');
    const section = page.slice(page.indexOf('### HTTPS and HTTP/2'));
    for (const name of CLUSTER_TLS_VARIABLES)
      expect(section).toMatch(new RegExp(`^\\| [^|]*\`${name}\``, 'm'));
    // Keys stay out of git and out of the image.
    expect(read('.gitignore').split('\n')).toContain('/.certs/');
    expect(read('.dockerignore').split('\n')).toContain('.certs');
  });

  it('serves HTTPS with HTTP/2 on 8443 from the mounted pair, and redirects plain HTTP to the published port', () => {
    expect(merged.ports).toEqual([
      '${PUBLISH_HOST:-0.0.0.0}:${PORT:-8080}:8080',
      '${PUBLISH_HOST:-0.0.0.0}:${TLS_PORT:-8443}:8443',
    ]);
    const mounts = tlsNginx.volumes ?? [];
    // Long syntax: a missing file is an error, not a directory Docker makes in its place.
    expect(mounts.map((m) => m.type)).toEqual(['bind', 'bind']);
    expect(mounts.every((m) => m.read_only)).toBe(true);
    const [cert, key] = mounts;
    // nginx:1.28: the `http2` directive, as npm run cluster chooses for that version.
    const version = /nginx:(\d+\.\d+)/.exec(merged.image as string)?.[1] as string;
    expect(http2StyleFor(version)).toBe('directive');
    expect(env.STREAMCAST_TLS).toBe(
      nginxTlsDirectives(
        {
          listen: '8443',
          certFile: cert?.target as string,
          keyFile: key?.target as string,
          http2: 'directive',
        },
        ' ',
      ),
    );
    expect(env.STREAMCAST_HTTPS_PORT).toBe('${TLS_PORT:-8443}');
    expect(env.STREAMCAST_HSTS_MAX_AGE).toBe('${HSTS_MAX_AGE:-0}');
    // Plain HTTP only redirects now: the health check asks over HTTPS.
    expect(merged.healthcheck?.test?.join(' ')).toMatch(/ https:\/\/127\.0\.0\.1:8443\/healthz$/);
    // What envsubst in the image produces (with the variables' defaults).
    const rendered = renderNginxConfig(
      composeNginxValues({ ...env, STREAMCAST_HTTPS_PORT: '8443', STREAMCAST_HSTS_MAX_AGE: '0' }),
    );
    expect(rendered).not.toMatch(/\$\{STREAMCAST_[A-Z0-9_]+\}/);
    expect(rendered).toMatch(/^\s*listen 8080 backlog=4096;$/m);
    expect(rendered).toContain(
      'listen 8443 ssl backlog=4096; http2 on; ssl_certificate "/etc/nginx/tls/cert.pem";',
    );
    expect(rendered).toMatch(/^\s*http "8443";$/m);
  });
});

describe('the nginx template', () => {
  const template = readFileSync(NGINX_TEMPLATE, 'utf8');

  it('is tuned for event streams', () => {
    const directives = template.replace(/#.*$/gm, '');
    expect(directives).toMatch(/^\s*least_conn;$/m);
    expect(directives).toMatch(/^\s*proxy_http_version 1\.1;$/m);
    expect(directives).toMatch(/^\s*proxy_set_header Connection "";$/m);
    expect(directives).toMatch(/^\s*proxy_buffering off;$/m);
    expect(directives).toMatch(/^\s*proxy_cache off;$/m);
    expect(directives).toMatch(/^\s*gzip off;$/m);
    expect(directives).toMatch(
      /^\s*proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;$/m,
    );
    expect(directives).toMatch(/^\s*proxy_next_upstream error timeout;$/m);
    const readTimeout = Number(/^\s*proxy_read_timeout (\d+)s;$/m.exec(directives)?.[1]);
    // Above the heartbeat: a quiet stream is never cut by the balancer.
    expect(readTimeout).toBeGreaterThan(Number(gatewayEnv.HEARTBEAT_S.parse(undefined)));
    expect(directives).toMatch(
      /location ~\* \^\/\+publish\/\*\$ \{\s*default_type application\/json;\s*return 403/,
    );
  });

  it('renders for the local cluster into a configuration Debian nginx accepts (nginx -t)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'streamcast-nginx-'));
    try {
      const conf = join(dir, 'nginx.conf');
      writeFileSync(
        conf,
        renderNginxConfig({
          listen: '127.0.0.1:8080',
          resolver: '',
          upstreamServers: [localUpstreamServer(8081), localUpstreamServer(8082, false)],
          accessLog: 'access.log streamcast',
        }),
      );
      const result = spawnSync(nginxPath(), ['-t', '-e', 'stderr', '-p', `${dir}/`, '-c', conf], {
        encoding: 'utf8',
      });
      expect(result.stderr).toContain('test is successful');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is tuned for HTTPS: TLS 1.2 and 1.3, a 308 to HTTPS from plain HTTP, HSTS only when configured', () => {
    const directives = template.replace(/#.*$/gm, '');
    expect(directives).toMatch(/^\s*ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
    expect(directives).toMatch(
      /if \(\$streamcast_https_port\) \{\s*return 308 https:\/\/\$host:\$streamcast_https_port\$request_uri;\s*\}/,
    );
    expect(directives).toMatch(
      /map \$scheme \$streamcast_https_port \{\s*default "";\s*http "\$\{STREAMCAST_HTTPS_PORT\}";\s*\}/,
    );
    // Over HTTPS only, and on every answer: a location with add_header lines of its own (which
    // drop the server's) repeats it; one such location today, /streamcast-retry.
    expect(directives).toMatch(
      /map "\$scheme \$\{STREAMCAST_HSTS_MAX_AGE\}" \$streamcast_hsts \{\s*default "";\s*"~\^https /,
    );
    const addHeaders = directives.match(/^\s*add_header .*$/gm) ?? [];
    const hsts = addHeaders.filter((l) =>
      l.includes('Strict-Transport-Security $streamcast_hsts always;'),
    );
    expect(hsts.length).toBe(addHeaders.length - hsts.length + 1);
  });

  it('renders with TLS for the local cluster into a configuration Debian nginx accepts (nginx -t)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'streamcast-nginx-tls-'));
    try {
      const made = spawnSync('bash', [MAKE_CERT, join(dir, 'certs')], { encoding: 'utf8' });
      expect(made.status).toBe(0);
      const conf = join(dir, 'nginx.conf');
      const tls = nginxTlsDirectives({
        listen: '127.0.0.1:8443',
        certFile: join(dir, 'certs', 'cert.pem'),
        keyFile: join(dir, 'certs', 'key.pem'),
        http2: nginxHttp2Style(),
      });
      writeFileSync(
        conf,
        renderNginxConfig({
          listen: '127.0.0.1:8080',
          resolver: '',
          upstreamServers: [localUpstreamServer(8081)],
          accessLog: 'access.log streamcast',
          tls,
          httpsPort: 8443,
          hstsMaxAge: 31536000,
        }),
      );
      const result = spawnSync(nginxPath(), ['-t', '-e', 'stderr', '-p', `${dir}/`, '-c', conf], {
        encoding: 'utf8',
      });
      expect(result.stderr).toContain('test is successful');
      // Not even a deprecation warning for the nginx at hand.
      expect(result.stderr).not.toMatch(/\[(warn|emerg)\]/);
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('picks how to turn HTTP/2 on by nginx version', () => {
    expect(http2StyleFor('1.22.1')).toBe('listen');
    expect(http2StyleFor('1.25.0')).toBe('listen');
    expect(http2StyleFor('1.25.1')).toBe('directive');
    expect(http2StyleFor('1.28')).toBe('directive');
    expect(
      nginxTlsDirectives(
        { listen: '127.0.0.1:8443', certFile: '/c.pem', keyFile: '/k.pem', http2: 'listen' },
        ' ',
      ),
    ).toBe(
      'listen 127.0.0.1:8443 ssl http2 backlog=4096; ssl_certificate "/c.pem"; ssl_certificate_key "/k.pem";',
    );
    expect(() =>
      nginxTlsDirectives({ listen: '1', certFile: '/a$b', keyFile: '/k', http2: 'listen' }),
    ).toThrow(/unusable/);
  });

  it('refuses to render a placeholder it does not know', () => {
    expect(() =>
      renderNginxConfig(
        { listen: '1', resolver: '', upstreamServers: [], accessLog: 'off' },
        'listen ${STREAMCAST_NOPE};',
      ),
    ).toThrow(/unknown placeholder \$\{STREAMCAST_NOPE\}/);
  });
});

describe('the HAProxy configuration', () => {
  const cfg = read('infra/haproxy/haproxy.cfg');

  it('has the same settings for event streams as nginx', () => {
    const directives = cfg.replace(/#.*$/gm, '');
    expect(directives).toMatch(/^\s*balance leastconn$/m);
    expect(directives).toMatch(/^\s*no option http-buffer-request$/m);
    expect(directives).toMatch(/^\s*no option http-server-close$/m);
    expect(directives).toMatch(/^\s*option forwardfor$/m);
    expect(directives).toMatch(/^\s*http-check send meth GET uri \/readyz$/m);
    expect(directives).toMatch(/^\s*server-template gateway \S+ gateway:3000$/m);
    expect(directives).toMatch(/resolvers docker/);
    for (const name of ['server', 'client']) {
      const value = Number(new RegExp(`^\\s*timeout ${name} (\\d+)s$`, 'm').exec(directives)?.[1]);
      expect(value).toBeGreaterThan(15);
    }
    expect(directives).toMatch(/^\s*timeout tunnel \d+h$/m);
    expect(directives).toMatch(/PUBLISH_FORBIDDEN/);
  });

  const haproxy = haproxyPath();
  (haproxy ? it : it.skip)('is accepted by haproxy -c', () => {
    const result = spawnSync(
      haproxy as string,
      ['-c', '-f', join(ROOT, 'infra/haproxy/haproxy.cfg')],
      { encoding: 'utf8' },
    );
    expect(`${result.stdout}${result.stderr}`).toContain('Configuration file is valid');
    expect(result.status).toBe(0);
  });
  if (!haproxy) {
    it('(haproxy -c skipped: haproxy is not installed; scripts/test-all.sh installs it)', () => {});
  }
});

describe('the Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));

  it('builds in stages a production install that runs as a non-root user', () => {
    expect(instructions.filter((l) => /^FROM /.test(l)).length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    const user = instructions.filter((l) => /^USER /.test(l)).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)\b/);
    // The build stage compiles; what runs needs no TypeScript tooling (a devDependency, omitted).
    expect(dockerfile).toMatch(/npm run build/);
    const pkg = JSON.parse(read('package.json')) as { devDependencies?: Record<string, string> };
    expect(Object.keys(pkg.devDependencies ?? {})).toEqual(
      expect.arrayContaining(['ts-node', 'typescript']),
    );
    const ignored = read('.dockerignore').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['**/node_modules', 'packages/testing']));
  });

  it('lets signals reach Node, checks /healthz, and runs the gateway by default', () => {
    const entrypoint = instructions.find((l) => /^ENTRYPOINT /.test(l)) as string;
    expect(JSON.parse(entrypoint.replace(/^ENTRYPOINT /, ''))).toEqual(['/usr/bin/tini', '--']);
    const cmd = instructions.find((l) => /^CMD /.test(l)) as string;
    expect(JSON.parse(cmd.replace(/^CMD /, ''))).toEqual([...clusterCommands.gateway]);
    const healthcheck = instructions.find((l) => /^HEALTHCHECK /.test(l)) as string;
    expect(healthcheck).toMatch(/CMD \[/);
    expect(healthcheck).toContain('/healthz');
  });
});
