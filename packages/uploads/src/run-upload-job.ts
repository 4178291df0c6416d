import { rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { FILE_ID_RE } from './file-id';
import { PermanentUploadError, processFile } from './process-file';
import { QUEUED_PERCENT, processingPercent } from './progress';
import type { UploadStore } from './upload-store';
import {
  uploadTopic,
  type FileFacts,
  type PublishFn,
  type UploadJobData,
  type UploadSettings,
} from './types';

/** Where a job's file is stored: its job id (random, checked) in the upload directory. */
export function uploadPath(dir: string, jobId: string): string {
  if (!FILE_ID_RE.test(jobId))
    throw new PermanentUploadError('FILE_MISSING', `not a job id: ${JSON.stringify(jobId)}`);
  return join(dir, `${jobId}.upload`);
}

export interface JobContext {
  settings: Pick<UploadSettings, 'dir' | 'types' | 'readBytesPerS'>;
  publish: PublishFn;
  store: UploadStore;
  /** The highest percent a previous attempt of this job published (0 if none). */
  startPercent: number;
  /** Records a percent before it is published, so an attempt that follows never shows less. */
  saveProgress(percent: number): Promise<void>;
  /** No attempt follows this one if it fails. */
  isLastAttempt: boolean;
  signal?: AbortSignal;
}

/**
 * One attempt at one job, the same with BullMQ and in-process: processes the file, publishing
 * `progress` (status `processing`) whenever the whole job's percent rises above what any attempt
 * has shown, then `complete` with the facts, exactly once across attempts. A permanent failure
 * (and a transient one on the last attempt) publishes `failed` and is rethrown; a transient one
 * is rethrown for the queue to retry.
 */
export async function runUploadJob(job: UploadJobData, ctx: JobContext): Promise<FileFacts> {
  const topic = uploadTopic(job.fileId);
  let shown = Math.max(ctx.startPercent, QUEUED_PERCENT);
  let path = '';
  try {
    path = uploadPath(ctx.settings.dir, job.jobId);
    const file = path;
    // The retention sweep goes by the file's mtime: keep it fresh while the job runs, and set
    // it on completion, so a file is kept UPLOAD_RETENTION_S after its job ended.
    const touch = () => utimes(file, new Date(), new Date()).catch(() => undefined);
    await touch();
    const facts = await processFile(path, {
      declaredType: job.declaredType,
      types: ctx.settings.types,
      readBytesPerS: ctx.settings.readBytesPerS,
      signal: ctx.signal,
      onProgress: async (bytes, size) => {
        const percent = processingPercent(bytes, size);
        if (percent <= shown) return;
        shown = percent;
        await touch();
        await ctx.saveProgress(percent);
        await ctx.publish(topic, 'progress', {
          percent,
          status: 'processing',
          bytes,
          totalBytes: size,
        });
      },
    });
    await touch();
    await ctx.store.finishOnce(job.jobId, () =>
      ctx.publish(topic, 'complete', {
        percent: 100,
        status: 'complete',
        fileId: job.fileId,
        filename: job.filename,
        ...facts,
      }),
    );
    await ctx.store.release(job.fileId, job.jobId).catch(() => undefined);
    return facts;
  } catch (err) {
    if (ctx.signal?.aborted) throw err; // stopping: the job runs again elsewhere
    const permanent = err instanceof PermanentUploadError;
    if (permanent || ctx.isLastAttempt) {
      await failJob(job, ctx, permanent ? err.code : 'PROCESSING_FAILED', (err as Error).message);
      if (path) await rm(path, { force: true }).catch(() => undefined);
    }
    throw err;
  }
}

/** Publishes the job's `failed` (once across attempts) and frees its file id. */
export async function failJob(
  job: UploadJobData,
  ctx: Pick<JobContext, 'publish' | 'store'>,
  code: string,
  reason: string,
): Promise<void> {
  await ctx.store.finishOnce(job.jobId, () =>
    ctx.publish(uploadTopic(job.fileId), 'failed', {
      status: 'failed',
      fileId: job.fileId,
      filename: job.filename,
      code,
      reason,
    }),
  );
  await ctx.store.release(job.fileId, job.jobId).catch(() => undefined);
}
