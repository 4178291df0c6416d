import { mkdir } from 'node:fs/promises';
import { connectRedis, type RedisConnection } from '@streamcast/engine-redis';
import type { Job, Queue, Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { LogLike, UploadBackend } from './in-process-uploads';
import { QUEUE_NAME, uploadKeys } from './keys';
import { PermanentUploadError } from './process-file';
import { failJob, runUploadJob } from './run-upload-job';
import { startSweeper } from './sweep';
import type { FileFacts, PublishFn, UploadJobData, UploadSettings } from './types';
import { RedisUploadStore } from './upload-store';

/**
 * BullMQ, loaded on first use: a gateway loads it with its first upload, not at start (it is
 * about 8 MB of a gateway's resident memory, and most gateways never take an upload).
 */
function bullmq(): typeof import('bullmq') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (see above)
  return require('bullmq') as typeof import('bullmq');
}

export interface RedisUploadOptions {
  /**
   * The broadcaster's Redis (`redisConnection(env)`): one Redis, or a Redis Cluster (the queue's
   * keys share one hash tag, so the queue lives in one slot, as BullMQ requires).
   */
  connection: RedisConnection;
  /** As REDIS_PREFIX. */
  keyPrefix: string;
  settings: UploadSettings;
}

/**
 * The gateway's side of BullMQ: adds one job per received file. Its connection fails fast, so
 * an upload answers 503 while Redis is away instead of hanging.
 */
export class BullUploadQueue implements UploadBackend {
  readonly kind = 'bullmq' as const;
  readonly store: RedisUploadStore;
  private readonly client: Redis | Cluster;
  /** Made by the first enqueue (see bullmq()). */
  private queue: Queue<UploadJobData> | undefined;
  private readonly jobOptions: Queue<UploadJobData>['defaultJobOptions'];
  private readonly prefix: string;

  constructor(options: RedisUploadOptions) {
    const { settings } = options;
    this.client = connectRedis(options.connection, { connectionName: 'sse-uploads' });
    this.client.on('error', () => {
      // ioredis reconnects by itself; an upload meanwhile answers 503.
    });
    this.store = new RedisUploadStore(this.client, options.keyPrefix, settings.retentionS);
    this.prefix = uploadKeys(options.keyPrefix).bullPrefix;
    this.jobOptions = {
      attempts: settings.attempts,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: settings.retentionS },
      removeOnFail: { age: settings.retentionS },
    };
  }

  async enqueue(job: UploadJobData): Promise<void> {
    await this.queueOf().add('process', job, { jobId: job.jobId });
  }

  private queueOf(): Queue<UploadJobData> {
    if (!this.queue) {
      const { Queue } = bullmq();
      this.queue = new Queue<UploadJobData>(QUEUE_NAME, {
        connection: this.client,
        prefix: this.prefix,
        defaultJobOptions: this.jobOptions,
      });
      this.queue.on('error', () => {
        // reported to the caller of add()
      });
    }
    return this.queue;
  }

  async close(): Promise<void> {
    await this.queue?.close().catch(() => undefined);
    this.client.disconnect();
  }
}

export interface UploadWorkerOptions extends RedisUploadOptions {
  /** Publishes progress, `complete` and `failed` (a publisher on the same Redis). */
  publish: PublishFn;
  logger?: LogLike;
}

export interface UploadWorker {
  worker: Worker<UploadJobData, FileFacts>;
  /** Stops taking jobs and waits for the running ones (`force`: abandons them to stalled-job recovery). */
  close(force?: boolean): Promise<void>;
}

/**
 * A BullMQ worker on the upload queue (`apps/upload-worker`, or inside `npm start` with Redis).
 * Any number of them, in any number of processes, share the queue. A job whose worker dies is
 * taken for stalled once its lock (`lockMs`) lapses and runs again on another worker, resuming
 * its shown progress from the highest percent any attempt published (kept in the job's progress).
 */
