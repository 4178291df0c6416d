import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';

/** A file id, as the progress route accepts it: 1-64 of A-Z a-z 0-9 _ - (never a path). */
export const FILE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether a client-proposed file id is well-formed. */
export function isFileId(value: unknown): value is string {
  return typeof value === 'string' && FILE_ID_RE.test(value);
}

/** 128 random bits, URL-safe: 22 characters of A-Z a-z 0-9 _ -. */
export function randomId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The client's file name for display: its last path component, control characters removed, at
 * most 255 characters. It never names anything on disk.
 */
export function cleanFilename(name: string | undefined): string {
  // eslint-disable-next-line no-control-regex
  const base = basename((name ?? '').replace(/\\/g, '/')).replace(/[\u0000-\u001f\u007f]/g, '');
  const trimmed = base.trim().slice(0, 255);
  return trimmed === '' || trimmed === '.' || trimmed === '..' ? 'upload' : trimmed;
}
