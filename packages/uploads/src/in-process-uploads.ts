import { PermanentUploadError } from './process-file';
import { runUploadJob } from './run-upload-job';
import { startSweeper, type Sweeper } from './sweep';
import type { PublishFn, UploadJobData, UploadSettings } from './types';
import { MemoryUploadStore, type UploadStore } from './upload-store';

/** The few logger methods uploads use (pino's, Fastify's). */
export interface LogLike {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Where the receiving route hands jobs: BullMQ with Redis, this process without. */
export interface UploadBackend {
  readonly kind: 'bullmq' | 'in-process';
  readonly store: UploadStore;
  enqueue(job: UploadJobData): Promise<void>;
  close(): Promise<void>;
}

/** BullMQ's exponential backoff with a 1 s base: 1 s, 2 s, 4 s… after attempts 1, 2, 3… */
export function backoffMs(failedAttempts: number): number {
  return 1000 * 2 ** Math.max(0, failedAttempts - 1);
}

interface Entry {
  job: UploadJobData;
  attempts: number;
  progress: number;
}

/**
 * Uploads without Redis (`npm start`): the same job runner as the BullMQ worker, in this
 * process, with the same events, retries with backoff, concurrency limit and retention sweep.
 * Jobs live in memory: a restart forgets them, as the memory engine forgets its history.
 */
export class InProcessUploads implements UploadBackend {
  readonly kind = 'in-process' as const;
  readonly store: MemoryUploadStore;
  private readonly waiting: Entry[] = [];
  private readonly running = new Map<Entry, Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly abort = new AbortController();
  private readonly sweeper: Sweeper;
  private closed = false;

  constructor(
    private readonly settings: UploadSettings,
    private readonly publish: PublishFn,
    private readonly log?: LogLike,
  ) {
    this.store = new MemoryUploadStore(settings.retentionS);
    this.sweeper = startSweeper(settings.dir, settings.retentionS, undefined, (err) =>
      log?.warn({ err }, 'upload sweep failed'),
    );
  }

  async enqueue(job: UploadJobData): Promise<void> {
    if (this.closed) throw new Error('uploads are closed');
    this.waiting.push({ job, attempts: 0, progress: 0 });
    this.pump();
  }

  /** Resolves when no job is waiting, running or due for a retry (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0 || this.waiting.length > 0 || this.timers.size > 0) {
      await Promise.race([...this.running.values(), new Promise((r) => setTimeout(r, 50))]);
    }
  }

  private pump(): void {
    while (
      !this.closed &&
      this.running.size < this.settings.concurrency &&
      this.waiting.length > 0
    ) {
      const entry = this.waiting.shift() as Entry;
      const run = this.run(entry).finally(() => {
        this.running.delete(entry);
        this.pump();
      });
      this.running.set(entry, run);
    }
  }

  private async run(entry: Entry): Promise<void> {
    entry.attempts++;
    const { job } = entry;
    const started = Date.now();
    try {
      const facts = await runUploadJob(job, {
        settings: this.settings,
        publish: this.publish,
        store: this.store,
        startPercent: entry.progress,
        saveProgress: async (percent) => {
          entry.progress = percent;
        },
        isLastAttempt: entry.attempts >= this.settings.attempts,
        signal: this.abort.signal,
      });
      const ms = Date.now() - started;
      this.log?.info(
        { jobId: job.jobId, fileId: job.fileId, size: facts.size, ms },
        'upload processed',
      );
    } catch (err) {
      if (this.closed) return;
      const permanent = err instanceof PermanentUploadError;
      if (permanent || entry.attempts >= this.settings.attempts) {
        this.log?.warn(
          { err, jobId: job.jobId, fileId: job.fileId, attempts: entry.attempts },
          'upload failed',
        );
        return;
      }
      const delay = backoffMs(entry.attempts);
      this.log?.warn(
        { err, jobId: job.jobId, attempts: entry.attempts, retryInMs: delay },
        'upload attempt failed; retrying',
      );
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (this.closed) return;
        this.waiting.push(entry);
        this.pump();
      }, delay);
      this.timers.add(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort(new Error('uploads closing'));
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.sweeper.stop();
    await Promise.allSettled(this.running.values());
    this.store.close();
  }
}
