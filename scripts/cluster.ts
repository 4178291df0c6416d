import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import {
  canConnect,
  freePort,
  nginxPath,
  portIsFree,
  redisServerPath,
  sleep,
} from '@streamcast/local';

/**
 * `npm run cluster`: the docker-compose topology from local processes, no Docker. A
 * `redis-server` (AOF on), N gateways, nginx in front (the same template as compose, from the
 * Debian package), the demo producers and the upload worker; everything on 127.0.0.1, stopped
 * by Ctrl-C. `startCluster` is what the CLI runs and what test/cluster.test.ts drives.
 */

const REPO_ROOT = join(__dirname, '..');

export { nginxPath };

/** The nginx template shared with docker-compose.yml. */
export const NGINX_TEMPLATE = join(REPO_ROOT, 'infra', 'nginx', 'nginx.conf.template');

/**
 * The command of each process, as docker-compose.yml gives it to the image (a test compares
 * them): the compiled apps (`npm run build`), run from the repository root, with `node`
 * replaced by this Node locally.
 */
/**
 * The gateway's V8 flags, wherever it runs (image, compose, chart, npm scripts, bench; tests
 * compare them). 8 MB semi-spaces: a 16 MB young generation. Node 24 grows its young generation
 * to 128 MB under load (Node 20 to 32 MB), which cost a gateway ~6 KB more per idle stream and
 * 55-65 MB more RSS under fan-out, for no throughput; 16 MB against 32 takes another 10-20 MB
 * off, at the same latency and CPU on Node 24 and for 3-6% more CPU per delivery on Node 20 and
 * 26 at high rates over many topics (docs/benchmarks.md, "A 16 MB young generation").
 */
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=8'] as const;

export const clusterCommands = {
  gateway: ['node', ...GATEWAY_NODE_FLAGS, 'apps/gateway/dist/main.js'],
  producers: ['node', 'apps/producers/dist/main.js', 'all'],
  'upload-worker': ['node', 'apps/upload-worker/dist/main.js'],
} as const;

/** Where the processes' code comes from: the build (dist/), or the TypeScript source. */
export type RunFrom = 'dist' | 'source';

/**
 * Node's arguments for a process of clusterCommands. From source: ts-node, and the
 * `streamcast-source` export condition so that `@streamcast/*` imports load src/ too.
 */
export function nodeArgs(name: ClusterProcessName, runFrom: RunFrom): string[] {
  const args: readonly string[] = clusterCommands[name].slice(1);
  const at = args.indexOf(scriptOf(name));
  const [flags, script, rest] = [args.slice(0, at), args[at] as string, args.slice(at + 1)];
  if (runFrom === 'dist') return [...flags, script, ...rest];
  const source = script.replace('/dist/', '/src/').replace(/\.js$/, '.ts');
  return [
    ...flags,
    '--conditions=streamcast-source',
    '-r',
    'ts-node/register/transpile-only',
    source,
    ...rest,
  ];
}

export type ClusterProcessName = keyof typeof clusterCommands;

/** The compiled script of a process of clusterCommands (after Node's flags). */
export function scriptOf(name: ClusterProcessName): string {
  return clusterCommands[name].find((arg) => arg.endsWith('.js')) as string;
}

/** True once the upload worker's program exists (it is being built beside this). */
export function hasUploadWorker(): boolean {
  return existsSync(join(REPO_ROOT, 'apps', 'upload-worker', 'src', 'main.ts'));
}

export interface NginxValues {
  /** What to listen on: `8080`, `127.0.0.1:8080`. */
  listen: string;
  /** A `resolver …;` line, or '' for a static upstream. */
  resolver: string;
  /** The `server …;` lines of the gateways. */
  upstreamServers: string[];
  /** `<path> streamcast`, or `off`. */
  accessLog: string;
  /** HTTPS and HTTP/2: `nginxTlsDirectives(…)`. Absent or '': plain HTTP only. */
  tls?: string;
  /** With TLS, the HTTPS port users reach: plain HTTP redirects there. */
  httpsPort?: number | string;
  /** With TLS, the Strict-Transport-Security max-age in seconds. @default 0 (no header) */
  hstsMaxAge?: number | string;
}

/**
 * Fills the template's `${STREAMCAST_*}` placeholders (what envsubst does in the nginx image);
 * fails on one it does not know, so the template and its two users cannot drift apart.
 */
