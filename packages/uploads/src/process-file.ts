import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { mediaTypeMatcher, normalizeMediaType } from './media-types';
import type { FileFacts } from './types';

/*
 * file-type and image-size are loaded by the first file processed: a gateway that queues uploads
 * for workers (with Redis) never processes one, and they are ~8 MB of its resident memory.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- loaded on first use (see above) */
const fileType = (): typeof import('file-type') =>
  require('file-type') as typeof import('file-type');
const imageSizes = (): typeof import('image-size') =>
  require('image-size') as typeof import('image-size');
const imageSizesFromFile = (): typeof import('image-size/fromFile') =>
  require('image-size/fromFile') as typeof import('image-size/fromFile');
/* eslint-enable @typescript-eslint/no-require-imports */

/** Why a file can never be processed: retrying would not help. */
export type PermanentReason = 'FILE_TYPE_UNSUPPORTED' | 'FILE_CORRUPT' | 'FILE_MISSING';

/** A failure that retrying cannot cure (unsupported or corrupt file): the job fails at once. */
export class PermanentUploadError extends Error {
  constructor(
    readonly code: PermanentReason,
    message: string,
  ) {
    super(message);
    this.name = 'PermanentUploadError';
  }
}

export interface ProcessFileOptions {
  /** Called after each chunk with the bytes read so far and the file's size. Awaited. */
  onProgress?: (bytesRead: number, size: number) => void | Promise<void>;
  /** Media types accepted, by detected type (UPLOAD_TYPES). @default every type */
  types?: readonly string[];
  /** The type the client declared; names text files (`text/csv`) and catches mislabelled ones. */
  declaredType?: string;
  /** Read at most this many bytes a second; 0 = no cap. @default 0 */
  readBytesPerS?: number;
  /** Stops reading (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Bytes read at a time. @default 262144 */
  chunkBytes?: number;
}

/** Types that are text underneath: named as declared when the content is valid UTF-8. */
const TEXT_LIKE =
  /^(text\/|application\/(json|xml|javascript|x-ndjson|ld\+json)$|image\/svg\+xml$)/;
/** Declared types with magic numbers: content that file-type does not recognise as one is corrupt. */
const BINARY_FAMILIES = /^(image\/(?!svg\+xml)|application\/pdf$)/;

/**
 * Reads a stored upload once, start to end: size, SHA-256, media type from the content
 * (`file-type`'s magic numbers; valid UTF-8 without NUL is text), and the facts of its kind:
 * line and word counts for text, pixel dimensions for images. Throws PermanentUploadError for a
 * type outside `types`, a file whose content contradicts its declared binary type, an image
 * whose dimensions cannot be read, or a file that is gone; anything else (I/O) is transient.
 */
export async function processFile(
  path: string,
  options: ProcessFileOptions = {},
): Promise<FileFacts> {
  const accepted = options.types ? mediaTypeMatcher(options.types) : () => true;
  const declared = normalizeMediaType(options.declaredType);
  const rate = options.readBytesPerS ?? 0;
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PermanentUploadError(
        'FILE_MISSING',
        'the stored file is gone (removed after UPLOAD_RETENTION_S, or UPLOAD_DIR differs between gateway and worker)',
      );
    }
    throw err;
  }
  try {
    const size = (await handle.stat()).size;
    const buffer = Buffer.allocUnsafe(Math.max(4096, options.chunkBytes ?? 256 * 1024));
    const hash = createHash('sha256');
    const text = new TextCounter();
    let head: Buffer | undefined;
    let detected: string | undefined;
    let position = 0;
    const started = Date.now();
    for (;;) {
      options.signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      if (!head) {
        // The first chunk decides the type; a type we refuse is refused before reading on.
        head = Buffer.from(chunk);
        detected = (await fileType().fromBuffer(head))?.mime;
        if (detected) checkDetected(detected, declared, accepted, options.types);
        else text.start();
      }
      hash.update(chunk);
      if (text.active) text.add(chunk);
      position += bytesRead;
      await options.onProgress?.(position, size);
      if (rate > 0) {
        const due = started + (position / rate) * 1000 - Date.now();
        if (due > 0) await sleep(due, undefined, { signal: options.signal });
      }
    }
    if (!head) text.start(); // an empty file is empty text
    const facts: FileFacts = {
      size: position,
      sha256: hash.digest('hex'),
      mime: 'application/octet-stream',
    };
    if (detected) {
      facts.mime = detected;
    } else if (text.finish()) {
      facts.mime = TEXT_LIKE.test(declared) ? declared : 'text/plain';
      facts.lines = text.lines;
      facts.words = text.words;
    }
    if (!detected) checkUndetected(facts.mime, declared, accepted, options.types);
    if (facts.mime.startsWith('image/')) {
      const dimensions = await readDimensions(path, head ?? Buffer.alloc(0), position);
      if (dimensions) {
        facts.width = dimensions.width;
        facts.height = dimensions.height;
      }
    }
    return facts;
  } finally {
    await handle.close();
  }
}