export async function startUploadWorker(options: UploadWorkerOptions): Promise<UploadWorker> {
  const { settings, publish, logger: log } = options;
  await mkdir(settings.dir, { recursive: true, mode: 0o700 });
  const { Queue, UnrecoverableError, Worker } = bullmq();
  const keys = uploadKeys(options.keyPrefix);
  const client = connectRedis(options.connection, { connectionName: 'sse-upload-worker' });
  client.on('error', () => {
    // ioredis reconnects by itself; a job meanwhile fails and is retried.
  });
  const store = new RedisUploadStore(client, options.keyPrefix, settings.retentionS);

  const processor = async (
    job: Job<UploadJobData, FileFacts>,
    _token?: string,
    signal?: AbortSignal,
  ) => {
    const started = Date.now();
    try {
      const facts = await runUploadJob(job.data, {
        settings,
        publish,
        store,
        startPercent: typeof job.progress === 'number' ? job.progress : 0,
        saveProgress: (percent) => job.updateProgress(percent),
        isLastAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
        signal,
      });
      const ms = Date.now() - started;
      log?.info(
        {
          jobId: job.id,
          fileId: job.data.fileId,
          size: facts.size,
          ms,
          mbPerS: rate(facts.size, ms),
          attempt: job.attemptsStarted,
        },
        'upload processed',
      );
      return facts;
    } catch (err) {
      // Retrying an unsupported or corrupt file cannot help: fail the job at once.
      if (err instanceof PermanentUploadError)
        throw new UnrecoverableError(`${err.code}: ${err.message}`);
      throw err;
    }
  };

  // BullMQ's own connection (it duplicates it for blocking reads): commands wait for Redis
  // rather than fail, as BullMQ requires (maxRetriesPerRequest: null).
  const bullClient = connectRedis(options.connection, {
    connectionName: 'sse-upload-worker-bullmq',
    waitForRedis: true,
  });
  bullClient.on('error', () => undefined);
  const worker = new Worker<UploadJobData, FileFacts>(QUEUE_NAME, processor, {
    connection: bullClient,
    prefix: keys.bullPrefix,
    concurrency: settings.concurrency,
    lockDuration: settings.lockMs,
    stalledInterval: Math.max(500, Math.floor(settings.lockMs / 2)),
    // A job may lose its worker twice (deploys, crashes) before it is failed as stalled.
    maxStalledCount: 2,
    removeOnComplete: { age: settings.retentionS },
    removeOnFail: { age: settings.retentionS },
  });
  worker.on('error', (err) => log?.warn({ err }, 'upload worker error'));
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final =
      err instanceof UnrecoverableError ||
      job.attemptsMade >= (job.opts.attempts ?? 1) ||
      job.finishedOn;
    log?.warn(
      {
        err,
        jobId: job.id,
        fileId: job.data.fileId,
        attemptsMade: job.attemptsMade,
        final: !!final,
      },
      'upload attempt failed',
    );
    // The processor publishes `failed` itself; this covers jobs failed without it (stalled too often).
    if (final) {
      failJob(job.data, { publish, store }, 'PROCESSING_FAILED', err.message).catch((e: unknown) =>
        log?.error({ err: e, jobId: job.id }, 'cannot publish failed'),
      );
    }
  });

  // Completed files after the retention; job records too (BullMQ's age-based removal only runs
  // when a later job finishes, so a quiet queue is cleaned here).
  const cleaner = new Queue(QUEUE_NAME, { connection: client, prefix: keys.bullPrefix });
  cleaner.on('error', () => undefined);
  const sweeper = startSweeper(
    settings.dir,
    settings.retentionS,
    () =>
      Promise.all([
        cleaner.clean(settings.retentionS * 1000, 1000, 'completed'),
        cleaner.clean(settings.retentionS * 1000, 1000, 'failed'),
      ]),
    (err) => log?.warn({ err }, 'upload sweep failed'),
  );
  await worker.waitUntilReady();

  return {
    worker,
    close: async (force = false) => {
      sweeper.stop();
      await worker.close(force);
      await cleaner.close().catch(() => undefined);
      bullClient.disconnect();
      client.disconnect();
    },
  };
}

/** MB/s (10^6 bytes a second), 1 decimal. */
export function rate(bytes: number, ms: number): number {
  return Math.round((bytes / 1e6 / Math.max(ms, 1)) * 1000 * 10) / 10;
}
