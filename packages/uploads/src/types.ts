/** What the gateway hands a worker for one received file (the BullMQ job's data). */
export interface UploadJobData {
  /** Random id of the job; also the file's name in the upload directory (never client input). */
  jobId: string;
  /** Names the progress topic `uploads/<fileId>`. */
  fileId: string;
  /** The client's file name, cleaned, for display only (`complete.filename`). */
  filename: string;
  /** The media type the client declared for the file part. */
  declaredType: string;
  /** Bytes received and stored. */
  size: number;
  /** When the gateway finished receiving it (ms since the epoch). */
  receivedAt: number;
}

/** What processing learns about a file; `complete` carries these beside `filename`. */
export interface FileFacts {
  size: number;
  /** Hex SHA-256 of the content. */
  sha256: string;
  /** The media type detected from the content (magic numbers), not the declared one. */
  mime: string;
  /** Text only: newline-separated lines (a last line without a newline counts). */
  lines?: number;
  /** Text only: runs of non-whitespace, as `wc -w`. */
  words?: number;
  /** Images only: pixel dimensions. */
  width?: number;
  height?: number;
}

/** Publishes one event (topic, event type, data); resolves once stored. */
export type PublishFn = (topic: string, event: string, data: unknown) => Promise<unknown>;

/** Settings shared by receiving and processing (from `uploadEnv` of `@streamcast/config`). */
export interface UploadSettings {
  /** Where received files are stored, and where workers read them. */
  dir: string;
  /** Largest file accepted, in bytes. */
  maxBytes: number;
  /** Accepted media types: `type/subtype`, `type/*` or `*\/*`. */
  types: readonly string[];
  /** Completed files and job records are removed after this many seconds. */
  retentionS: number;
  /** Attempts per job (the first one included) before a transient error fails it. */
  attempts: number;
  /** Jobs processed at once per worker process (or in-process). */
  concurrency: number;
  /** BullMQ job lock: a worker silent this long is taken for dead and its job runs again. */
  lockMs: number;
  /** Cap on how fast one job reads its file; 0 = none. */
  readBytesPerS: number;
}

/** The topic of a file id's progress events. */
export function uploadTopic(fileId: string): string {
  return `uploads/${fileId}`;
}
