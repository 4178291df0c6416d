import { createWriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fastifyMultipart, { type MultipartFile } from '@fastify/multipart';
import { redisConnection, type RedisLocation } from '@streamcast/engine-redis';
import {
  FileTooLarge,
  FileTypeUnsupported,
  Internal,
  NotReady,
  UploadInvalid,
} from '@streamcast/protocol';
import type { FastifyInstance } from 'fastify';
// Types app.streamcast (the plugin this route is registered after).
import type {} from '@streamcast/fastify';
import { BullUploadQueue } from './bullmq-uploads';
import { cleanFilename, isFileId, randomId } from './file-id';
import { InProcessUploads, type LogLike, type UploadBackend } from './in-process-uploads';
import { mediaTypeMatcher, normalizeMediaType } from './media-types';
import { QUEUED_PERCENT, uploadPercent } from './progress';
import { uploadPath } from './run-upload-job';
import { uploadTopic, type PublishFn, type UploadJobData, type UploadSettings } from './types';

/** The environment fields uploads read (`uploadEnv` and `engineEnv` of `@streamcast/config`). */
export interface UploadEnv extends RedisLocation {
  REDIS_PREFIX: string;
  UPLOAD_DIR: string;
  UPLOAD_MAX_BYTES: number;
  UPLOAD_TYPES: readonly string[];
  UPLOAD_RETENTION_S: number;
  UPLOAD_ATTEMPTS: number;
  UPLOAD_CONCURRENCY: number;
  UPLOAD_LOCK_MS: number;
  UPLOAD_READ_BYTES_PER_S: number;
}

export function uploadSettings(env: UploadEnv): UploadSettings {
  return {
    dir: env.UPLOAD_DIR,
    maxBytes: env.UPLOAD_MAX_BYTES,
    types: env.UPLOAD_TYPES,
    retentionS: env.UPLOAD_RETENTION_S,
    attempts: env.UPLOAD_ATTEMPTS,
    concurrency: env.UPLOAD_CONCURRENCY,
    lockMs: env.UPLOAD_LOCK_MS,
    readBytesPerS: env.UPLOAD_READ_BYTES_PER_S,
  };
}

export interface UploadRoutesOptions {
  /** The gateway's configuration: Redis (if any), key prefix, upload settings. */
  config: UploadEnv;
  /** Where jobs go. @default BullMQ when `config` names a Redis, else in this process */
  backend?: UploadBackend;
  /** Publishes progress. @default the streamcast plugin's `app.streamcast.publish` */
  publish?: PublishFn;
}

interface UploadUnderWay {
  jobId: string;
  fileId: string;
  filename: string;
  /** Set once its file is being stored. */
  path?: string;
}

/** Room for the multipart framing and the `fileId` field around the file itself. */
const FRAMING_BYTES = 64 * 1024;

/**
 * `POST /api/upload` (API.md, "Routes that the seed's pages use"): receives one file, streamed to
 * `UPLOAD_DIR` under a random name, publishing `progress` (`uploading`) on `uploads/<fileId>` as
 * it arrives, then queues it (`queued`) and answers `{"message", "fileId"}`. The file id is the
 * client's (`fileId` field before the file, or `?fileId=`) when well-formed and not in use by
 * another upload, else a random one. Register after the `streamcast` plugin. Encapsulated: the
 * multipart parser serves this route only.
 */
export async function uploadRoutes(
  app: FastifyInstance,
  options: UploadRoutesOptions,
): Promise<void> {
  const settings = uploadSettings(options.config);
  const publish: PublishFn =
    options.publish ?? ((topic, event, data) => app.streamcast.publish(topic, event, data));
  const log = app.log.child({ component: 'uploads' });
  await mkdir(settings.dir, { recursive: true, mode: 0o700 });
  let backend = options.backend;
  if (!backend) {
    const connection = redisConnection(options.config);
    backend = connection
      ? new BullUploadQueue({ connection, keyPrefix: options.config.REDIS_PREFIX, settings })
      : new InProcessUploads(settings, publish, log);
    const owned = backend;
    app.addHook('onClose', () => owned.close());
  }
  const jobs = backend;
  const accepted = mediaTypeMatcher(settings.types);

  await app.register(fastifyMultipart, {
    limits: {
      fileSize: settings.maxBytes,
      files: 1,
      fields: 8,
      fieldSize: 1024,
      parts: 10,
      headerPairs: 20,
    },
  });
  // Any other body reaches the handler, which refuses it with UPLOAD_INVALID.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.post('/api/upload', async (request) => {
    if (!request.isMultipart()) throw new UploadInvalid('the body is not multipart/form-data');
    const declaredLength = Number(request.headers['content-length']);
    let proposed = (request.query as Record<string, unknown>).fileId;
    /** The upload under way, once its file part began: its ids, then its stored file. */
    let current: UploadUnderWay | undefined;
    let job: UploadJobData | undefined;
    const publishQuiet = (topic: string, event: string, data: unknown) =>
      publish(topic, event, data).catch((err: unknown) =>
        log.debug({ err, topic }, 'upload event not published'),
      );
    /** Undoes the upload under way, tells its subscribers why, and returns `err` to throw. */
    const refuse = async <E extends Error & { code: string }>(err: E): Promise<E> => {
      const upload = current;
      current = undefined;
      if (upload) {
        if (upload.path) await rm(upload.path, { force: true }).catch(() => undefined);
        await publishQuiet(uploadTopic(upload.fileId), 'failed', {
          status: 'failed',
          fileId: upload.fileId,
          filename: upload.filename,
          code: err.code,
          reason: err.message,
        });
        await jobs.store.release(upload.fileId, upload.jobId).catch(() => undefined);
      }
      discardRest(request.raw);
      return err;
    };

    try {
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          if (part.fieldname === 'fileId' && !current) proposed = part.value;
          continue;
        }
        if (current || part.fieldname !== 'file') {
          part.file.resume();
          continue;
        }
        const jobId = randomId();
        const fileId = await claimFileId(jobs, proposed, jobId, settings.retentionS).catch(
          async (err: unknown) => {
            log.warn({ err }, 'cannot reserve a file id');
            throw await refuse(new NotReady('cannot reserve a file id'));
          },
        );
        const upload: UploadUnderWay = { jobId, fileId, filename: cleanFilename(part.filename) };
        current = upload;
        const type = normalizeMediaType(part.mimetype);
        if (!accepted(type))
          throw await refuse(new FileTypeUnsupported(type, settings.types.join(', ')));
        // Content-Length already says too much: refuse before storing a byte.
        if (declaredLength > settings.maxBytes + FRAMING_BYTES)
          throw await refuse(new FileTooLarge(settings.maxBytes));
        upload.path = uploadPath(settings.dir, jobId);
        const size = await receive(part, upload.path, declaredLength, (percent, bytes) =>
          publishQuiet(uploadTopic(fileId), 'progress', {
            percent,
            status: 'uploading',
            bytes,
            totalBytes: declaredLength,
          }),
        );
        if (part.file.truncated) throw await refuse(new FileTooLarge(settings.maxBytes));
        job = {
          jobId,
          fileId,
          filename: upload.filename,
          declaredType: type,
          size,
          receivedAt: Date.now(),
        };
      }
    } catch (err) {
      // A refusal above, a client gone mid-upload, or a malformed body.
      throw current
        ? await refuse(mapMultipartError(err, settings.maxBytes, log))
        : mapMultipartError(err, settings.maxBytes, log);
    }
    if (!job || !current) throw new UploadInvalid('no "file" part');

    await publishQuiet(uploadTopic(job.fileId), 'progress', {
      percent: QUEUED_PERCENT,
      status: 'queued',
      bytes: job.size,
      totalBytes: job.size,
    });
    try {
      await jobs.enqueue(job);
    } catch (err) {
      log.warn({ err, fileId: job.fileId }, 'cannot queue upload');
      throw await refuse(new NotReady('cannot queue the upload'));
    }
    log.info(
      { fileId: job.fileId, jobId: job.jobId, size: job.size, type: job.declaredType },
      'upload received',
    );
    // The seed's answer ("upload started"), with the id progress is published under.
    return { message: '上传开始', fileId: job.fileId };
  });
}

