import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Removes stored uploads (`*.upload`) last written more than `retentionS` seconds ago. */
export async function sweepUploads(
  dir: string,
  retentionS: number,
  now = Date.now(),
): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.endsWith('.upload')) continue;
    const path = join(dir, name);
    try {
      if ((await stat(path)).mtimeMs < now - retentionS * 1000) {
        await rm(path, { force: true });
        removed++;
      }
    } catch {
      // gone meanwhile (another sweeper, a failed job)
    }
  }
  return removed;
}

export interface Sweeper {
  stop(): void;
}

/**
 * Sweeps every half retention (1 s to 60 s) for as long as the process runs: completed files
 * (and, through `also`, job records) go once they are older than the retention. Several
 * processes may sweep one directory.
 */
export function startSweeper(
  dir: string,
  retentionS: number,
  also?: () => Promise<unknown>,
  onError?: (err: unknown) => void,
): Sweeper {
  const everyMs = Math.min(60_000, Math.max(1000, (retentionS * 1000) / 2));
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    Promise.all([sweepUploads(dir, retentionS), also?.()])
      .catch((err) => onError?.(err))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