export function renderNginxConfig(
  values: NginxValues,
  template = readFileSync(NGINX_TEMPLATE, 'utf8'),
): string {
  const fill: Record<string, string> = {
    STREAMCAST_LISTEN: values.listen,
    STREAMCAST_RESOLVER: values.resolver || '# no resolver: a static list of gateways',
    STREAMCAST_UPSTREAM_SERVERS: values.upstreamServers.join('\n        '),
    STREAMCAST_ACCESS_LOG: values.accessLog,
    STREAMCAST_TLS: values.tls || '# no TLS: plain HTTP only',
    STREAMCAST_HTTPS_PORT: String(values.httpsPort ?? ''),
    STREAMCAST_HSTS_MAX_AGE: String(values.hstsMaxAge ?? 0),
  };
  if (!values.tls && fill.STREAMCAST_HTTPS_PORT)
    throw new Error('nginx: an HTTPS port to redirect to, but no TLS');
  return template.replace(/\$\{(STREAMCAST_[A-Z0-9_]+)\}/g, (_, name: string) => {
    const value = fill[name];
    if (value === undefined) throw new Error(`${NGINX_TEMPLATE}: unknown placeholder \${${name}}`);
    return value;
  });
}

export interface NginxTls {
  /** What the HTTPS listener listens on: `8443`, `127.0.0.1:8443`. */
  listen: string;
  /** PEM certificate (the chain after it) and its key, as nginx sees the paths. */
  certFile: string;
  keyFile: string;
  /**
   * How to turn HTTP/2 on: a `listen … http2` parameter (nginx before 1.25.1, e.g. Debian's
   * 1.22), or the `http2 on;` directive (1.25.1 on, where the parameter is deprecated).
   */
  http2: 'listen' | 'directive';
}

/** The STREAMCAST_TLS directives: the HTTPS listener with HTTP/2, the certificate and key. */
export function nginxTlsDirectives(tls: NginxTls, separator = '\n        '): string {
  const path = (file: string) => {
    if (/["$\\\n]/.test(file))
      throw new Error(`nginx: unusable certificate path ${JSON.stringify(file)}`);
    return `"${file}"`;
  };
  return [
    `listen ${tls.listen} ssl${tls.http2 === 'listen' ? ' http2' : ''} backlog=4096;`,
    ...(tls.http2 === 'directive' ? ['http2 on;'] : []),
    `ssl_certificate ${path(tls.certFile)};`,
    `ssl_certificate_key ${path(tls.keyFile)};`,
  ].join(separator);
}

/** The upstream line of one local gateway; `down` keeps it out of rotation. */
export function localUpstreamServer(port: number, inRotation = true): string {
  return `server 127.0.0.1:${port} max_fails=1 fail_timeout=5s${inRotation ? '' : ' down'};`;
}

/** How nginx `version` (`1.22.1`, `1.28`) turns HTTP/2 on: `http2 on;` from 1.25.1, a `listen` parameter before. */
export function http2StyleFor(version: string): NginxTls['http2'] {
  const [major = 0, minor = 0, patch = 0] = version.split('.').map(Number);
  return major * 1e6 + minor * 1e3 + patch >= 1_025_001 ? 'directive' : 'listen';
}

/** How the nginx at `bin` turns HTTP/2 on (see http2StyleFor). */
export function nginxHttp2Style(bin = nginxPath()): NginxTls['http2'] {
  const out = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  const version = /nginx\/(\d+\.\d+\.\d+)/.exec(`${out.stderr}${out.stdout}`)?.[1];
  if (!version) throw new Error(`cluster: cannot tell the version of ${bin}: ${out.stderr}`);
  return http2StyleFor(version);
}

/** Where `npm run cluster` keeps its self-signed pair (git-ignored). */
export const DEFAULT_CERT_DIR = join(REPO_ROOT, '.certs');
/** `npm run make-cert`: a self-signed certificate for localhost and 127.0.0.1, with openssl. */
export const MAKE_CERT = join(REPO_ROOT, 'scripts', 'make-cert.sh');

/** `dir`/cert.pem and `dir`/key.pem, made by scripts/make-cert.sh when either is missing. */
export function ensureSelfSignedCert(dir = DEFAULT_CERT_DIR): {
  certFile: string;
  keyFile: string;
} {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const made = spawnSync('bash', [MAKE_CERT, dir], { encoding: 'utf8' });
    if (made.status !== 0)
      throw new Error(`cluster: ${MAKE_CERT} ${dir} failed:\n${made.stderr}${made.stdout}`);
  }
  return { certFile, keyFile };
}

/**
 * The arguments of every redis-server the cluster runs: on 127.0.0.1:`port`, data in `dir`, AOF
 * fsynced every second (as in compose: a restarted Redis keeps history, so cursors stay valid).
 */
function redisServerArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--save',
    '',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
  ];
}

