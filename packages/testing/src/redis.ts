import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, redisServerPath } from './ports';
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
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      '--loglevel',
      'warning',
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

/** Loaded only when a Docker engine may be there: it is heavy, and most runs have none. */
function loadTestcontainers(): typeof import('testcontainers') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('testcontainers') as typeof import('testcontainers');
}

/**
 * Redis images a test run may use, in order: `TEST_REDIS_IMAGE`, the local stand-in that
 * `npm run images:local` builds, and the official image. Only one already present in the engine
 * is used: nothing is ever pulled (a registry may be unreachable).
 */
function redisImageCandidates(): string[] {
  const named = process.env.TEST_REDIS_IMAGE;
  return [...(named ? [named] : []), 'streamcast/redis:local', 'redis:7-alpine', 'redis:7'];
}

/** The first candidate image present in a Docker engine that answers, or why there is none. */
async function localRedisImage(): Promise<{ image: string } | { none: string }> {
  const host = process.env.DOCKER_HOST;
  if (!host && !existsSync('/var/run/docker.sock')) return { none: 'no Docker engine' };
  try {
    const { getContainerRuntimeClient, ImageName } = loadTestcontainers();
    const client = await Promise.race([
      getContainerRuntimeClient(),
      sleep(5000).then(() => Promise.reject(new Error('the Docker engine did not answer in 5 s'))),
    ]);
    for (const image of redisImageCandidates()) {
      if (!(await client.image.exists(ImageName.fromString(image)))) continue;
      // testcontainers' reaper (Ryuk) is an image too: without it locally, starting one would
      // pull. The container is then removed by stop() (and by Docker when it stops).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { REAPER_IMAGE } = require('testcontainers/build/reaper/reaper') as {
        REAPER_IMAGE: string;
      };
      if (
        process.env.TESTCONTAINERS_RYUK_DISABLED === undefined &&
        !(await client.image.exists(ImageName.fromString(REAPER_IMAGE)))
      ) {
        process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
      }
      return { image };
    }
    return { none: `no Redis image present locally (${redisImageCandidates().join(', ')})` };
  } catch (error) {
    return { none: `Docker failed: ${(error as Error).message}` };
  }
}

/**
 * The Redis the test suite uses: REDIS_URL if set, else a container through testcontainers if a
 * Docker engine answers and has a Redis image locally, else a redis-server on PATH started on a
 * free port. Any Docker failure falls back to redis-server, with one line saying why.
 */
export async function provideRedis(): Promise<TestRedis> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    const port = Number(new URL(fromEnv).port || 6379);
    return { url: fromEnv, port, source: 'env', stop: async () => {} };
  }
  const found = await localRedisImage();
  if ('image' in found) {
    try {
      const { GenericContainer, Wait } = loadTestcontainers();
      const container = await new GenericContainer(found.image)
        .withPullPolicy({ shouldPull: () => false }) // present locally; never pull
        .withAutoRemove(true)
        .withExposedPorts(6379)
        .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
        .withStartupTimeout(30_000)
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
    } catch (error) {
      process.stderr.write(
        `test redis: Docker image ${found.image} failed (${(error as Error).message}); using redis-server\n`,
      );
    }
  } else if (found.none !== 'no Docker engine') {
    process.stderr.write(`test redis: ${found.none}; using redis-server\n`);
  }
  return RedisProcess.start();
}
