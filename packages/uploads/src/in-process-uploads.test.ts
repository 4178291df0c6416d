import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opaqueBytes, waitFor } from '@streamcast/testing';
import { gzipSync } from 'node:zlib';
import { randomId } from './file-id';
import { InProcessUploads } from './in-process-uploads';
import { uploadPath } from './run-upload-job';
import type { UploadJobData, UploadSettings } from './types';
import { MemoryUploadStore } from './upload-store';

interface Published {
  topic: string;
  event: string;
  data: Record<string, unknown>;
}

describe('uploads without Redis (in-process)', () => {
  let dir: string;
  let uploads: InProcessUploads | undefined;
  let events: Published[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'streamcast-inproc-'));
    events = [];
  });
  afterEach(async () => {
    await uploads?.close();
    uploads = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function settings(overrides: Partial<UploadSettings> = {}): UploadSettings {
    return {
      dir,
      maxBytes: 1 << 30,
      types: ['text/*', 'image/*', 'application/octet-stream'],
      retentionS: 3600,
      attempts: 3,
      concurrency: 2,
      lockMs: 30_000,
      readBytesPerS: 0,
      ...overrides,
    };
  }

  function stored(content: Buffer, declaredType = 'application/octet-stream'): UploadJobData {
    const jobId = randomId();
    writeFileSync(uploadPath(dir, jobId), content);
    return {
      jobId,
      fileId: `f-${jobId.slice(0, 8)}`,
      filename: 'x.bin',
      declaredType,
      size: content.length,
      receivedAt: Date.now(),
    };
  }

  const record = async (topic: string, event: string, data: unknown) => {
    events.push({ topic, event, data: data as Record<string, unknown> });
  };
  const of = (job: UploadJobData, event?: string) =>
    events.filter(
      (e) => e.topic === `uploads/${job.fileId}` && (event === undefined || e.event === event),
    );

  it('processes a job and publishes rising progress, then complete with the facts', async () => {
    uploads = new InProcessUploads(settings(), record);
    const content = opaqueBytes(3 * 1024 * 1024);
    const job = stored(content);
    await uploads.enqueue(job);
    await uploads.idle();
    const progress = of(job, 'progress').map((e) => e.data.percent as number);
    expect(progress.length).toBeGreaterThan(3);
    expect(
      progress.every((p, i) => p > 50 && p < 100 && (i === 0 || p > (progress[i - 1] as number))),
    ).toBe(true);
    expect(of(job, 'progress').every((e) => e.data.status === 'processing')).toBe(true);
    const [complete, ...more] = of(job, 'complete');
    expect(more).toEqual([]);
    expect(complete?.data).toMatchObject({
      percent: 100,
      filename: 'x.bin',
      fileId: job.fileId,
      size: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
      mime: 'application/octet-stream',
    });
  });

  it('retries a transient failure with backoff and never shows less progress than before', async () => {
    let failures = 0;
    // The engine refuses one publish at 70% (Redis away, say): the attempt fails and is retried.
    const flaky = async (topic: string, event: string, data: unknown) => {
      if (event === 'progress' && (data as { percent: number }).percent >= 70 && failures === 0) {
        failures++;
        throw Object.assign(new Error('not stored'), { code: 'NOT_READY' });
      }
      await record(topic, event, data);
    };
    uploads = new InProcessUploads(settings(), flaky);
    const job = stored(opaqueBytes(4 * 1024 * 1024));
    const started = Date.now();
    await uploads.enqueue(job);
    await uploads.idle();
    expect(failures).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // 1 s backoff
    const progress = of(job, 'progress').map((e) => e.data.percent as number);
    expect(progress.every((p, i) => i === 0 || p > (progress[i - 1] as number))).toBe(true);
    expect(of(job, 'complete')).toHaveLength(1);
    expect(of(job, 'failed')).toHaveLength(0);
  });

  it('fails an unsupported file at once with a clear reason, and removes it', async () => {
    uploads = new InProcessUploads(settings(), record);
    const job = stored(gzipSync(Buffer.from('compressed')));
    await uploads.enqueue(job);
    await uploads.idle();
    expect(of(job, 'failed')).toEqual([
      {
        topic: `uploads/${job.fileId}`,
        event: 'failed',
        data: expect.objectContaining({
          code: 'FILE_TYPE_UNSUPPORTED',
          reason: expect.stringContaining('application/gzip'),
        }),
      },
    ]);
    expect(of(job, 'complete')).toEqual([]);
    expect(existsSync(uploadPath(dir, job.jobId))).toBe(false);
  });

  it('fails after the last attempt of a transient error, once', async () => {
    const broken = async (topic: string, event: string, data: unknown) => {
      if (event === 'progress') throw new Error('engine down');
      await record(topic, event, data);
    };
    uploads = new InProcessUploads(settings({ attempts: 2 }), broken);
    const job = stored(opaqueBytes(1024 * 1024));
    await uploads.enqueue(job);
    await uploads.idle();
    expect(of(job, 'failed').map((e) => e.data)).toEqual([
      expect.objectContaining({ code: 'PROCESSING_FAILED', reason: 'engine down' }),
    ]);
  });

  it('removes completed files after the retention', async () => {
    uploads = new InProcessUploads(settings({ retentionS: 1 }), record);
    const job = stored(Buffer.from('short text\n'));
    await uploads.enqueue(job);
    await uploads.idle();
    expect(of(job, 'complete')).toHaveLength(1);
    const path = uploadPath(dir, job.jobId);
    await waitFor(() => !existsSync(path), 'the completed file to be swept', 5000);
  });

  it('runs at most `concurrency` jobs at once', async () => {
    const running = new Set<string>();
    let most = 0;
    const watch = async (topic: string, event: string, data: unknown) => {
      if (event === 'progress') running.add(topic);
      if (event === 'complete') running.delete(topic);
      most = Math.max(most, running.size);
      await record(topic, event, data);
    };
    uploads = new InProcessUploads(
      settings({ concurrency: 2, readBytesPerS: 8 * 1024 * 1024 }),
      watch,
    );
    const jobs = [1, 2, 3, 4].map(() => stored(opaqueBytes(2 * 1024 * 1024)));
    for (const job of jobs) await uploads.enqueue(job);
    await uploads.idle();
    expect(most).toBe(2);
    for (const job of jobs) expect(of(job, 'complete')).toHaveLength(1);
  });
});

describe('MemoryUploadStore', () => {
  it('gives a file id to one upload at a time, and frees it only for its holder', async () => {
    const store = new MemoryUploadStore(60);
    expect(await store.reserve('same', 'job-1', 60)).toBe(true);
    expect(await store.reserve('same', 'job-2', 60)).toBe(false);
    await store.release('same', 'job-2');
    expect(await store.reserve('same', 'job-2', 60)).toBe(false);
    await store.release('same', 'job-1');
    expect(await store.reserve('same', 'job-2', 60)).toBe(true);
    store.close();
  });

  it('publishes a terminal event once per job', async () => {
    const store = new MemoryUploadStore(60);
    let published = 0;
    const publish = async () => {
      published++;
    };
    expect(await store.finishOnce('job', publish)).toBe(true);
    expect(await store.finishOnce('job', publish)).toBe(false);
    expect(published).toBe(1);
    store.close();
  });
});
