import type { ClientPool, PoolOptions, PublishTarget } from '@streamcast/loadtest';
import { startClients } from './clients';
import type { BenchContext } from './context';
import { log } from './report';
import { startServer, type ServerKind, type ServerUnderTest } from './servers';

/** What a scenario's body gets: the server, its client processes, and a place for its target. */
export interface ScenarioRun {
  server: ServerUnderTest;
  pool: ClientPool;
  /** The body's publisher target: closed with the rest when the body ends. */
  useTarget(target: PublishTarget): PublishTarget;
}

/**
 * The setup every single-server scenario shares: one fresh server of `kind` (pinned, see
 * startServer), `processes` client processes connecting to it, then `body`; the server's output
 * is shown when the body fails; the target, the clients and the server are stopped whatever
 * happens.
 */
export async function withServer<T>(
  ctx: BenchContext,
  kind: ServerKind,
  options: {
    processes?: number;
    clients?: Omit<PoolOptions, 'processes' | 'targets' | 'onSpawn'>;
    instrumented?: boolean;
    /** Added to a gateway's environment (REDIS_PREFIX…). */
    env?: Record<string, string>;
  },
  body: (run: ScenarioRun) => Promise<T>,
): Promise<T> {
  const server = await startServer(kind, ctx.redis.url, {
    ...(options.instrumented ? { instrumented: true } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  let pool: ClientPool | undefined;
  let target: PublishTarget | undefined;
  try {
    pool = await startClients(
      options.processes ?? ctx.params.clientProcesses,
      server.port,
      options.clients,
    );
    return await body({
      server,
      pool,
      useTarget: (t) => (target = t),
    });
  } catch (err) {
    const output = server.output().trim();
    if (output) log(`${kind} server output:\n${output}`);
    throw err;
  } finally {
    await target?.close();
    await pool?.close();
    await server.stop();
  }
}
