import { loadEnvOrExit, uploadWorkerSchema } from '@streamcast/config';
import { describeConnection, redisConnection } from '@streamcast/engine-redis';
import { createPublisher } from '@streamcast/publisher';
import { startUploadWorker, uploadSettings } from '@streamcast/uploads';
import pino from 'pino';

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * `npm run upload-worker`: takes upload jobs from the BullMQ queue on Redis, processes each
 * file and publishes its progress and result. Run as many as you like, on any machines that
 * see UPLOAD_DIR; a job whose worker dies runs again on another (after UPLOAD_LOCK_MS).
 */
async function main(): Promise<void> {
  const config = loadEnvOrExit(uploadWorkerSchema);
  const connection = redisConnection(config);
  if (!connection) {
    process.stderr.write(
      'config: REDIS_URL (or REDIS_SENTINELS or REDIS_CLUSTER_NODES) is required: the upload worker takes its jobs from Redis ' +
        '(without Redis, `npm start` processes uploads in-process)\n',
    );
    process.exit(1);
  }
  const log = pino({ level: config.LOG_LEVEL }).child({ component: 'upload-worker' });
  // At start Redis must answer (as for the producers); afterwards the worker rides out outages.
  const unreachable = setTimeout(() => {
    process.stderr.write(
      `upload-worker: cannot reach Redis at ${describeConnection(connection)} within ${CONNECT_TIMEOUT_MS / 1000} s\n`,
    );
    process.exit(1);
  }, CONNECT_TIMEOUT_MS);
  const publisher = await createPublisher({
    redisOptions: connection,
    keyPrefix: config.REDIS_PREFIX,
    retention: { maxLen: config.HISTORY_MAX_LEN, maxAgeS: config.HISTORY_MAX_AGE_S },
  });
  const settings = uploadSettings(config);
  const uploads = await startUploadWorker({
    connection,
    keyPrefix: config.REDIS_PREFIX,
    settings,
    publish: publisher.publish,
    logger: log,
  });
  clearTimeout(unreachable);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing running jobs');
    // Running jobs get one lock period to finish; after that they are abandoned to another
    // worker's stalled-job recovery rather than holding the shutdown.
    const force = setTimeout(() => {
      log.warn({}, 'jobs still running; leaving them to another worker');
      void uploads.close(true);
    }, settings.lockMs);
    force.unref();
    // Closing waits for Redis; with Redis gone it would wait for ever. Jobs left behind are
    // recovered by another worker all the same.
    const deadline = setTimeout(() => {
      log.error({}, 'could not stop cleanly (Redis unreachable?); exiting');
      process.exit(1);
    }, settings.lockMs + 5000);
    deadline.unref();
    uploads
      .close()
      .then(() => publisher.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info(
    { redis: describeConnection(connection), dir: settings.dir, concurrency: settings.concurrency },
    'upload worker ready',
  );
}

main().catch((err) => {
  process.stderr.write(`upload-worker: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
