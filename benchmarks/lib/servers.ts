import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { freePort, startGatewayProcess } from '@streamcast/testing';
import { REPO_ROOT } from './client-pool';
import { killQuietly, onCleanup, pin, withDeadline } from './procs';

/** A server under test, running as its own process pinned to core 0. */
export interface ServerUnderTest {
  name: string;
  url: string;
  port: number;
  pid: number;
  pinned: boolean;
  /** Everything it wrote to stdout and stderr (the gateway only). */
  output(): string;
  stop(): Promise<void>;
}

/** The core the server under test gets to itself; everything else runs on the other one. */
export const SERVER_CORE = 0;
export const CLIENT_CORE = 1;

/**
 * One gateway (`npm run gateway`'s program) on the benchmark's Redis, with a key prefix of its
 * own, pinned to SERVER_CORE. `instrumented` runs it through instrumented-gateway.ts (SIGUSR2
 * collects garbage); so does BENCH_GATEWAY_CPU_PROF=<dir>, which also profiles it and leaves a
 * .cpuprofile in <dir> when it stops.
 */
export async function startStreamcast(
  redisUrl: string,
  options: { instrumented?: boolean } = {},
): Promise<ServerUnderTest> {
  const profileDir = process.env.BENCH_GATEWAY_CPU_PROF;
  const instrumented = options.instrumented === true || profileDir !== undefined;
  const gateway = await startGatewayProcess(
    {
      REDIS_URL: redisUrl,
      REDIS_PREFIX: `bench-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: 'warn',
      ...(profileDir ? { CPU_PROF_DIR: resolve(profileDir) } : {}),
    },
    instrumented ? { script: join(__dirname, 'instrumented-gateway.ts') } : {},
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
  let pinned = false;
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
    pinned,
    output: gateway.output,
    stop,
  };
}

/** The naive server (naive-server.ts) on the benchmark's Redis, pinned to SERVER_CORE. */
export async function startNaive(redisUrl: string, prefix: string): Promise<ServerUnderTest> {
  const port = await freePort();
  const child = fork(join(__dirname, 'naive-server.ts'), [], {
    cwd: REPO_ROOT,
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL: redisUrl,
      NAIVE_PREFIX: prefix,
      PORT: String(port),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pid = child.pid as number;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = onCleanup(
    `naive server ${pid}`,
    async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await withDeadline(exited, 5000, 'for the naive server to exit').catch(() =>
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
          reject(new Error(`naive server exited with ${code} before listening`)),
        );
      }),
      30_000,
      'for the naive server to listen',
    );
    const pinned = pin(pid, SERVER_CORE);
    return {
      name: 'naive',
      url: `http://127.0.0.1:${port}`,
      port,
      pid,
      pinned,
      output: () => '',
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