function refuseType(mime: string, types: readonly string[] | undefined): PermanentUploadError {
  return new PermanentUploadError(
    'FILE_TYPE_UNSUPPORTED',
    `files of type ${mime} are not accepted (accepted: ${(types ?? []).join(', ')})`,
  );
}

function checkDetected(
  detected: string,
  declared: string,
  accepted: (mime: string) => boolean,
  types: readonly string[] | undefined,
): void {
  if (BINARY_FAMILIES.test(declared) && family(detected) !== family(declared)) {
    throw new PermanentUploadError(
      'FILE_CORRUPT',
      `declared ${declared}, but the content is ${detected}`,
    );
  }
  if (!accepted(detected)) throw refuseType(detected, types);
}

function checkUndetected(
  mime: string,
  declared: string,
  accepted: (mime: string) => boolean,
  types: readonly string[] | undefined,
): void {
  if (BINARY_FAMILIES.test(declared)) {
    throw new PermanentUploadError(
      'FILE_CORRUPT',
      `declared ${declared}, but the content is not ${declared === 'application/pdf' ? 'a PDF' : 'an image'} (${mime})`,
    );
  }
  if (!accepted(mime)) throw refuseType(mime, types);
}

function family(mime: string): string {
  return mime === 'application/pdf' ? mime : mime.slice(0, mime.indexOf('/'));
}

/** Dimensions from the head of the file, else from the whole file; undefined for formats image-size does not know. */
async function readDimensions(
  path: string,
  head: Buffer,
  size: number,
): Promise<{ width: number; height: number } | undefined> {
  let result: { width?: number; height?: number };
  try {
    try {
      result = imageSizes().imageSize(head);
    } catch (err) {
      // JPEG dimensions may sit after a large EXIF block, beyond the first chunk.
      if (head.length >= size || isUnsupported(err)) throw err;
      result = await imageSizesFromFile().imageSizeFromFile(path);
    }
  } catch (err) {
    if (isUnsupported(err)) return undefined;
    throw new PermanentUploadError(
      'FILE_CORRUPT',
      `cannot read the image's dimensions: ${(err as Error).message}`,
    );
  }
  if (!result.width || !result.height) {
    throw new PermanentUploadError('FILE_CORRUPT', "cannot read the image's dimensions");
  }
  return { width: result.width, height: result.height };
}

function isUnsupported(err: unknown): boolean {
  return err instanceof TypeError && /^(unsupported|disabled) file type/.test(err.message);
}

/**
 * Counts lines and words (`wc`: words are runs of bytes other than ASCII whitespace) while
 * checking that the content is UTF-8 without NUL; gives up (not text) at the first bad byte.
 */
class TextCounter {
  active = false;
  lines = 0;
  words = 0;
  private newlines = 0;
  private inWord = false;
  private last = -1;
  /** The start of a character split between two chunks. */
  private carry: Buffer = Buffer.alloc(0);

  start(): void {
    this.active = true;
  }

  add(chunk: Buffer): void {
    if (chunk.includes(0) || !this.validUtf8(chunk)) {
      this.active = false;
      return;
    }
    let words = this.words;
    let newlines = this.newlines;
    let inWord = this.inWord;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (b === 32 || (b >= 9 && b <= 13)) {
        if (b === 10) newlines++;
        inWord = false;
      } else if (!inWord) {
        words++;
        inWord = true;
      }
    }
    this.words = words;
    this.newlines = newlines;
    this.inWord = inWord;
    this.last = chunk[chunk.length - 1] ?? this.last;
  }

  /** Whether the whole content was text; sets `lines`. */
  finish(): boolean {
    // An incomplete sequence at the very end is not UTF-8.
    if (!this.active || this.carry.length > 0) return false;
    this.lines = this.newlines + (this.last !== -1 && this.last !== 10 ? 1 : 0);
    return true;
  }

  /** UTF-8 checks in native code (`isUtf8`), a character split across chunks carried over. */
  private validUtf8(chunk: Buffer): boolean {
    let body = chunk;
    if (this.carry.length > 0) {
      const need = sequenceLength(this.carry[0] as number) - this.carry.length;
      const joined = Buffer.concat([this.carry, chunk.subarray(0, need)]);
      if (joined.length < need + this.carry.length) {
        this.carry = joined; // a chunk shorter than the rest of the character
        return true;
      }
      if (!isUtf8(joined)) return false;
      body = chunk.subarray(need);
    }
    const cut = incompleteTail(body);
    this.carry = Buffer.from(body.subarray(cut));
    return isUtf8(body.subarray(0, cut));
  }
}

/** Bytes of the UTF-8 sequence that `lead` starts (1 for anything isUtf8 will refuse anyway). */
function sequenceLength(lead: number): number {
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  if (lead >= 0xc0) return 2;
  return 1;
}

/** Where a multi-byte sequence cut off by the end of `buf` starts (buf.length if none is). */
function incompleteTail(buf: Buffer): number {
  let i = buf.length - 1;
  while (i >= 0 && buf.length - i < 4 && ((buf[i] as number) & 0xc0) === 0x80) i--;
  if (i < 0) return buf.length;
  return buf.length - i < sequenceLength(buf[i] as number) ? i : buf.length;
}