async function waitUntil(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs: number,
  why?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const detail = why?.();
      throw new Error(
        `cluster: timed out after ${timeoutMs} ms waiting for ${what}${detail ? `:\n${detail}` : ''}`,
      );
    }
    await sleep(50);
  }
}

/** GET https://127.0.0.1:`port``path` answers 200 (any certificate: it is ours). */
function answersHttps(port: number, path = '/healthz'): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.once('error', () => resolve(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

async function answers(url: string, status = 200): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status === status;
  } catch {
    return false;
  }
}

/** One child process: output kept (the last lines) and passed on, exit awaited. */
class Child {
  private readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;
  /** Set once this code sent it a signal: its exit is expected. */
  stopping = false;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    onOutput: ((name: string, line: string) => void) | undefined,
    onExit: ((name: string, code: number | null) => void) | undefined,
  ) {
    const take = (stream: NodeJS.ReadableStream | null) => {
      let rest = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) {
          this.lines.push(line);
          if (this.lines.length > 300) this.lines.shift();
          onOutput?.(name, line);
        }
      });
    };
    take(child.stdout);
    take(child.stderr);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        this.exitCode = code;
        if (!this.stopping) onExit?.(name, code);
        resolve(code);
      });
      child.once('error', (err) => {
        this.lines.push(String(err));
        this.exitCode = null;
        resolve(null);
      });
    });
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  output(): string {
    return this.lines.join('\n');
  }

  signal(signal: NodeJS.Signals): void {
    if (signal !== 'SIGHUP') this.stopping = true;
    if (this.running) this.child.kill(signal);
  }

  /** `signal`, then SIGKILL if it has not exited within `graceMs`. */
  async stop(signal: NodeJS.Signals, graceMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** The balancer's HTTPS settings: `npm run cluster` and docker-compose.tls.yml read the same. */
export const CLUSTER_TLS_VARIABLES = [
  'TLS',
  'TLS_CERT_FILE',
  'TLS_KEY_FILE',
  'TLS_PORT',
  'HSTS_MAX_AGE',
] as const;

export interface ClusterTlsOptions {
  /**
   * The certificate (PEM, chain after it) and its key nginx serves; both or neither. Neither:
   * `certDir`/cert.pem and key.pem, made self-signed by scripts/make-cert.sh when missing.
   */
  certFile?: string;
  keyFile?: string;
  /** @default <repository>/.certs */
  certDir?: string;
  /** The HTTPS port on 127.0.0.1; 0 picks a free one. @default 8443, or free when `port` is 0 */
  port?: number;
  /** Strict-Transport-Security max-age in seconds; 0: no header. @default 0 */
  hstsMaxAge?: number;
}

export interface ClusterOptions {
  /** Number of gateways. @default 3 */
  gateways?: number;
  /** The balancer's port on 127.0.0.1; 0 picks a free one. @default 8080 */
  port?: number;
  /** The gateways' ports. @default port+1 … port+N, or free ports when port is 0 */
  gatewayPorts?: number[];
  /** Use this Redis instead of starting a redis-server. */
  redisUrl?: string;
  /**
   * Start a Redis Cluster instead of one redis-server: 6 nodes (3 masters, 3 replicas,
   * `redis-cli --cluster create`), and the processes get REDIS_CLUSTER_NODES. @default false
   */
  redisCluster?: boolean;
  /** The environment every process starts from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Added to the gateways' environment (RETRY_MS, DRAIN_S, …). */
  gatewayEnv?: Record<string, string>;
  /** Start `npm run producer -- all`. @default true */
  producers?: boolean;
  /** Start the upload worker. @default whether apps/upload-worker/src/main.ts exists */
  uploadWorker?: boolean;
  /** Every line any process prints. @default kept only (see Cluster.output) */
  onOutput?: (name: string, line: string) => void;
  /**
   * Run the compiled apps (`npm run build` first; `npm run cluster` does) or their source.
   * @default 'source' under jest (JEST_WORKER_ID is set: tests never run a stale build), else 'dist'
   */
  runFrom?: RunFrom;
  /** A process exited that nobody asked to stop (a crash, a kill from outside). */
  onExit?: (name: string, code: number | null) => void;
  /** How long a process may take to become ready. @default 60000 */
  readyTimeoutMs?: number;
  /** HTTPS and HTTP/2 at the balancer; plain HTTP then redirects to it. @default none */
  tls?: ClusterTlsOptions;
}

export interface ClusterGateway {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** Running (it may still be starting or draining). */
  readonly running: boolean;
  /** Listed without `down` in nginx's upstream. */
  readonly inRotation: boolean;
  readonly pid: number | undefined;
}

export interface Cluster {
  /** The balancer: what users connect to (`https://…` with TLS). */
  readonly url: string;
  /** Its plain-HTTP listener: `url` without TLS; with TLS it only redirects to `url`. */
  readonly httpUrl: string;
  readonly port: number;
  /** With TLS: the HTTPS port, and the certificate and key nginx serves. */
  readonly tls:
    { readonly port: number; readonly certFile: string; readonly keyFile: string } | undefined;
  /** Redis (with a Redis Cluster: one of its nodes). */
  readonly redisUrl: string;
  /** With `redisCluster`: the REDIS_CLUSTER_NODES every process got. */
  readonly redisClusterNodes: string | undefined;
  /** Temporary directory: nginx's prefix and rendered config, Redis's data. */
  readonly dir: string;
  readonly gateways: readonly ClusterGateway[];
  /** The last lines of one process's output (`gateway-1`, `nginx`, `redis`, …), or of all. */
  output(name?: string): string;
  /** SIGKILL: no drain, its clients see their connections die. */
  killGateway(index: number): Promise<void>;
  /** SIGTERM (the gateway drains over DRAIN_S) and wait for its exit code; nginx is not told. */
  stopGateway(index: number): Promise<number | null>;
  /** Starts the gateway again on its port, waits until ready, and puts it back into rotation. */
  startGateway(index: number): Promise<void>;
  /** Lists the gateway as `down` (or not) in nginx's upstream and reloads nginx. */
  setInRotation(index: number, inRotation: boolean): Promise<void>;
  /**
   * What an operator does to stop one gateway behind nginx: out of rotation first (so
   * reconnecting clients are not sent back to it), then SIGTERM, then wait for its exit.
   */
  drainGateway(index: number): Promise<number | null>;
  /** drainGateway, then startGateway on the same port. */
  restartGateway(index: number): Promise<void>;
  /** Stops everything it started, balancer first, Redis last; removes the directory. */
  stop(): Promise<void>;
}

/** Starts the whole topology; resolves once the balancer serves. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.gateways ?? 3;
  const baseEnv = options.env ?? process.env;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const onOutput = options.onOutput;
  const port = options.port === 0 ? await freePort() : (options.port ?? 8080);
  let gatewayPorts = options.gatewayPorts;
  if (!gatewayPorts && options.port === 0) {
    const picked = new Set<number>([port]);
    while (picked.size < count + 1) picked.add(await freePort());
    gatewayPorts = [...picked].slice(1);
  }
  gatewayPorts ??= [...Array(count).keys()].map((i) => port + 1 + i);
  if (gatewayPorts.length !== count)
    throw new Error(`cluster: ${count} gateways but ${gatewayPorts.length} ports`);
  let tls: { port: number; certFile: string; keyFile: string; hstsMaxAge: number } | undefined;
  if (options.tls) {
    // Relative paths from the working directory, the repository's under npm run (as compose's).
    const [certFile, keyFile] = [options.tls.certFile, options.tls.keyFile].map(
      (f) => f && resolvePath(f),
    );
    const { certDir } = options.tls;
    if (!certFile !== !keyFile)
      throw new Error(
        'cluster: TLS needs both a certificate and its key (TLS_CERT_FILE, TLS_KEY_FILE)',
      );
    for (const file of [certFile, keyFile]) {
      if (file && !existsSync(file))
        throw new Error(
          `cluster: ${file} does not exist (npm run make-cert makes a self-signed pair)`,
        );
    }
    let tlsPort = options.tls.port ?? (options.port === 0 ? 0 : 8443);
    while (tlsPort === 0 || tlsPort === port || gatewayPorts.includes(tlsPort)) {
      if (options.tls.port)
        throw new Error(`cluster: TLS_PORT ${tlsPort} is also the balancer's or a gateway's port`);
      tlsPort = await freePort();
    }
    tls = {
      port: tlsPort,
      ...(certFile && keyFile ? { certFile, keyFile } : ensureSelfSignedCert(certDir)),
      hstsMaxAge: options.tls.hstsMaxAge ?? 0,
    };
  }
  for (const p of [port, ...gatewayPorts, ...(tls ? [tls.port] : [])]) {
    if (!(await portIsFree(p))) {
      throw new Error(
        `cluster: port ${p} on 127.0.0.1 is in use (set PORT${tls ? ' or TLS_PORT' : ''} to move the cluster)`,
      );
    }
  }
  const nginxBin = nginxPath();
  const http2 = tls ? nginxHttp2Style(nginxBin) : 'listen';

  const dir = mkdtempSync(join(tmpdir(), 'streamcast-cluster-'));
  // nginx's workers run as another user when started as root: they must reach the prefix.
  chmodSync(dir, 0o755);
  const children: Child[] = [];
  const spawnChild = (
    name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    detached = false,
  ) => {
    const child = new Child(
      name,
      spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached }),
      onOutput,
      (exited, code) => {
        if (!stopped) options.onExit?.(exited, code);
      },
    );
    children.push(child);
    return child;
  };
  const runFrom: RunFrom = options.runFrom ?? (process.env.JEST_WORKER_ID ? 'source' : 'dist');
  const node = (name: ClusterProcessName, env: NodeJS.ProcessEnv) =>
    spawnChild(name, process.execPath, nodeArgs(name, runFrom), env);

  let redis: Child | undefined;
  let nginx: Child | undefined;
  let stopped = false;
  const gateways: Array<{
    name: string;
    port: number;
    url: string;
    child?: Child;
    inRotation: boolean;
  }> = gatewayPorts.map((p, i) => ({
    name: `gateway-${i + 1}`,
    port: p,
    url: `http://127.0.0.1:${p}`,
    inRotation: true,
  }));

  // Whatever ends this process (a crash, process.exit), nothing it started outlives it.
  const killAll = () => {
    for (const c of children) c.signal('SIGKILL');
  };
  process.on('exit', killAll);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killAll);
    // Balancer first (SIGTERM: nginx's fast shutdown; a graceful one waits for every stream),
    // then what publishes, then the gateways (SIGINT: no drain, everything is going), Redis last.
    await nginx?.stop('SIGTERM');
    const publishers = children.filter((c) => c.name === 'producers' || c.name === 'upload-worker');
    await Promise.all(publishers.map((c) => c.stop('SIGTERM')));
    await Promise.all(gateways.flatMap((g) => (g.child ? [g.child.stop('SIGINT')] : [])));
    await redis?.stop('SIGTERM');
    await Promise.all(
      children.filter((c) => c.name.startsWith('redis-')).map((c) => c.stop('SIGTERM')),
    );
    await Promise.all(children.map((c) => c.stop('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    let redisUrl = options.redisUrl;
    let redisClusterNodes: string | undefined;
    if (!redisUrl && options.redisCluster) {
      redisClusterNodes = await startRedisCluster(dir, spawnChild, baseEnv, readyTimeoutMs);
      redisUrl = `redis://${redisClusterNodes.split(',')[0]}`;
    } else if (!redisUrl) {
      const redisPort = await freePort();
      const data = join(dir, 'redis');
      mkdirSync(data);
      // AOF on, as in compose: a restarted Redis keeps history, so cursors stay valid.
      redis = spawnChild(
        'redis',
        redisServerPath(),
        redisServerArgs(redisPort, data),
        { PATH: baseEnv.PATH ?? '' },
        // Its own process group: Ctrl-C at a terminal reaches every other process at once, and
        // Redis must outlive the gateways' shutdown (stop() ends it last).
        true,
      );
      const r = redis;
      await waitUntil(
        () => canConnect(redisPort),
        `redis-server on port ${redisPort}`,
        readyTimeoutMs,
        () => r.output(),
      );
      redisUrl = `redis://127.0.0.1:${redisPort}`;
    }
    const url = redisUrl;

    // PORT and GATEWAYS are the cluster's own: each process gets its own PORT below.
    const { PORT: _port, GATEWAYS: _gateways, ...env } = baseEnv;
    // The TLS variables are the balancer's.
    for (const name of CLUSTER_TLS_VARIABLES) delete env[name];
    const shared: NodeJS.ProcessEnv = {
      ...env,
      ...(redisClusterNodes ? { REDIS_CLUSTER_NODES: redisClusterNodes } : { REDIS_URL: url }),
      // Gateways receive uploads, the worker processes them: one directory for both.
      UPLOAD_DIR: env.UPLOAD_DIR || join(dir, 'uploads'),
    };

    const startGatewayChild = async (g: (typeof gateways)[number]) => {
      if (!(await portIsFree(g.port)))
        throw new Error(`cluster: port ${g.port} of ${g.name} is in use`);
      const child = spawnChild(g.name, process.execPath, nodeArgs('gateway', runFrom), {
        // nginx connects from loopback: trust its X-Forwarded-For, so per-IP limits and the
        // loopback-only publish rule see the real client (API.md, "Publishing").
        TRUST_PROXY: 'loopback',
        ...shared,
        ...options.gatewayEnv,
        HOST: '127.0.0.1',
        PORT: String(g.port),
      });
      g.child = child;
      await waitUntil(
        async () => {
          if (!child.running)
            throw new Error(`cluster: ${g.name} exited with ${child.exitCode}:\n${child.output()}`);
          return answers(`${g.url}/readyz`);
        },
        `${g.name} ready on port ${g.port}`,
        readyTimeoutMs,
        () => child.output(),
      );
    };
    await Promise.all(gateways.map(startGatewayChild));

    const confPath = join(dir, 'nginx.conf');
    const writeConf = () =>
      writeFileSync(
        confPath,
        renderNginxConfig({
          listen: `127.0.0.1:${port}`,
          resolver: '',
          upstreamServers: gateways.map((g) => localUpstreamServer(g.port, g.inRotation)),
          // A file: nginx cannot open /dev/stdout when it is a socket, as Node's pipes are.
          accessLog: 'access.log streamcast',
          ...(tls && {
            tls: nginxTlsDirectives({
              listen: `127.0.0.1:${tls.port}`,
              certFile: tls.certFile,
              keyFile: tls.keyFile,
              http2,
            }),
            httpsPort: tls.port,
            hstsMaxAge: tls.hstsMaxAge,
          }),
        }),
      );
    writeConf();
    const nginxArgs = ['-e', 'stderr', '-p', `${dir}/`, '-c', confPath];
    const check = spawnSync(nginxBin, ['-t', '-q', ...nginxArgs], { encoding: 'utf8' });
    if (check.status !== 0)
      throw new Error(`cluster: nginx -t refused ${confPath}:\n${check.stderr}`);
    nginx = spawnChild('nginx', nginxBin, [...nginxArgs, '-g', 'daemon off;'], {
      PATH: baseEnv.PATH ?? '',
    });
    const n = nginx;
    await waitUntil(
      async () => {
        if (!n.running) throw new Error(`cluster: nginx exited with ${n.exitCode}:\n${n.output()}`);
        return tls ? answersHttps(tls.port) : answers(`http://127.0.0.1:${port}/healthz`);
      },
      `nginx on port ${tls ? tls.port : port}`,
      readyTimeoutMs,
      () => n.output(),
    );

    if (options.producers ?? true) node('producers', shared);
    if (options.uploadWorker ?? hasUploadWorker()) node('upload-worker', shared);

    const reloadNginx = async () => {
      writeConf();
      const master = n.pid;
      if (master === undefined || !n.running) throw new Error('cluster: nginx is not running');
      if (!existsSync('/proc')) {
        // No process table to watch (not Linux): give the master a moment.
        n.signal('SIGHUP');
        await sleep(1000);
        return;
      }
      const before = new Set(
        nginxWorkers(master)
          .filter((w) => !w.exiting)
          .map((w) => w.pid),
      );
      n.signal('SIGHUP');
      // Reloaded once every worker serving new connections is a new one. The old ones keep
      // their open streams until those end (no worker_shutdown_timeout: they are not cut).
      await waitUntil(
        () => {
          const serving = nginxWorkers(master).filter((w) => !w.exiting);
          return serving.length > 0 && serving.every((w) => !before.has(w.pid));
        },
        'nginx to reload',
        readyTimeoutMs,
        () => n.output(),
      );
    };

    const gatewayAt = (index: number) => {
      const g = gateways[index];
      if (!g) throw new Error(`cluster: no gateway #${index}`);
      return g;
    };

    const cluster: Cluster = {
      url: tls ? `https://127.0.0.1:${tls.port}` : `http://127.0.0.1:${port}`,
      httpUrl: `http://127.0.0.1:${port}`,
      port,
      tls: tls && { port: tls.port, certFile: tls.certFile, keyFile: tls.keyFile },
      redisUrl: url,
      redisClusterNodes,
      dir,
      gateways: gateways.map((g) => ({
        name: g.name,
        port: g.port,
        url: g.url,
        get running() {
          return g.child?.running ?? false;
        },
        get inRotation() {
          return g.inRotation;
        },
        get pid() {
          return g.child?.pid;
        },
      })),
      output: (name) =>
        children
          .filter((c) => name === undefined || c.name === name)
          .map((c) => `--- ${c.name} (pid ${c.pid})\n${c.output()}`)
          .join('\n'),
      killGateway: async (index) => {
        await gatewayAt(index).child?.stop('SIGKILL');
      },
      stopGateway: async (index) =>
        (await gatewayAt(index).child?.stop('SIGTERM', 120_000)) ?? null,
      startGateway: async (index) => {
        const g = gatewayAt(index);
        if (g.child?.running) throw new Error(`cluster: ${g.name} is running`);
        await startGatewayChild(g);
        // Also forgets nginx's record of its failures (a killed gateway is skipped for fail_timeout).
        g.inRotation = true;
        await reloadNginx();
      },
      setInRotation: async (index, inRotation) => {
        gatewayAt(index).inRotation = inRotation;
        await reloadNginx();
      },
      drainGateway: async (index) => {
        await cluster.setInRotation(index, false);
        return cluster.stopGateway(index);
      },
      restartGateway: async (index) => {
        const code = await cluster.drainGateway(index);
        if (code !== 0)
          throw new Error(`cluster: ${gatewayAt(index).name} exited with ${code} on SIGTERM`);
        await cluster.startGateway(index);
      },
      stop,
    };
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Six `redis-server --cluster-enabled yes` (AOF on, each its own process group like the single
 * Redis), joined by `redis-cli --cluster create … --cluster-replicas 1`; resolves to their
 * `host:port` list once every node says cluster_state:ok.
 */
async function startRedisCluster(
  dir: string,
  spawnChild: (
    name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    detached?: boolean,
  ) => Child,
  baseEnv: NodeJS.ProcessEnv,
  readyTimeoutMs: number,
): Promise<string> {
  const ports: number[] = [];
  for (let i = 0; i < 6; i++) {
    const port = await freePort();
    const data = join(dir, `redis-${i + 1}`);
    mkdirSync(data);
    const child = spawnChild(
      `redis-${i + 1}`,
      redisServerPath(),
      [
        ...redisServerArgs(port, data),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '5000',
      ],
      { PATH: baseEnv.PATH ?? '' },
      true,
    );
    await waitUntil(
      () => canConnect(port),
      `redis-server on port ${port}`,
      readyTimeoutMs,
      () => child.output(),
    );
    ports.push(port);
  }
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  const created = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes, '--cluster-replicas', '1', '--cluster-yes'],
    {
      encoding: 'utf8',
    },
  );
  if (created.status !== 0)
    throw new Error(
      `cluster: redis-cli --cluster create failed:\n${created.stdout}${created.stderr}`,
    );
  await waitUntil(
    () =>
      ports.every((p) =>
        /cluster_state:ok/.test(
          spawnSync('redis-cli', ['-p', String(p), 'cluster', 'info'], { encoding: 'utf8' }).stdout,
        ),
      ),
    'the Redis Cluster (cluster_state:ok on every node)',
    readyTimeoutMs,
  );
  return nodes.join(',');
}

