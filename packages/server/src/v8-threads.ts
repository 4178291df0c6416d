import { readFileSync, readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Lowers the scheduling priority (raises the nice value) of V8's worker threads, the pool that
 * compiles hot functions with Maglev and TurboFan and does the concurrent parts of garbage
 * collection, to `nice` (1–19; 0 leaves them alone). A gateway given one core runs them on the
 * core its event loop needs: in its first seconds of traffic, compilations took the loop's
 * time while events waited (the many-topics benchmark's first second). At a lower priority they
 * run in the loop's idle time instead. Linux only (per-thread priorities through
 * /proc/self/task) and Node 22 or later (which name the threads); elsewhere, or if a thread
 * cannot be changed, nothing happens. Returns how many threads were changed.
 */
export function lowerV8WorkerPriority(nice: number): number {
  if (nice <= 0 || process.platform !== 'linux') return 0;
  let changed = 0;
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  for (const tid of tasks) {
    try {
      // Node 22 and later name them (24: V8Worker, 26: node-V8Worker); Node 20 names no thread.
      if (!readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim().endsWith('V8Worker'))
        continue;
      // On Linux, setpriority() on a thread id changes that thread alone.
      setPriority(Number(tid), nice);
      changed++;
    } catch {
      // gone, or not ours to change: leave it
    }
  }
  return changed;
}
