import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseRedisUrl } from '@streamcast/engine-redis';
import { opaqueBytes, testPrefix, testRedisUrl, waitFor } from '@streamcast/testing';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { BullUploadQueue, startUploadWorker, type UploadWorker } from './bullmq-uploads';
import { randomId } from './file-id';
import { QUEUE_NAME, uploadKeys } from './keys';
import { uploadPath } from './run-upload-job';
import type { UploadJobData, UploadSettings } from './types';
import { RedisUploadStore } from './upload-store';

/** The BullMQ queue and worker against the suite's real Redis, in this process. */
describe('uploads on BullMQ', () => {
  const prefix = testPrefix();
  const connection = parseRedisUrl(testRedisUrl());
  let dir: string;
  let queue: BullUploadQueue;
  let worker: UploadWorker;
  let inspect: Queue;
  let redis: Redis;
  const events: Array<{ topic: string; event: string; data: Record<string, unknown> }> = [];

  const settings = (): UploadSettings => ({
    dir,
    maxBytes: 1 << 30,
    types: ['text/*', 'application/octet-stream'],
    retentionS: 2,
    attempts: 3,
    concurrency: 2,
    lockMs: 5000,
    readBytesPerS: 0,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'streamcast-bullmq-'));
    redis = new Redis(testRedisUrl());
    queue = new BullUploadQueue({ connection, keyPrefix: prefix, settings: settings() });
    worker = await startUploadWorker({
      connection,
      keyPrefix: prefix,
      settings: settings(),
      publish: async (topic, event, data) => {
        events.push({ topic, event, data: data as Record<string, unknown> });
      },
    });
    inspect = new Queue(QUEUE_NAME, { connection: redis, prefix: uploadKeys(prefix).bullPrefix });
  });

  afterAll(async () => {
    await worker?.close();
    await queue?.close();
    await inspect?.close();
    redis?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  function stored(content: Buffer): UploadJobData {
    const jobId = randomId();
    writeFileSync(uploadPath(dir, jobId), content);
    return {
      jobId,
      fileId: `b-${jobId.slice(0, 10)}`,
      filename: 'f',
      declaredType: 'application/octet-stream',
      size: content.length,
      receivedAt: Date.now(),
    };
  }
  const of = (job: UploadJobData, event: string) =>
    events.filter((e) => e.topic === `uploads/${job.fileId}` && e.event === event);

  it('processes a queued job, then removes its file and its job record after the retention', async () => {
    const job = stored(opaqueBytes(1024 * 1024));
    await queue.enqueue(job);
    await waitFor(() => of(job, 'complete').length === 1, 'complete', 10_000);
    // `complete` is published before BullMQ records the job as completed.
    await waitFor(
      async () => (await (await inspect.getJob(job.jobId))?.getState()) === 'completed',
      'the job to be completed',
    );
    await waitFor(
      async () => !existsSync(uploadPath(dir, job.jobId)) && !(await inspect.getJob(job.jobId)),
      'the file and the job record to be removed',
      10_000,
    );
  });

  it('fails an unsupported file at once, without retries', async () => {
    const job = stored(gzipSync(Buffer.from('zipped')));
    await queue.enqueue(job);
    await waitFor(() => of(job, 'failed').length === 1, 'failed', 10_000);
    // `failed` is published before BullMQ records the job's failure.
    await waitFor(
      async () => (await (await inspect.getJob(job.jobId))?.getState()) === 'failed',
      'the job to fail',
    );
    const record = await inspect.getJob(job.jobId);
    expect(record?.attemptsMade).toBe(1);
    expect(of(job, 'failed')[0]?.data).toMatchObject({ code: 'FILE_TYPE_UNSUPPORTED' });
  });

  it('gives a file id to one upload at a time and publishes a terminal event once when attempts race', async () => {
    const store = new RedisUploadStore(redis, prefix, 60);
    expect(await store.reserve('shared', 'job-a', 60)).toBe(true);
    expect(await store.reserve('shared', 'job-b', 60)).toBe(false);
    await store.release('shared', 'job-b'); // not the holder: nothing happens
    expect(await store.reserve('shared', 'job-b', 60)).toBe(false);
    await store.release('shared', 'job-a');
    expect(await store.reserve('shared', 'job-b', 60)).toBe(true);

    let published = 0;
    const slowPublish = async () => {
      published++;
      await new Promise((r) => setTimeout(r, 300));
    };
    const results = await Promise.all([
      store.finishOnce('race', slowPublish),
      store.finishOnce('race', slowPublish),
    ]);
    expect(results.sort()).toEqual([false, true]);
    expect(published).toBe(1);
    expect(await store.finishOnce('race', slowPublish)).toBe(false);
  });
});
