import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { withDeadline } from '@streamcast/loadtest';

/**
 * Process plumbing for the benchmarks: CPU pinning, CPU time and RSS from /proc, and one
 * cleanup list so every process a run started is stopped, whatever happens.
 */

let tasksetPath: string | null | undefined;

/** taskset's path, or null when it is missing or the machine has a single core. */
export function taskset(): string | null {
  if (tasksetPath === undefined) {
    const found = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' });
    const path = found.status === 0 ? found.stdout.trim() : '';
    tasksetPath = path && cpus().length >= 2 ? path : null;
  }
  return tasksetPath;
}

/**
 * Pins every thread of `pid` to `core`. Threads created afterwards inherit it from their
 * creator, and so do child processes. Returns false when pinning is not available.
 */
export function pin(pid: number, core: number): boolean {
  const bin = taskset();
  if (!bin) return false;
  execFileSync(bin, ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
  return true;
}

/**
 * The open-file limit child processes will run with: Node raises its soft limit to the hard
 * one at start, and children inherit the hard one.
 */
export function openFileLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
    return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
  } catch {
    return Infinity;
  }
}

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux we care about

/** CPU seconds (user + system) used so far by `pid`, or NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; count fields after its closing paren.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Resident set size of `pid` in bytes (VmRSS), or NaN if it is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds used so far by all of `pids` (this process included, if listed). */
export function processesCpuSeconds(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    const s = pid === process.pid ? ownCpuSeconds() : cpuSeconds(pid);
    if (Number.isFinite(s)) total += s;
  }
  return total;
}

/** Measures a CPU share over an interval (1.0 = one core busy) from a CPU-seconds counter. */
export class CpuMeter {
  private startCpu = 0;
  private startAt = 0;

  constructor(private readonly sample: () => number) {}

  start(): void {
    this.startCpu = this.sample();
    this.startAt = performance.now();
  }

  /** Share of one core used since start(). */
  stop(): number {
    const seconds = (performance.now() - this.startAt) / 1000;
    return seconds > 0 ? (this.sample() - this.startCpu) / seconds : NaN;
  }
}

/** CPU seconds the whole machine spent busy (user, nice, system, irq, softirq). */
export function machineCpuSeconds(): number {
  return busySeconds('cpu');
}

/** CPU seconds core `core` spent busy, as machineCpuSeconds counts them. */
export function coreCpuSeconds(core: number): number {
  return busySeconds(`cpu${core}`);
}

/** The busy seconds of the /proc/stat line named `name` (`cpu`: all cores), NaN if none. */
function busySeconds(name: string): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${name} `));
    if (!line) return NaN;
    const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1, 8).map(Number);
    return (
      ((user ?? NaN) + (nice ?? NaN) + (system ?? NaN) + (irq ?? NaN) + (softirq ?? NaN)) /
      CLOCK_TICKS
    );
  } catch {
    return NaN;
  }
}

function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

type Cleanup = { name: string; run: () => Promise<void>; kill: () => void };
const cleanups: Cleanup[] = [];

/**
 * Registers how to stop something this run started: `run` gracefully (awaited by
 * stopEverything), `kill` synchronously as the last resort when the runner itself exits.
 * Returns a function that stops it now and unregisters it.
 */
export function onCleanup(
  name: string,
  run: () => Promise<void>,
  kill: () => void,
): () => Promise<void> {
  const entry: Cleanup = { name, run, kill };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i < 0) return;
    cleanups.splice(i, 1);
    await withDeadline(entry.run(), 10_000, `stopping ${name}`).catch(() => entry.kill());
  };
}

/** Stops everything still registered, newest first. */
export async function stopEverything(): Promise<void> {
  while (cleanups.length > 0) {
    const entry = cleanups.pop() as Cleanup;
    try {
      await withDeadline(entry.run(), 10_000, `stopping ${entry.name}`);
    } catch {
      entry.kill();
    }
  }
}

let installed = false;

/**
 * Makes sure nothing outlives the runner: signals stop everything and exit; at exit whatever is
 * left is killed synchronously.
 */
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    for (const entry of cleanups.splice(0)) {
      try {
        entry.kill();
      } catch {
        // already gone
      }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping every process it started\n`);
      void stopEverything().finally(() => process.exit(130));
    });
  }
}
