import { ClientPool, type PoolOptions } from '@streamcast/loadtest';
import { onCleanup } from './procs';

/**
 * Client processes of the load tester (apps/loadtest: raw-socket SSE clients with exact
 * accounting), connecting to 127.0.0.1:<port>. They inherit the runner's core (CLIENT_CORE).
 * Each is registered for cleanup, so none outlives a failed or interrupted run.
 */
export function startClients(
  processes: number,
  port: number,
  options: Omit<PoolOptions, 'processes' | 'targets' | 'onSpawn'> = {},
): Promise<ClientPool> {
  return ClientPool.start({
    ...options,
    processes,
    targets: [{ host: '127.0.0.1', port }],
    onSpawn: (pid, stop, kill) => {
      onCleanup(`client process ${pid}`, stop, kill);
    },
  });
}
