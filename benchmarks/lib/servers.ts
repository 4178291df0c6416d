import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:http';
import { fork, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import {
  httpTarget,
  nchanTarget,
  redisTarget,
  type ClientPool,
  type ConnSpec,
  type PublishTarget,
} from '@streamcast/loadtest';
import { SOURCE_EXEC_ARGV, freePort, startGatewayProcess } from '@streamcast/testing';
import { startNchanProcess } from './nginx';
import { killQuietly, withDeadline } from '@streamcast/loadtest';
import { ParamError } from './params';
import { onCleanup, pin } from './procs';
import { GATEWAY_NODE_FLAGS } from '../../scripts/cluster';

export const REPO_ROOT = join(__dirname, '..', '..');

/**
 * How the benchmarks run the gateway: `compiled` (default) is what `npm run gateway` and the
 * image run, apps/gateway/dist/main.js (`npm run bench` builds first); `ts-node` is the
 * TypeScript source through ts-node, as the tests run it (the compiler stays in its heap), for
 * before/after comparisons. BENCH_GATEWAY=compiled|ts-node.
 */
export function gatewayRunner(): 'compiled' | 'ts-node' {
  const value = process.env.BENCH_GATEWAY ?? 'compiled';
  if (value !== 'compiled' && value !== 'ts-node') {
    throw new Error(`BENCH_GATEWAY must be compiled or ts-node (got ${JSON.stringify(value)})`);
  }
  return value;
}

/**
 * startGatewayProcess's script and execArgv for gatewayRunner(), with `preload` modules: with
 * the V8 flags the gateway runs with everywhere (the image's command, npm run gateway), unless
 * BENCH_GATEWAY_NODE_OPTIONS gives others (flags on the command line would override them).
 */
export function gatewayLaunch(preload: readonly string[] = []): {
  script: string;
  execArgv: string[];
  node?: string;
} {
  const compiled = gatewayRunner() === 'compiled';
  const hooks = preload.flatMap((file) => ['-r', file]);
  const node = gatewayNode();
  return {
    script: join(REPO_ROOT, 'apps', 'gateway', compiled ? 'dist/main.js' : 'src/main.ts'),
    execArgv: [
      ...(process.env.BENCH_GATEWAY_NODE_OPTIONS ? [] : GATEWAY_NODE_FLAGS),
      ...(compiled ? hooks : [...SOURCE_EXEC_ARGV, ...hooks]),
    ],
    ...(node ? { node } : {}),
  };
}

/**
 * BENCH_GATEWAY_NODE: the node binary the gateway runs on, when it is not the benchmark's own
 * (e.g. Node 24's, the load still on the machine's): the gateway's Node changes, the clients'
 * and the publisher's stay. Undefined when unset; throws when it is not an executable file.
 */
export function gatewayNode(): string | undefined {
  const node = process.env.BENCH_GATEWAY_NODE;
  if (node === undefined || node === '') return undefined;
  try {
    accessSync(node, constants.X_OK);
  } catch {
    throw new ParamError(
      `bench: BENCH_GATEWAY_NODE must be a node binary (got ${JSON.stringify(node)})`,
    );
  }
  return node;
}

/** The gateway's Node version (`vX.Y.Z`): BENCH_GATEWAY_NODE's, else this process's. */
export function gatewayNodeVersion(): string {
  const node = gatewayNode();
  if (!node) return process.version;
  return spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim() || '?';
}

export type ServerKind = 'streamcast' | 'naive' | 'node-http' | 'nchan';

/** A server under test, running as its own process(es) pinned to core 0. */
export interface ServerUnderTest {
  name: ServerKind;
  url: string;
  port: number;
  /** The process that does the work (the gateway; Nchan's worker). */
  pid: number;
  /** Every process of the server (Nchan: master and worker), for CPU and RSS. */
  pids(): number[];
  pinned: boolean;
  /** Subscription path of a topic. */
  path(topic: string): string;
  /**
   * How events reach it: POST /publish (streamcast, node-http), Redis PUBLISH (naive), POST
   * /pub/<topic> (Nchan).
   */
  target(topics: readonly string[], concurrency: number): PublishTarget;
  /** Milliseconds from its start to ready (the gateway: first healthy /healthz). */
  startupMs?: number;
  /** Everything it wrote to stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
  /** SIGKILL (a crash). */
  kill(): Promise<void>;
}

/** The core the servers under test get to themselves; everything else runs on the other one. */
export const SERVER_CORE = 0;
export const CLIENT_CORE = 1;

/** `count` subscriptions to `topics` (round robin), on target 0 of the pool. */
export function specsFor(
  server: ServerUnderTest,
  topics: readonly string[],
  count: number,
  from = 0,
): ConnSpec[] {
  return Array.from({ length: count }, (_, j) => {
    const k = (from + j) % topics.length;
    return { t: 0, k, path: server.path(topics[k] as string) };
  });
}

/** Opens `specs` in batches of 500; throws unless every one is open. */
export async function openAll(pool: ClientPool, specs: ConnSpec[], what: string): Promise<void> {
  let ready = 0;
  for (let i = 0; i < specs.length; i += 500) {
    ({ ready } = await pool.open(specs.slice(i, i + 500)));
  }
  if (ready < specs.length)
    throw new Error(`only ${ready} of ${specs.length} subscribers connected to ${what}`);
}

export async function startServer(
  kind: ServerKind,
  redisUrl: string,
  options: { instrumented?: boolean; env?: Record<string, string>; core?: number | null } = {},
): Promise<ServerUnderTest> {
  if (kind === 'streamcast') return startStreamcast(redisUrl, options);
  if (kind === 'naive') return startNaive(redisUrl, `bench-naive-${randomUUID().slice(0, 8)}`);
  if (kind === 'node-http') return startNodeHttp();
  return startNchan(redisUrl, options.core === null ? undefined : (options.core ?? SERVER_CORE));
}

/**
 * One gateway (`npm run gateway`'s program, compiled or through ts-node: BENCH_GATEWAY) on the
 * benchmark's Redis, with a key prefix of its own, pinned to SERVER_CORE. `instrumented`
 * preloads gateway-hooks.js (SIGUSR2 collects garbage); so does BENCH_GATEWAY_CPU_PROF=<dir>,
 * which also profiles it and leaves a .cpuprofile in <dir> when it stops. `env` adds to its
 * environment (REDIS_PREFIX, RETRY_MS…).
 */
export async function startStreamcast(
  redisUrl: string,
  options: { instrumented?: boolean; env?: Record<string, string>; port?: number } = {},
): Promise<ServerUnderTest> {
  const profileDir = process.env.BENCH_GATEWAY_CPU_PROF;
  const instrumented = options.instrumented === true || profileDir !== undefined;
  const gateway = await startGatewayProcess(
    {
      REDIS_URL: redisUrl,
      REDIS_PREFIX: `bench-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: 'warn',
      ...(profileDir ? { CPU_PROF_DIR: resolve(profileDir) } : {}),
      // V8 or Node flags to try on the gateway (e.g. --max-semi-space-size=8).
      ...(process.env.BENCH_GATEWAY_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS }
        : {}),
      // BENCH_TRACING=1: traces on, exported over OTLP to a receiver that discards them.
      ...(process.env.BENCH_TRACING === '1' ? await tracingEnv() : {}),
      ...options.env,
    },
    {
      ...gatewayLaunch(instrumented ? [join(__dirname, 'gateway-hooks.js')] : []),
      ...(options.port ? { port: options.port } : {}),
    },
  );
  const pid = gateway.child.pid as number;
  const stop = onCleanup(
    `gateway ${pid}`,
    async () => {
      await withDeadline(gateway.stop(), 5000, 'for the gateway to exit').catch(() =>
        gateway.kill(),
      );
    },
    () => killQuietly(pid),
  );
  let pinned: boolean;
  try {
    pinned = pin(pid, SERVER_CORE);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: 'streamcast',
    url: gateway.url,
    port: gateway.port,
    pid,
    pids: () => [pid],
    pinned,
    startupMs: gateway.readyMs,
    path: (topic) => `/events?topic=${encodeURIComponent(topic)}`,
    target: (topics, concurrency) => httpTarget(gateway.url, topics, concurrency),
    output: gateway.output,
    stop,
    kill: async () => {
      await gateway.kill();
      await stop();
    },
  };
}

let traceSink: Promise<string> | undefined;

/**
 * OTEL_* variables that turn a gateway's traces on, sent to an OTLP/HTTP receiver in this
 * process that reads and drops them (started once): the gateway pays for its spans and their
 * export, as it would with a collector.
 */
async function tracingEnv(): Promise<Record<string, string>> {
  traceSink ??= (async () => {
    const port = await freePort();
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    server.unref();
    return `http://127.0.0.1:${port}/v1/traces`;
  })();
  return {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: await traceSink,
    OTEL_SERVICE_NAME: 'streamcast-bench',
  };
}

/** The naive server (naive-server.ts) on the benchmark's Redis, pinned to SERVER_CORE. */
export function startNaive(redisUrl: string, prefix: string): Promise<ServerUnderTest> {
  return startForked(
    'naive',
    join(__dirname, 'naive-server.ts'),
    { execArgv: [...SOURCE_EXEC_ARGV], env: { REDIS_URL: redisUrl, NAIVE_PREFIX: prefix } },
    () => (topics) =>
      redisTarget(
        redisUrl,
        topics.map((t) => `${prefix}:${t}`),
      ),
  );
}

/**
 * node-http (node-http-server.js): plain node:http with its history in memory, on the gateway's
 * Node (BENCH_GATEWAY_NODE), pinned to SERVER_CORE.
 */
function startNodeHttp(): Promise<ServerUnderTest> {
  const node = gatewayNode();
  return startForked(
    'node-http',
    join(__dirname, 'node-http-server.js'),
    { execArgv: [], env: {}, ...(node ? { execPath: node } : {}) },
    (url) => (topics, concurrency) => httpTarget(url, topics, concurrency),
  );
}

/**
 * A server of this directory forked as its own process (it tells its parent, over IPC, once it
 * listens on PORT), pinned to SERVER_CORE; `target` says how events reach it, given its URL.
 */
async function startForked(
  name: 'naive' | 'node-http',
  script: string,
  options: { execArgv: string[]; env: Record<string, string>; execPath?: string },
  target: (url: string) => ServerUnderTest['target'],
): Promise<ServerUnderTest> {
  const port = await freePort();
  const child = fork(script, [], {
    cwd: REPO_ROOT,
    execArgv: options.execArgv,
    ...(options.execPath ? { execPath: options.execPath } : {}),
    env: { PATH: process.env.PATH ?? '', ...options.env, PORT: String(port) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pid = child.pid as number;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = onCleanup(
    `${name} server ${pid}`,
    async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await withDeadline(exited, 5000, `for the ${name} server to exit`).catch(() =>
        killQuietly(pid),
      );
    },
    () => killQuietly(pid),
  );
  try {
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) =>
          reject(new Error(`${name} server exited with ${code} before listening`)),
        );
      }),
      30_000,
      `for the ${name} server to listen`,
    );
    const pinned = pin(pid, SERVER_CORE);
    const url = `http://127.0.0.1:${port}`;
    return {
      name,
      url,
      port,
      pid,
      pids: () => [pid],
      pinned,
      path: (topic) => `/events?topic=${encodeURIComponent(topic)}`,
      target: target(url),
      output: () => '',
      stop,
      kill: async () => {
        killQuietly(pid);
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Nchan (benchmarks/nchan/nginx.conf.template): nginx with one worker, storing in the
 * benchmark's Redis under a namespace of its own, pinned to `core`.
 */
export async function startNchan(
  redisUrl: string,
  core: number | undefined,
  namespace = `bench-nchan-${randomUUID().slice(0, 8)}`,
): Promise<ServerUnderTest> {
  const nginx = await startNchanProcess(redisUrl, namespace, core);
  const worker = nginx.workers()[0] ?? nginx.pid;
  return {
    name: 'nchan',
    url: nginx.url,
    port: nginx.port,
    pid: worker,
    pids: nginx.pids,
    pinned: core !== undefined,
    path: (topic) => `/sub/${encodeURIComponent(topic)}`,
    target: (topics, concurrency) => nchanTarget(nginx.url, topics, concurrency),
    output: nginx.output,
    stop: nginx.stop,
    kill: async () => {
      await nginx.kill();
      await nginx.stop();
    },
  };
}