/** nginx worker processes of `master`, from /proc; `exiting` once an old one is shutting down. */
function nginxWorkers(master: number): Array<{ pid: number; exiting: boolean }> {
  const workers: Array<{ pid: number; exiting: boolean }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== master) continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (!title.startsWith('nginx: worker process')) continue;
      workers.push({ pid: Number(entry), exiting: title.includes('shutting down') });
    } catch {
      // gone meanwhile
    }
  }
  return workers;
}

export interface ClusterSettings {
  port: number;
  gateways: number;
  /** REDIS_CLUSTER=1: a 6-node Redis Cluster instead of one redis-server. */
  redisCluster?: boolean;
  tls?: ClusterTlsOptions;
}

/**
 * PORT, GATEWAYS and the balancer's HTTPS (TLS, TLS_CERT_FILE, TLS_KEY_FILE, TLS_PORT,
 * HSTS_MAX_AGE), checked as every process checks its environment (API.md, "Processes").
 */
export function clusterEnv(env: NodeJS.ProcessEnv = process.env): ClusterSettings {
  const int = (name: string, min: number, max: number, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || value < min || value > max) {
      throw new Error(
        `config: ${name} must be an integer ${min}-${max} (got ${JSON.stringify(raw)})`,
      );
    }
    return value;
  };
  const settings: ClusterSettings = {
    port: int('PORT', 1, 65535 - 64, 8080),
    gateways: int('GATEWAYS', 1, 64, 3),
  };
  const redisCluster = env.REDIS_CLUSTER ?? '';
  if (!['', '0', '1'].includes(redisCluster)) {
    throw new Error(`config: REDIS_CLUSTER must be 0 or 1 (got ${JSON.stringify(redisCluster)})`);
  }
  if (redisCluster === '1') settings.redisCluster = true;
  const certFile = env.TLS_CERT_FILE || undefined;
  const keyFile = env.TLS_KEY_FILE || undefined;
  if (!certFile !== !keyFile) {
    throw new Error(
      `config: TLS_CERT_FILE and TLS_KEY_FILE go together (got only ${certFile ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'})`,
    );
  }
  const flag = env.TLS ?? '';
  if (!['', '0', '1'].includes(flag))
    throw new Error(`config: TLS must be 0 or 1 (got ${JSON.stringify(flag)})`);
  const tlsPort = int('TLS_PORT', 1, 65535, 8443);
  const hstsMaxAge = int('HSTS_MAX_AGE', 0, 2 ** 31 - 1, 0);
  // On with TLS=1, or when a certificate is given (unless TLS=0).
  if (flag === '1' || (flag === '' && certFile))
    settings.tls = { certFile, keyFile, port: tlsPort, hstsMaxAge };
  return settings;
}

