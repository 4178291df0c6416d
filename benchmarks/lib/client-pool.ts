import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { FromWorker, ToWorker, WorkerReport } from './client-protocol';
import { Histogram } from './histogram';
import { killQuietly, onCleanup, withDeadline } from './procs';

export const REPO_ROOT = join(__dirname, '..', '..');

interface Worker {
  child: ChildProcess;
  pid: number;
  progress: { run: number; min: number; total: number; open: number };
  waiters: Map<string, Array<Waiter>>;
  exited: string | undefined;
}

interface Waiter {
  resolve: (message: FromWorker) => void;
  reject: (err: Error) => void;
}

export interface PoolReport {
  connections: number;
  open: number;
  total: number;
  lost: number;
  gaps: number;
  dups: number;
  stray: number;
  histogram: Histogram;
}

/**
 * The runner's side of the client processes: opens connections spread over them, starts runs,
 * collects progress (pushed every 25 ms) and the final counts and latency histograms.
 */
export class ClientPool {
  private constructor(
    private readonly workers: Worker[],
    private readonly stopAll: () => Promise<void>,
  ) {}

  static async start(count: number): Promise<ClientPool> {
    const workers: Worker[] = [];
    const stops: Array<() => Promise<void>> = [];
    const pool = new ClientPool(workers, async () => {
      await Promise.all(stops.map((stop) => stop()));
    });
    try {
      await Promise.all(
        Array.from({ length: count }, async () => {
          const child = fork(join(__dirname, 'sse-client-worker.ts'), [], {
            cwd: REPO_ROOT,
            execArgv: ['-r', 'ts-node/register/transpile-only'],
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          });
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          stops.push(
            onCleanup(
              `client process ${child.pid}`,
              async () => {
                if (child.exitCode === null && child.signalCode === null) {
                  if (child.connected) child.send({ type: 'close' } satisfies ToWorker);
                  await withDeadline(exited, 3000, 'for a client process to exit').catch(() =>
                    killQuietly(child.pid),
                  );
                }
              },
              () => killQuietly(child.pid),
            ),
          );
          const worker: Worker = {
            child,
            pid: child.pid ?? -1,
            progress: { run: 0, min: 0, total: 0, open: 0 },
            waiters: new Map(),
            exited: undefined,
          };
          child.once('exit', (code, signal) => {
            worker.exited = `client process ${worker.pid} exited (${code ?? signal})`;
            for (const queue of worker.waiters.values()) {
              for (const waiter of queue.splice(0)) waiter.reject(new Error(worker.exited));
            }
          });
          child.on('message', (message: FromWorker) => {
            if (message.type === 'progress') {
              worker.progress = message;
              return;
            }
            const queue = worker.waiters.get(message.type);
            queue?.shift()?.resolve(message);
          });
          workers.push(worker);
          await withDeadline(waitFor(worker, 'hello'), 30_000, 'for a client process to start');
        }),
      );
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Opens one connection per path, spread evenly; resolves when each got its first frame. */
  async open(
    port: number,
    paths: string[],
    timeoutMs = 30_000,
  ): Promise<{ ready: number; failed: number }> {
    const parts = this.workers.map((): string[] => []);
    paths.forEach((p, i) => parts[i % parts.length]?.push(p));
    const answers = await Promise.all(
      this.workers.map((w, i) =>
        this.request(w, { type: 'open', port, paths: parts[i] ?? [] }, 'opened', timeoutMs),
      ),
    );
    let ready = 0;
    let failed = 0;
    for (const a of answers) {
      if (a.type !== 'opened') continue;
      ready += a.ready;
      failed += a.failed;
    }
    return { ready, failed };
  }

  /** Starts counting a new run: events carrying another run number are ignored. */
  async startRun(run: number): Promise<void> {
    await Promise.all(this.workers.map((w) => this.request(w, { type: 'run', run }, 'run')));
  }

  /** Latencies are recorded for events sent between `start` and `end` (epoch ms). */
  async window(bounds: { start?: number; end?: number }): Promise<void> {
    await Promise.all(
      this.workers.map((w) => this.request(w, { type: 'window', ...bounds }, 'window')),
    );
  }

  /** Events of the current run received so far, summed over every connection. */
  async received(): Promise<number> {
    const answers = await Promise.all(
      this.workers.map((w) => this.request(w, { type: 'snapshot' }, 'snapshot')),
    );
    return answers.reduce((sum, a) => sum + (a.type === 'snapshot' ? a.total : 0), 0);
  }

  /**
   * The fewest events of `run` any open connection has received (from the last progress
   * messages, at most ~25 ms old): what the publisher may run ahead of.
   */
  minReceived(run: number): number {
    let min = Infinity;
    for (const w of this.workers) {
      if (w.progress.run !== run) return 0;
      if (w.progress.open > 0) min = Math.min(min, w.progress.min);
    }
    return min === Infinity ? 0 : min;
  }

  async report(expected: number): Promise<PoolReport> {
    const answers = await Promise.all(
      this.workers.map((w) => this.request(w, { type: 'report', expected }, 'report')),
    );
    const out: PoolReport = {
      connections: 0,
      open: 0,
      total: 0,
      lost: 0,
      gaps: 0,
      dups: 0,
      stray: 0,
      histogram: new Histogram(),
    };
    for (const a of answers as WorkerReport[]) {
      out.connections += a.connections;
      out.open += a.open;
      out.total += a.total;
      out.lost += a.lost;
      out.gaps += a.gaps;
      out.dups += a.dups;
      out.stray += a.stray;
      out.histogram.merge(a.histogram);
    }
    return out;
  }

  /** Closes every connection; the client processes stay for more. */
  async drop(): Promise<number> {
    const answers = await Promise.all(
      this.workers.map((w) => this.request(w, { type: 'drop' }, 'dropped')),
    );
    return answers.reduce((sum, a) => sum + (a.type === 'dropped' ? a.count : 0), 0);
  }

  /** Closes every connection and stops the client processes. */
  async close(): Promise<void> {
    await this.stopAll();
  }

  private request(
    worker: Worker,
    message: ToWorker,
    reply: FromWorker['type'],
    timeoutMs = 10_000,
  ): Promise<FromWorker> {
    const answer = waitFor(worker, reply);
    worker.child.send(message);
    return withDeadline(answer, timeoutMs, `for '${reply}' from client process ${worker.pid}`);
  }
}

function waitFor(worker: Worker, type: FromWorker['type']): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    if (worker.exited) return reject(new Error(worker.exited));
    const queue = worker.waiters.get(type) ?? [];
    worker.waiters.set(type, queue);
    queue.push({ resolve, reject });
  });
}