/**
 * The client's id if well-formed and free (reserved for this job until it ends, or `ttlS`), else
 * a random one: two uploads never share a progress topic.
 */
async function claimFileId(
  backend: UploadBackend,
  proposed: unknown,
  jobId: string,
  ttlS: number,
): Promise<string> {
  if (isFileId(proposed) && (await backend.store.reserve(proposed, jobId, ttlS))) return proposed;
  for (;;) {
    const fileId = randomId();
    if (await backend.store.reserve(fileId, jobId, ttlS)) return fileId;
  }
}

/** Streams the file part to `path` (never buffered whole), reporting each new percent. */
async function receive(
  part: MultipartFile,
  path: string,
  declaredLength: number,
  onPercent: (percent: number, bytes: number) => unknown,
): Promise<number> {
  let bytes = 0;
  let shown = -1;
  // Published one after another, in order, without holding up the bytes.
  let published: Promise<unknown> = Promise.resolve();
  const report = (): void => {
    const percent = uploadPercent(bytes, declaredLength);
    if (percent !== undefined && percent > shown) {
      shown = percent;
      const at = bytes;
      published = published.then(() => onPercent(percent, at));
    }
  };
  report();
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      report();
      callback(null, chunk);
    },
  });
  // 'wx': the name is new (random); never follow or overwrite anything already there.
  try {
    await pipeline(part.file, counter, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
  } finally {
    await published;
  }
  return bytes;
}

/** How long a refused upload's remaining body is read and dropped before the connection is cut. */
const LINGER_MS = 5000;

/**
 * Reads and drops what is left of a refused request's body, so the client (still sending) gets
 * the answer: closing a socket with unread input makes the kernel send a reset, which may destroy
 * the answer before the client reads it. A client that keeps sending is cut off after LINGER_MS.
 */
function discardRest(raw: IncomingMessage): void {
  if (raw.readableEnded || raw.destroyed) return;
  raw.unpipe();
  raw.resume();
  const timer = setTimeout(() => raw.socket?.destroy(), LINGER_MS);
  timer.unref();
  raw.once('end', () => clearTimeout(timer));
  raw.once('close', () => clearTimeout(timer));
}

/** Any error of receiving in the API's terms (an error with a stable `code`). */
function mapMultipartError(err: unknown, maxBytes: number, log: LogLike): Error & { code: string } {
  const { code, statusCode, syscall } = err as {
    code?: unknown;
    statusCode?: unknown;
    syscall?: unknown;
  };
  if (code === 'FST_REQ_FILE_TOO_LARGE') return new FileTooLarge(maxBytes);
  if (typeof statusCode === 'number' && typeof code === 'string' && !code.startsWith('FST_')) {
    return err as Error & { code: string }; // one of ours already
  }
  if (typeof syscall === 'string') {
    // The upload directory refused a write (EACCES, ENOSPC…): ours to fix, not the client's.
    log.error({ err }, 'cannot store an upload');
    return new Internal();
  }
  // Limits, prototype keys, a broken or truncated body, a client gone mid-upload.
  return new UploadInvalid(err instanceof Error ? err.message : String(err));
}
