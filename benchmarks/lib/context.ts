import { spawnSync } from 'node:child_process';
import { RedisProcess } from '@streamcast/testing';
import { ParamError, readParams, type BenchParams } from './params';
import { killQuietly } from '@streamcast/loadtest';
import { installExitHandlers, onCleanup, pin, stopEverything, taskset } from './procs';
import { CLIENT_CORE } from './servers';

export interface BenchContext {
  params: BenchParams;
  redis: RedisProcess;
  redisVersion: string;
  /** True when the server under test has core 0 and everything else core 1. */
  pinned: boolean;
}

/**
 * Prepares a run: pins this process (the publisher) to the client core, so that every process
 * it starts from now on (Redis, client processes) inherits that core, and starts redis-server.
 */
export async function createContext(): Promise<BenchContext> {
  installExitHandlers();
  const params = readParams();
  const pinned = taskset() !== null && pin(process.pid, CLIENT_CORE);
  const redis = await RedisProcess.start();
  onCleanup(
    'redis-server',
    () => redis.stop(),
    () => killQuietly(redis.pid),
  );
  const version = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout;
  const redisVersion = /v=(\S+)/.exec(version)?.[1] ?? '?';
  return { params, redis, redisVersion, pinned };
}

/**
 * Runs `body` with a fresh context and stops every process afterwards, even on error. Exits 1
 * when `body` throws or returns false (a figure failed its check, e.g. events were lost).
 */
export async function withContext(body: (ctx: BenchContext) => Promise<boolean>): Promise<void> {
  // A hung step must not hold the machine: the whole run is bounded.
  const limitS = Number(process.env.BENCH_TIMEOUT_S ?? 900);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running after ${limitS} s (BENCH_TIMEOUT_S); stopping\n`);
    void stopEverything().finally(() => process.exit(1));
  }, limitS * 1000);
  watchdog.unref();
  let failed: boolean;
  try {
    failed = !(await body(await createContext()));
  } catch (err) {
    failed = true;
    const text = err instanceof ParamError ? err.message : `bench: ${(err as Error).stack ?? err}`;
    process.stderr.write(`${text}\n`);
  } finally {
    await stopEverything();
    clearTimeout(watchdog);
  }
  process.exit(failed ? 1 : 0);
}
