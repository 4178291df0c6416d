import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import {
  SseClient,
  makePng,
  opaqueBytes,
  sleep,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
  SOURCE_EXEC_ARGV,
} from '@streamcast/testing';
import { QUEUE_NAME, uploadKeys } from '@streamcast/uploads';
import { Queue } from 'bullmq';
import Redis from 'ioredis';

/**
 * Uploads end to end: real multipart over HTTP into gateway processes, BullMQ on the suite's
 * Redis, upload-worker processes (killed with SIGKILL in one test), progress read over SSE from
 * another gateway. Throughput is measured on the multi-megabyte upload and printed.
 */

const ROOT = join(__dirname, '..');
const MiB = 1024 * 1024;

interface Progress {
  percent: number;
  status: string;
  bytes?: number;
  totalBytes?: number;
}

interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/**
 * `npm run upload-worker` as a child process, added to `started` at once (so that it is stopped
 * even if it never becomes ready); resolves once it is taking jobs.
 */
async function startWorker(
  env: Record<string, string>,
  started: WorkerProcess[],
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [...SOURCE_EXEC_ARGV, 'apps/upload-worker/src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const handle: WorkerProcess = {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  started.push(handle);
  await waitFor(
    () => {
      if (child.exitCode !== null)
        throw new Error(`upload worker exited with ${child.exitCode}:\n${output}`);
      return output.includes('upload worker ready');
    },
    () => `the upload worker to start:\n${output}`,
    // ts-node compiles on start: slow on a loaded machine.
    60_000,
  );
  return handle;
}

interface FilePart {
  filename: string;
  type: string;
  size: number;
  /** The content, read as it is sent. */
  open(): Readable;
}

/**
 * POSTs `multipart/form-data` (fields in order, then `file`) with a Content-Length, streaming
 * the file as a browser does; resolves with the answer, even when the server answers before
 * the body is sent (a refusal) and closes the connection.
 */
function postMultipart(
  url: string,
  fields: Array<[string, string]>,
  file: FilePart,
): Promise<{ status: number; body: any }> {
  const boundary = `----streamcast${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    fields
      .map(
        ([name, value]) =>
          `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
      )
      .join('') +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.filename}"\r\n` +
      `Content-Type: ${file.type}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': head.length + file.size + tail.length,
      },
    });
    req.once('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
      );
      res.on('error', reject);
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.write(head);
    const body = file.open();
    body.on('error', () => undefined);
    body.pipe(req, { end: false });
    body.once('end', () => req.end(tail));
    req.once('close', () => body.destroy());
  });
}

function filePart(path: string, filename: string, type: string, size: number): FilePart {
  return { filename, type, size, open: () => createReadStream(path) };
}

/** Random words on lines: text whose line and word counts we know. */
function makeText(bytes: number): { content: Buffer; lines: number; words: number } {
  const lines: string[] = [];
  let size = 0;
  let words = 0;
  while (size < bytes) {
    const line = `${randomBytes(36).toString('base64')} ${randomBytes(24).toString('hex')} ${randomBytes(6).toString('base64url')}\n`;
    lines.push(line);
    size += line.length;
    words += 3;
  }
  return { content: Buffer.from(lines.join('')), lines: lines.length, words };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Percents of every progress and complete event, in arrival order. */
function percents(client: SseClient): number[] {
  return client.events
    .filter((e) => e.event === 'progress' || e.event === 'complete')
    .map((e) => (JSON.parse(e.data) as Progress).percent);
}

function strictlyRising(values: number[]): boolean {
  return values.every((v, i) => i === 0 || v > (values[i - 1] as number));
}

describe('uploads through two gateways and an upload worker on one Redis', () => {
  const prefix = testPrefix();
  const uploadDir = mkdtempSync(join(tmpdir(), 'streamcast-uploads-test-'));
  const scratch = mkdtempSync(join(tmpdir(), 'streamcast-upload-files-'));
  const maxBytes = 24 * MiB;
  const env = {
    REDIS_URL: testRedisUrl(),
    REDIS_PREFIX: prefix,
    UPLOAD_DIR: uploadDir,
    UPLOAD_MAX_BYTES: String(maxBytes),
    // Long enough that a loaded machine (CI runs other suites beside this one) never lets a
    // running job's lock lapse; the kill test's workers use a short one (see there).
    UPLOAD_LOCK_MS: '15000',
    RETRY_MS: '200',
  };
  /** A killed worker's job is recovered once its lock lapses: soon, with this. */
  const shortLock = { ...env, UPLOAD_LOCK_MS: '2000' };
  let a: GatewayProcess;
  let b: GatewayProcess;
  let worker: WorkerProcess;
  const workers: WorkerProcess[] = [];
  const gateways: GatewayProcess[] = [];
  const clients: SseClient[] = [];
  const report: string[] = [];

  beforeAll(async () => {
    // Everything that did start is stopped in afterAll, even when something else did not.
    const started = await Promise.allSettled([
      startGatewayProcess(env),
      startGatewayProcess(env),
      startWorker(env, workers),
    ]);
    for (const result of started.slice(0, 2)) {
      if (result.status === 'fulfilled') gateways.push(result.value as GatewayProcess);
    }
    const failure = started.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    [a, b] = gateways as [GatewayProcess, GatewayProcess];
    worker = (started[2] as PromiseFulfilledResult<WorkerProcess>).value;
  }, 120_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([...gateways.map((g) => g.stop()), ...workers.map((w) => w.stop())]);
    rmSync(uploadDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
    if (report.length > 0) process.stdout.write(`\nuploads: ${report.join('\n         ')}\n`);
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });

  async function subscribe(gateway: GatewayProcess, fileId: string): Promise<SseClient> {
    const client = await SseClient.open(`${gateway.url}/api/upload-progress/${fileId}`);
    clients.push(client);
    expect(client.status).toBe(200);
    await waitFor(() => client.retries.length > 0, 'the stream to open');
    return client;
  }

  function scratchFile(name: string, content: Buffer): string {
    const path = join(scratch, name);
    writeFileSync(path, content);
    return path;
  }

  const stored = () => readdirSync(uploadDir).sort();

  it('carries a multi-megabyte upload through one gateway to a subscriber on the other: rising progress, then its SHA-256', async () => {
    const text = makeText(20 * MiB);
    const path = scratchFile('big.txt', text.content);
    const subscriber = await subscribe(b, 'big-upload-1');
    const started = Date.now();
    const answer = await postMultipart(
      `${a.url}/api/upload`,
      [['fileId', 'big-upload-1']],
      filePart(path, 'big.txt', 'text/plain', text.content.length),
    );
    const received = Date.now();
    expect(answer).toEqual({ status: 200, body: { message: '上传开始', fileId: 'big-upload-1' } });
    const [complete] = await subscriber.waitForEvents(1, 30_000, 'complete');
    const finished = Date.now();

    expect(JSON.parse(complete?.data ?? '')).toEqual({
      percent: 100,
      status: 'complete',
      fileId: 'big-upload-1',
      filename: 'big.txt',
      size: text.content.length,
      sha256: sha256(text.content),
      mime: 'text/plain',
      lines: text.lines,
      words: text.words,
    });
    const progress = subscriber.data<Progress>('progress');
    const statuses = progress.map((p) => p.status);
    expect(statuses.indexOf('queued')).toBe(statuses.lastIndexOf('queued'));
    expect(statuses.slice(0, statuses.indexOf('queued')).every((s) => s === 'uploading')).toBe(
      true,
    );
    expect(statuses.slice(statuses.indexOf('queued') + 1).every((s) => s === 'processing')).toBe(
      true,
    );
    expect(statuses.filter((s) => s === 'uploading').length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s === 'processing').length).toBeGreaterThan(10);
    expect(strictlyRising(percents(subscriber))).toBe(true);
    expect(subscriber.events.map((e) => e.event).filter((e) => e !== 'progress')).toEqual([
      'complete',
    ]);

    // Throughput: the worker's own timing of the job (read, hash, count), and end to end.
    // Logged after the job's `complete` is published: it may reach us a moment later.
    const line = await waitFor(
      () =>
        worker
          .output()
          .split('\n')
          .find((l) => l.includes('"upload processed"') && l.includes('big-upload-1')),
      () => `the worker to log the job:\n${worker.output().slice(-2000)}`,
    );
    const logged = JSON.parse(line) as { ms: number; mbPerS: number };
    const mb = text.content.length / 1e6;
    report.push(
      `${mb.toFixed(1)} MB text: worker processed at ${logged.mbPerS} MB/s (${logged.ms} ms); ` +
        `received in ${received - started} ms (${(mb / ((received - started) / 1000)).toFixed(1)} MB/s), ` +
        `complete ${finished - started} ms after the first byte (${(mb / ((finished - started) / 1000)).toFixed(1)} MB/s end to end)`,
    );
  });

  it("runs the seed's page flow: subscribe to /api/upload-progress/<lastModified>, then POST the form with fileId before file", async () => {
    const lastModified = String(Date.now());
    const subscriber = await subscribe(b, lastModified);
    const form = new FormData();
    form.append('fileId', lastModified); // the demo page's one-line change
    form.append(
      'file',
      new Blob(['第一行 first\nsecond line\n'], { type: 'text/plain' }),
      'notes.txt',
    );
    const res = await fetch(`${a.url}/api/upload`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: '上传开始', fileId: lastModified });
    const [complete] = await subscriber.waitForEvents(1, 15_000, 'complete');
    expect(JSON.parse(complete?.data ?? '')).toMatchObject({
      filename: 'notes.txt',
      mime: 'text/plain',
      lines: 2,
      words: 4,
    });
    for (const progress of subscriber.data<Progress>('progress')) {
      expect(progress.percent).toBeGreaterThanOrEqual(0);
      expect(progress.percent).toBeLessThan(100);
    }
    expect(strictlyRising(percents(subscriber))).toBe(true);
  });

  it('reports the pixel dimensions of an image, its id given as a query parameter', async () => {
    const png = makePng(64, 48);
    const subscriber = await subscribe(a, 'picture-1');
    const form = new FormData();
    form.append('file', new Blob([png], { type: 'image/png' }), 'pixel.png');
    const res = await fetch(`${b.url}/api/upload?fileId=picture-1`, { method: 'POST', body: form });
    expect(((await res.json()) as { fileId: string }).fileId).toBe('picture-1');
    const [complete] = await subscriber.waitForEvents(1, 15_000, 'complete');
    expect(JSON.parse(complete?.data ?? '')).toMatchObject({
      mime: 'image/png',
      width: 64,
      height: 48,
      size: png.length,
      sha256: sha256(png),
    });
  });

  it('refuses a file over UPLOAD_MAX_BYTES with 413 FILE_TOO_LARGE and keeps nothing of it', async () => {
    const before = stored();
    // Just over: received up to the limit, then refused, the partial file removed.
    const near = opaqueBytes(maxBytes + 4096);
    const path = scratchFile('too-big.bin', near);
    const subscriber = await subscribe(b, 'too-big-1');
    const answer = await postMultipart(
      `${a.url}/api/upload`,
      [['fileId', 'too-big-1']],
      filePart(path, 'too-big.bin', 'application/octet-stream', near.length),
    );
    expect(answer.status).toBe(413);
    expect(answer.body.error.code).toBe('FILE_TOO_LARGE');
    const [failed] = await subscriber.waitForEvents(1, 10_000, 'failed');
    expect(JSON.parse(failed?.data ?? '')).toMatchObject({
      status: 'failed',
      code: 'FILE_TOO_LARGE',
    });
    expect(stored()).toEqual(before);

    // Far over (by Content-Length): refused before a byte is stored, without reading the body.
    const huge = 256 * MiB;
    const started = Date.now();
    const refused = await postMultipart(`${a.url}/api/upload`, [], {
      filename: 'huge.bin',
      type: 'application/octet-stream',
      size: huge,
      open: () =>
        Readable.from(
          (function* () {
            for (let sent = 0; sent < huge; sent += MiB) yield Buffer.alloc(MiB);
          })(),
        ),
    });
    expect(refused.status).toBe(413);
    expect(refused.body.error.code).toBe('FILE_TOO_LARGE');
    expect(Date.now() - started).toBeLessThan(5000);
    await sleep(200);
    expect(stored()).toEqual(before);
  });

  it('fails a file of an unsupported type: at the gateway by its declared type, in the worker by its content', async () => {
    // Declared as a generic binary (accepted), detected as gzip (not accepted).
    const gz = gzipSync(randomBytes(256 * 1024));
    const initially = stored();
    const byContent = await subscribe(b, 'gz-1');
    const form = new FormData();
    form.append('fileId', 'gz-1');
    form.append('file', new Blob([gz], { type: 'application/octet-stream' }), 'data.bin');
    const res = await fetch(`${a.url}/api/upload`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const [failed] = await byContent.waitForEvents(1, 15_000, 'failed');
    expect(JSON.parse(failed?.data ?? '')).toMatchObject({
      status: 'failed',
      code: 'FILE_TYPE_UNSUPPORTED',
      filename: 'data.bin',
      reason: expect.stringContaining('application/gzip'),
    });
    expect(byContent.events.filter((e) => e.event === 'complete')).toEqual([]);
    // A file that can never be processed is not kept.
    await waitFor(
      () => JSON.stringify(stored()) === JSON.stringify(initially),
      'the refused file to be removed',
    );

    const before = stored();
    const byDeclared = await subscribe(b, 'zip-1');
    const zipForm = new FormData();
    zipForm.append('fileId', 'zip-1');
    zipForm.append('file', new Blob([gz], { type: 'application/zip' }), 'data.zip');
    const refused = await fetch(`${a.url}/api/upload`, { method: 'POST', body: zipForm });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      'FILE_TYPE_UNSUPPORTED',
    );
    const [failedAtGateway] = await byDeclared.waitForEvents(1, 10_000, 'failed');
    expect(JSON.parse(failedAtGateway?.data ?? '')).toMatchObject({
      code: 'FILE_TYPE_UNSUPPORTED',
    });
    expect(stored()).toEqual(before);
  });

  it('keeps concurrent uploads from several clients apart, and never lets two share a file id', async () => {
    const uploads = [...Array(6).keys()].map((i) => ({
      fileId: `client-${i}-${randomBytes(3).toString('hex')}`,
      content: opaqueBytes((1 + (i % 3)) * MiB + i * 1000),
      via: i % 2 ? a : b,
      watch: i % 2 ? b : a,
    }));
    const subscribers = await Promise.all(uploads.map((u) => subscribe(u.watch, u.fileId)));
    const answers = await Promise.all(
      uploads.map((u, i) =>
        postMultipart(
          `${u.via.url}/api/upload`,
          [['fileId', u.fileId]],
          filePart(
            scratchFile(`c${i}`, u.content),
            `c${i}.bin`,
            'application/octet-stream',
            u.content.length,
          ),
        ),
      ),
    );
    answers.forEach((answer, i) => expect(answer.body.fileId).toBe(uploads[i]?.fileId));
    await Promise.all(subscribers.map((s) => s.waitForEvents(1, 60_000, 'complete'))).catch(
      (err: Error) => {
        throw new Error(`${err.message}\nupload worker:\n${worker.output().slice(-4000)}`);
      },
    );
    await sleep(300);
    subscribers.forEach((subscriber, i) => {
      const mine = uploads[i] as (typeof uploads)[number];
      const completes = subscriber.data<Record<string, unknown>>('complete');
      expect(completes).toHaveLength(1);
      expect(completes[0]).toMatchObject({
        fileId: mine.fileId,
        size: mine.content.length,
        sha256: sha256(mine.content),
      });
      for (const p of subscriber.data<Progress>('progress')) {
        if (p.status === 'processing') expect(p.totalBytes).toBe(mine.content.length);
      }
      expect(strictlyRising(percents(subscriber))).toBe(true);
    });

    // Two clients propose the same id at once: one gets it, the other a fresh one.
    const same = `same-${randomBytes(3).toString('hex')}`;
    const twin = () => {
      const form = new FormData();
      form.append('fileId', same);
      form.append('file', new Blob([opaqueBytes(512 * 1024)]), 'twin.bin');
      return fetch(`${a.url}/api/upload`, { method: 'POST', body: form }).then(
        (r) => r.json() as Promise<{ fileId: string }>,
      );
    };
    const [first, second] = await Promise.all([twin(), twin()]);
    const ids = [first.fileId, second.fileId];
    expect(ids).toContain(same);
    expect(new Set(ids).size).toBe(2);
    expect(ids.find((id: string) => id !== same)).toMatch(/^[A-Za-z0-9_-]{22}$/);

    // A malformed id (a path, here) is never used: the answer names the generated one.
    const form = new FormData();
    form.append('fileId', '../../etc/passwd');
    form.append('file', new Blob(['x']), 'x.txt');
    const answer = (await (
      await fetch(`${b.url}/api/upload`, { method: 'POST', body: form })
    ).json()) as { fileId: string };
    expect(answer.fileId).toMatch(/^[A-Za-z0-9_-]{22}$/);
  }, 120_000);

  it.each([
    ['a JSON body', { 'content-type': 'application/json' }, '{"file":"x"}'],
    ['multipart without a boundary', { 'content-type': 'multipart/form-data' }, '--x\r\n'],
    [
      'a broken multipart body',
      { 'content-type': 'multipart/form-data; boundary=zz' },
      '--zz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
    ],
    [
      'a form without a file',
      { 'content-type': 'multipart/form-data; boundary=zz' },
      '--zz\r\nContent-Disposition: form-data; name="fileId"\r\n\r\nabc\r\n--zz--\r\n',
    ],
  ])('refuses %s with 400 UPLOAD_INVALID', async (_what, headers, body) => {
    const res = await fetch(`${a.url}/api/upload`, { method: 'POST', headers, body });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UPLOAD_INVALID');
  });

  it('finishes a job exactly once after its worker is killed mid-job and another starts', async () => {
    await worker.stop(); // this test's workers only
    const slow = await startWorker({ ...shortLock, UPLOAD_READ_BYTES_PER_S: String(MiB) }, workers);
    const content = opaqueBytes(6 * MiB);
    const path = scratchFile('killed.bin', content);
    const subscriber = await subscribe(b, 'killed-1');
    const answer = await postMultipart(
      `${a.url}/api/upload`,
      [['fileId', 'killed-1']],
      filePart(path, 'killed.bin', 'application/octet-stream', content.length),
    );
    expect(answer.status).toBe(200);
    await waitFor(
      () =>
        subscriber
          .data<Progress>('progress')
          .some((p) => p.status === 'processing' && p.percent >= 60),
      'processing to pass 60%',
      20_000,
    );
    await slow.kill();
    const shownBeforeKill = Math.max(...percents(subscriber));
    expect(shownBeforeKill).toBeLessThan(90);

    const fresh = await startWorker(shortLock, workers);
    const [complete] = await subscriber.waitForEvents(1, 30_000, 'complete');
    await sleep(1500); // time for a second complete, were there one
    expect(subscriber.events.filter((e) => e.event === 'complete')).toHaveLength(1);
    expect(JSON.parse(complete?.data ?? '')).toMatchObject({
      fileId: 'killed-1',
      sha256: sha256(content),
    });
    expect(strictlyRising(percents(subscriber))).toBe(true);

    // It really was the same job, picked up again by BullMQ's stalled-job recovery.
    const redis = new Redis(testRedisUrl());
    const queue = new Queue(QUEUE_NAME, {
      connection: redis,
      prefix: uploadKeys(prefix).bullPrefix,
    });
    try {
      const jobs = (await queue.getJobs(['completed'])).filter((j) => j.data.fileId === 'killed-1');
      expect(jobs).toHaveLength(1);
      expect(jobs[0]?.attemptsStarted).toBeGreaterThanOrEqual(2);
      expect(jobs[0]?.returnvalue).toMatchObject({ sha256: sha256(content) });
    } finally {
      await queue.close();
      redis.disconnect();
    }
    worker = fresh;
  }, 180_000);
});

describe('the upload worker', () => {
  it('exits 1 with one line naming REDIS_URL when it has no Redis', () => {
    const result = spawnSync(
      process.execPath,
      [...SOURCE_EXEC_ARGV, 'apps/upload-worker/src/main.ts'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^config: REDIS_URL/);
  });
});

describe('uploads without Redis (npm start)', () => {
  const uploadDir = mkdtempSync(join(tmpdir(), 'streamcast-uploads-mem-'));
  let app: GatewayProcess;
  const clients: SseClient[] = [];

  beforeAll(async () => {
    app = await startGatewayProcess(
      { UPLOAD_DIR: uploadDir, PRODUCERS: 'none' },
      { script: join(ROOT, 'apps', 'standalone', 'src', 'main.ts') },
    );
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await app?.stop();
    rmSync(uploadDir, { recursive: true, force: true });
  });

  it('processes in-process with the same events', async () => {
    const fileId = String(Date.now());
    const client = await SseClient.open(`${app.url}/api/upload-progress/${fileId}`);
    clients.push(client);
    await waitFor(() => client.retries.length > 0, 'the stream to open');
    const text = makeText(3 * MiB);
    const form = new FormData();
    form.append('fileId', fileId);
    form.append('file', new Blob([text.content], { type: 'text/plain' }), 'local.txt');
    const res = await fetch(`${app.url}/api/upload`, { method: 'POST', body: form });
    expect(await res.json()).toEqual({ message: '上传开始', fileId });
    const [complete] = await client.waitForEvents(1, 20_000, 'complete');
    expect(JSON.parse(complete?.data ?? '')).toEqual({
      percent: 100,
      status: 'complete',
      fileId,
      filename: 'local.txt',
      size: text.content.length,
      sha256: sha256(text.content),
      mime: 'text/plain',
      lines: text.lines,
      words: text.words,
    });
    const statuses = [...new Set(client.data<Progress>('progress').map((p) => p.status))];
    expect(statuses).toEqual(['uploading', 'queued', 'processing']);
    expect(strictlyRising(percents(client))).toBe(true);
  });
});

describe('uploads turned off (UPLOADS_ENABLED=false)', () => {
  it('has no POST /api/upload: 404 NOT_FOUND, and streams as usual', async () => {
    const app = await startGatewayProcess({ UPLOADS_ENABLED: 'false' });
    try {
      const form = new FormData();
      form.append('file', new Blob(['hello'], { type: 'text/plain' }), 'a.txt');
      const res = await fetch(`${app.url}/api/upload`, { method: 'POST', body: form });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
      const client = await SseClient.open(`${app.url}/events?topic=after-upload-off`);
      await waitFor(() => client.retries.length > 0, 'the stream to open');
      client.close();
    } finally {
      await app.stop();
    }
  });
});