async function main(): Promise<void> {
  let settings: ClusterSettings;
  try {
    settings = clusterEnv();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
  const width = 'upload-worker'.length;
  const print = (name: string, line: string) =>
    process.stdout.write(`${name.padEnd(width)} | ${line}\n`);
  let cluster: Cluster | undefined;
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('cluster: stopping\n');
    (cluster?.stop() ?? Promise.resolve()).then(
      () => process.exit(code),
      (err: unknown) => {
        process.stderr.write(`cluster: ${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  cluster = await startCluster({
    ...settings,
    onOutput: print,
    onExit: (name, code) => {
      print(name, `exited with ${code} (not restarted)`);
      // Without the balancer or Redis there is no cluster; a gateway may die (that is failover).
      if (name === 'nginx' || name === 'redis') stop(1);
      if (name.startsWith('redis-'))
        print(
          name,
          'a Redis Cluster node is down: its replica takes over after cluster-node-timeout',
        );
    },
  });
  const worker = hasUploadWorker()
    ? ', upload worker'
    : ' (no upload worker yet: apps/upload-worker/src/main.ts is missing)';
  const tls = cluster.tls;
  process.stdout.write(
    [
      '',
      `streamcast cluster: ${cluster.url}   (Ctrl-C stops everything)`,
      `  nginx      ${cluster.url} -> ${cluster.gateways.map((g) => g.port).join(', ')}` +
        ` (least_conn; config ${join(cluster.dir, 'nginx.conf')})`,
      ...(tls
        ? [
            `  https      HTTP/2, certificate ${tls.certFile}; ${cluster.httpUrl} redirects to ${cluster.url}`,
          ]
        : []),
      `  gateways   ${cluster.gateways.map((g) => `${g.name} ${g.url}`).join(', ')}`,
      cluster.redisClusterNodes
        ? `  redis      cluster ${cluster.redisClusterNodes} (3 masters, 3 replicas)`
        : `  redis      ${cluster.redisUrl}`,
      `  producers  npm run producer -- all${worker}`,
      // A self-signed certificate is its own authority.
      `  try        curl -N ${tls && !settings.tls?.certFile ? `--cacert ${tls.certFile} ` : ''}${cluster.url}/api/stocks/AAPL`,
      '',
    ].join('\n'),
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    const message = (err as Error).message ?? String(err);
    process.stderr.write(`${message.startsWith('cluster:') ? message : `cluster: ${message}`}\n`);
    process.exit(1);
  });
}
