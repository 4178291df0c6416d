import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';
import { z } from 'zod';
import { integerOption } from './options';
import { ProducerRuntime } from './runtime';
import type { ProducerDefinition } from './types';

/** Cumulative CPU time since boot, in any unit (ticks from /proc/stat, ms from os.cpus()). */
export interface CpuTimes {
  idle: number;
  total: number;
}

export interface MemoryBytes {
  total: number;
  available: number;
}

const GIB = 1024 ** 3;

/**
 * The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal (guest
 * and guest_nice are already inside user and nice, so they are not added again). Idle time is
 * idle + iowait, as top counts it.
 */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no aggregate cpu line');
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return {
    idle: idle + iowait,
    total: user + nice + system + idle + iowait + irq + softirq + steal,
  };
}

/** MemTotal and MemAvailable of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): MemoryBytes {
  const kb = (field: string): number | undefined => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const total = kb('MemTotal');
  // Kernels before 3.14 have no MemAvailable: free + buffers + page cache is the usual estimate.
  const available =
    kb('MemAvailable') ?? (kb('MemFree') ?? 0) + (kb('Buffers') ?? 0) + (kb('Cached') ?? 0);
  if (total === undefined) throw new Error('/proc/meminfo has no MemTotal');
  return { total, available };
}

/** Busy share of the CPU time between two samples, 0-100 with one decimal. */
export function cpuUsage(prev: CpuTimes, next: CpuTimes): number {
  const total = next.total - prev.total;
  if (total <= 0) return 0;
  const busy = total - (next.idle - prev.idle);
  return Math.round(Math.min(100, Math.max(0, (busy / total) * 100)) * 10) / 10;
}

/** The seed's memoryUpdate: used (GB, 2-decimal string), total (GB), percentUsed (integer). */
export function memoryFigures(mem: MemoryBytes): {
  used: string;
  total: number;
  percentUsed: number;
} {
  const used = Math.max(0, mem.total - mem.available);
  return {
    used: (used / GIB).toFixed(2),
    total: Math.round((mem.total / GIB) * 100) / 100,
    percentUsed: Math.round((used / mem.total) * 100),
  };
}

function cpuTimesFromOs(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/** Where the figures come from: /proc on Linux, `os` elsewhere. Injectable for tests. */
export interface SystemSource {
  cpuTimes(): Promise<CpuTimes>;
  /** Synchronous, for the baseline taken when the producer starts. */
  cpuTimesSync(): CpuTimes;
  memory(): Promise<MemoryBytes>;
}

export const hostSource: SystemSource = {
  async cpuTimes() {
    try {
      return parseProcStat(await readFile('/proc/stat', 'utf8'));
    } catch {
      return cpuTimesFromOs();
    }
  },
  cpuTimesSync() {
    try {
      return parseProcStat(readFileSync('/proc/stat', 'utf8'));
    } catch {
      return cpuTimesFromOs();
    }
  },
  async memory() {
    try {
      return parseMeminfo(await readFile('/proc/meminfo', 'utf8'));
    } catch {
      return { total: totalmem(), available: freemem() };
    }
  },
};

export const systemOptions = z
  .object({
    intervalMs: integerOption(
      'time between samples (CPU usage is measured over it)',
      2000,
      100,
      3_600_000,
    ),
  })
  .strict();

/**
 * Real figures of the host: CPU usage over the last interval (from /proc/stat deltas, or
 * os.cpus() where there is no /proc), and memory used = MemTotal - MemAvailable. GB here are
 * GiB (1024³ bytes), as `free -g` counts them. The first sample goes out one interval after
 * start: usage needs two readings.
 */
export function createSystemProducer(
  source: SystemSource = hostSource,
): ProducerDefinition<typeof systemOptions> {
  return {
    name: 'system',
    description:
      "this host's real CPU and memory: `cpuUpdate` ({usage}) and `memoryUpdate` ({used, total, percentUsed}) on `system/monitoring`",
    options: systemOptions,
    start(publisher, options, context) {
      const runtime = new ProducerRuntime('system', publisher, context);
      let prev = source.cpuTimesSync();
      runtime.every(options.intervalMs, async () => {
        const [next, memory] = await Promise.all([source.cpuTimes(), source.memory()]);
        const usage = cpuUsage(prev, next);
        prev = next;
        return [
          { topic: 'system/monitoring', event: 'cpuUpdate', data: { usage } },
          { topic: 'system/monitoring', event: 'memoryUpdate', data: memoryFigures(memory) },
        ];
      });
      return runtime;
    },
  };
}

export const systemProducer = createSystemProducer();
