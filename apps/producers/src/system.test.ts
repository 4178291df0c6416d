import { readFileSync } from 'node:fs';
import { validateEvent } from '@streamcast/events';
import { waitFor } from '@streamcast/testing';
import { startProducer, type Producer } from './index';
import { cpuUsage, memoryFigures, parseMeminfo, parseProcStat } from './system';
import { RecordingPublisher, type Recorded } from './test-support';

const hasProc = (() => {
  try {
    readFileSync('/proc/stat');
    return true;
  } catch {
    return false;
  }
})();

/** The test's own reading of /proc, independent of the producer's code. */
function procCpu(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string)
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

function procMemoryGb(): { total: number; used: number } {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(text)?.[1]);
  return {
    total: kb('MemTotal') / 1024 ** 2,
    used: (kb('MemTotal') - kb('MemAvailable')) / 1024 ** 2,
  };
}

describe('system monitor', () => {
  it('parses /proc/stat and /proc/meminfo as top and free do', () => {
    const stat = 'cpu  100 10 50 800 40 5 5 0 7 0\ncpu0 50 5 25 400 20 2 3 0 3 0\nintr 1 2 3\n';
    expect(parseProcStat(stat)).toEqual({ idle: 840, total: 1010 });
    const later = parseProcStat('cpu  160 10 70 900 60 5 5 0 0 0\n');
    // 80 busy of 200 in between
    expect(cpuUsage(parseProcStat(stat), later)).toBe(40);
    expect(cpuUsage(later, later)).toBe(0);

    const meminfo =
      'MemTotal:       16777216 kB\nMemFree:         1048576 kB\nMemAvailable:    4194304 kB\n';
    expect(parseMeminfo(meminfo)).toEqual({ total: 16 * 1024 ** 3, available: 4 * 1024 ** 3 });
    expect(memoryFigures(parseMeminfo(meminfo))).toEqual({
      used: '12.00',
      total: 16,
      percentUsed: 75,
    });
    // Before Linux 3.14 there is no MemAvailable.
    const old = 'MemTotal: 2097152 kB\nMemFree: 524288 kB\nBuffers: 0 kB\nCached: 524288 kB\n';
    expect(memoryFigures(parseMeminfo(old))).toEqual({ used: '1.00', total: 2, percentUsed: 50 });
  });

  (hasProc ? describe : describe.skip)('on this host', () => {
    let producer: Producer | undefined;
    afterEach(async () => {
      await producer?.stop();
    });

    it('reports the CPU usage and memory that /proc shows, within tolerance', async () => {
      const publisher = new RecordingPublisher();
      const checks: Array<() => void> = [];
      let before = procCpu();
      publisher.onRecord = (r: Recorded) => {
        if (r.event === 'cpuUpdate') {
          // The producer measured over (about) the same window: from its previous reading to now.
          const after = procCpu();
          const expected = ((after.busy - before.busy) / (after.total - before.total)) * 100;
          before = after;
          const { usage } = r.data as { usage: number };
          checks.push(() => expect(Math.abs(usage - expected)).toBeLessThan(10));
        } else {
          const mem = procMemoryGb();
          const data = r.data as { used: string; total: number; percentUsed: number };
          checks.push(() => {
            expect(data.total).toBeCloseTo(mem.total, 1);
            expect(Math.abs(Number(data.used) - mem.used)).toBeLessThan(0.25);
            expect(Math.abs(data.percentUsed - (mem.used / mem.total) * 100)).toBeLessThan(2);
          });
        }
      };
      producer = startProducer('system', publisher, { intervalMs: 600 }, undefined, {
        log: () => {},
      });
      await waitFor(
        () => publisher.events.length >= 6,
        () => `3 samples (got ${publisher.events.length} events)`,
      );
      await producer.stop();

      for (const e of publisher.events) {
        expect(e.topic).toBe('system/monitoring');
        expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
      }
      expect(publisher.events.slice(0, 6).map((e) => e.event)).toEqual([
        'cpuUpdate',
        'memoryUpdate',
        'cpuUpdate',
        'memoryUpdate',
        'cpuUpdate',
        'memoryUpdate',
      ]);
      for (const check of checks) check();
    });
  });
});
