/**
 * One percentage for the whole job, so the seed's progress bar (which reads only `percent`)
 * never moves back: receiving fills 0-49, `queued` is 50, processing fills 51-99, `complete`
 * is 100. Each event also carries the bytes of its own phase (`bytes` of `totalBytes`).
 */
export const QUEUED_PERCENT = 50;

/** Percent shown while `bytes` of a body of `total` bytes have arrived; undefined if unknown. */
export function uploadPercent(bytes: number, total: number): number | undefined {
  if (!Number.isFinite(total) || total <= 0) return undefined;
  return Math.min(QUEUED_PERCENT - 1, Math.floor((bytes / total) * QUEUED_PERCENT));
}

/** Percent shown once `bytes` of a `size`-byte file have been processed. */
export function processingPercent(bytes: number, size: number): number {
  if (size <= 0) return 99;
  return Math.min(99, QUEUED_PERCENT + Math.floor((bytes / size) * (100 - QUEUED_PERCENT)));
}
