import type { FastifyInstance } from 'fastify';

export interface RunOptions {
  port: number;
  host: string;
  /** On SIGTERM, close open streams in batches over this many ms before stopping. @default 0 */
  drainMs?: number;
  /** Drains the open streams (hub.drain). */
  drain?: (windowMs: number) => Promise<void>;
  /** Runs on SIGTERM/SIGINT before the server closes (stop producers, workers…). */
  beforeClose?: () => Promise<void>;
}

/**
 * Listens, then stops cleanly on SIGTERM or SIGINT: `beforeClose`, then (SIGTERM only) a drain
 * of the open streams over `drainMs`, then the server (which ends what is left), then exit 0;
 * exit 1 if stopping fails. SIGINT (Ctrl-C at a terminal) skips the drain.
 */
export async function listenUntilSignalled(
  app: FastifyInstance,
  options: RunOptions,
): Promise<void> {
  // When a gateway dies, its clients all come back to the others at once (each after the same
  // retry:). Node's default accept queue (511) overflowed under 2,500 reconnections in the
  // resume-storm benchmark, and a dropped SYN is only retried after 1, 3, 7 s… The kernel caps
  // this at net.core.somaxconn.
  await app.listen({ port: options.port, host: options.host, backlog: 4096 });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping');
    (async () => {
      const draining =
        signal === 'SIGTERM' && options.drain ? options.drain(options.drainMs ?? 0) : undefined;
      await options.beforeClose?.();
      await draining;
      await app.close();
    })().then(
      () => process.exit(0),
      (err) => {
        app.log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (err) => app.log.error({ err }, 'unhandled rejection'));
}
