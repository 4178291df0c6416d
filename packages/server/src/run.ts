import type { FastifyInstance } from 'fastify';

export interface RunOptions {
  port: number;
  host: string;
  /** Runs on SIGTERM/SIGINT before the server closes (stop producers, workers…). */
  beforeClose?: () => Promise<void>;
}

/**
 * Listens, then stops cleanly on SIGTERM or SIGINT: `beforeClose`, then the server (which ends
 * its streams), then exit 0; exit 1 if stopping fails.
 */
export async function listenUntilSignalled(app: FastifyInstance, options: RunOptions): Promise<void> {
  await app.listen({ port: options.port, host: options.host });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping');
    (async () => {
      await options.beforeClose?.();
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
