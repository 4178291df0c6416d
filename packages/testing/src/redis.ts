import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';
import { sleep, waitFor } from './wait';

/** A Redis for tests. `process` is set when this code started it and can kill or restart it. */
export interface TestRedis {
  url: string;
  port: number;
  /** How it was provided: REDIS_URL, a testcontainers container, or a local redis-server. */
  source: 'env' | 'docker' | 'process';
  stop(): Promise<void>;
}

export interface RedisProcessOptions {
  /** Turn on AOF persistence (appendfsync always) in a private directory. @default false */
  appendonly?: boolean;
  /** Fixed port (e.g. to restart on the same one). @default a free port */
  port?: number;
  /** Data directory, kept across restarts. @default a new temporary one */
  dir?: string;
  /** Extra redis-server arguments. */
  args?: string[];
}

/**
 * A redis-server process on 127.0.0.1 that tests control: kill -9, restart on the same port
 * with or without its data.
 */
export class RedisProcess implements TestRedis {
  readonly source = 'process' as const;
  private child: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: RedisProcessOptions,
  ) {}

  static async start(options: RedisProcessOptions = {}): Promise<RedisProcess> {
    const port = options.port ?? (await freePort());
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'streamcast-redis-'));
    const redis = new RedisProcess(port, dir, options);
    await redis.launch();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts redis-server again on the same port and directory (after kill or stop). */
  async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--save', '',
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--loglevel', 'warning',
      ...(this.options.appendonly
        ? ['--appendonly', 'yes', '--appendfsync', 'always']
        : ['--appendonly', 'no']),
      ...(this.options.args ?? []),
    ];
    const child = spawn(redisServerPath(), args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.child = child;
    child.unref();
    await waitFor(() => canConnect(this.port), `redis-server on port ${this.port}`, 10_000, 25);
  }

  /** SIGKILL: no shutdown save, clients see the socket die. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  /** Kills and removes the data directory (unless it was given). */
  async stop(): Promise<void> {
    await this.kill();
    if (!this.options.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Forgets persisted data: the next launch starts empty. */
  wipe(): void {
    for (const name of ['appendonlydir', 'appendonly.aof', 'dump.rdb']) {
      rmSync(join(this.dir, name), { recursive: true, force: true });
    }
  }
}

export function redisServerPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || !path) {
    throw new Error('redis-server is not on PATH: install it (apt-get install redis-server) or set REDIS_URL');
  }
  return path;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Loaded only when a Docker engine may be there: it is heavy, and most runs have none. */
function loadTestcontainers(): typeof import('testcontainers') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('testcontainers') as typeof import('testcontainers');
}

async function dockerAnswers(): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  if (!host && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = loadTestcontainers();
    await Promise.race([
      getContainerRuntimeClient(),
      sleep(5000).then(() => Promise.reject(new Error('docker did not answer'))),
    ]);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Redis the test suite uses: REDIS_URL if set, else a container through testcontainers if
 * a Docker engine answers, else a redis-server on PATH started on a free port.
 */
export async function provideRedis(): Promise<TestRedis> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    const port = Number(new URL(fromEnv).port || 6379);
    return { url: fromEnv, port, source: 'env', stop: async () => {} };
  }
  if (await dockerAnswers()) {
    const { GenericContainer, Wait } = loadTestcontainers();
    const container = await new GenericContainer('redis:7-alpine')
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
      .start();
    const port = container.getMappedPort(6379);
    return {
      url: `redis://${container.getHost()}:${port}`,
      port,
      source: 'docker',
      stop: async () => {
        await container.stop();
      },
    };
  }
  return RedisProcess.start();
}
