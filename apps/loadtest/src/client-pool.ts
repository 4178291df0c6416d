import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { withTimeout } from '@streamcast/protocol';
import type {
  ConnReport,
  ConnSpec,
  FromWorker,
  ToWorker,
  WorkerConfig,
  WorkerErrors,
  WorkerProgress,
} from './client-protocol';
import { latencyHistogram, mergeInto, mergeTimeline, type LatencyHistogram } from './latency';

const REPO_ROOT = join(__dirname, '..', '..', '..');

interface Worker {
  child: ChildProcess;
  pid: number;
  progress: WorkerProgress;
  waiters: Map<string, Array<Waiter>>;
  exited: string | undefined;
}

interface Waiter {
  resolve: (message: FromWorker) => void;
  reject: (err: Error) => void;
}

export interface PoolReport {
  conns: ConnReport[];
  stray: number;
  /** Events sent inside the window: publish → receive, µs. */
  histogram: LatencyHistogram;
  /** Per second since the run's origin (send time), µs. */
  timeline: Map<number, LatencyHistogram>;
  errors: WorkerErrors;
  /** Connections lost and not back yet, by where they are. */
  down: { waiting: number; connecting: number; answered: number };
}

export interface PoolProgress {
  open: number;
  down: number;
  failed: number;
  errors: number;
  total: number;
}

export interface PoolOptions extends Partial<WorkerConfig> {
  /** Client processes. @default 1 */
  processes?: number;
  /**
   * Called with each client process's pid once it runs (the benchmarks pin them), and with a
   * function to stop it: return it to have it stopped at cleanup.
   */
  onSpawn?: (pid: number, stop: () => Promise<void>, kill: () => void) => void;
}

const DEFAULT_CONFIG: WorkerConfig = {
  targets: [],
  headers: {},
  reconnect: false,
  retryMs: 3000,
  connectTimeoutMs: 30_000,
};

/**
 * The runner's side of the client processes (client-worker.ts): opens connections spread over
 * them, starts runs, collects progress (pushed every 25 ms) and the final per-connection
 * accounts and latency histograms.
 */
export class ClientPool {
  private constructor(private readonly workers: Worker[]) {}

  static async start(options: PoolOptions): Promise<ClientPool> {
    const count = options.processes ?? 1;
    const config: WorkerConfig = {
      targets: options.targets ?? DEFAULT_CONFIG.targets,
      headers: options.headers ?? DEFAULT_CONFIG.headers,
      reconnect: options.reconnect ?? DEFAULT_CONFIG.reconnect,
      retryMs: options.retryMs ?? DEFAULT_CONFIG.retryMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONFIG.connectTimeoutMs,
    };
    const workers: Worker[] = [];
    const pool = new ClientPool(workers);
    try {
      await Promise.all(
        Array.from({ length: count }, async () => {
          const worker = spawnWorker(options.onSpawn);
          workers.push(worker);
          await withDeadline(waitFor(worker, 'hello'), 30_000, 'for a client process to start');
          await pool.request(worker, { type: 'configure', config }, 'configured');
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

  get size(): number {
    return this.workers.length;
  }

  /**
   * Opens the connections, spread evenly over the processes; resolves when each got its first
   * frame or failed. `ready` counts every connection open in the pool.
   */
  async open(specs: ConnSpec[], timeoutMs = 60_000): Promise<{ ready: number; failed: number }> {
    const parts = this.workers.map((): ConnSpec[] => []);
    specs.forEach((s, i) => parts[i % parts.length]?.push(s));
    const answers = await Promise.all(
      this.workers.map((w, i) =>
        this.request(w, { type: 'open', conns: parts[i] ?? [] }, 'opened', timeoutMs),
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

  /**
   * Starts counting a new run: events carrying another run number are ignored. With
   * `timeline`, latencies are also kept per second since `origin` (epoch ms, send time).
   */
  async startRun(run: number, timeline = false, origin = 0): Promise<void> {
    await Promise.all(
      this.workers.map((w) => this.request(w, { type: 'run', run, timeline, origin }, 'run')),
    );
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
   * The lowest next sequence number of `run` over open connections that received something
   * (from the last progress messages, at most ~25 ms old): what a closed-loop publisher may
   * run ahead of.
   */
  minReceived(run: number): number {
    let min = Infinity;
    for (const w of this.workers) {
      if (w.progress.run !== run) return 0;
      if (w.progress.open > 0) min = Math.min(min, w.progress.min);
    }
    return min === Infinity ? 0 : min;
  }

  /** Live figures from the last progress messages (at most ~25 ms old). */
  progress(): PoolProgress {
    const out: PoolProgress = { open: 0, down: 0, failed: 0, errors: 0, total: 0 };
    for (const w of this.workers) {
      out.open += w.progress.open;
      out.down += w.progress.down;
      out.failed += w.progress.failed;
      out.errors += w.progress.errors;
      out.total += w.progress.total;
    }
    return out;
  }

  async report(): Promise<PoolReport> {
    const answers = await Promise.all(
      this.workers.map((w) => this.request(w, { type: 'report' }, 'report', 60_000)),
    );
    const out: PoolReport = {
      conns: [],
      stray: 0,
      histogram: latencyHistogram(3),
      timeline: new Map(),
      errors: { connect: 0, status: {}, dropped: 0 },
      down: { waiting: 0, connecting: 0, answered: 0 },
    };
    for (const a of answers) {
      if (a.type !== 'report') continue;
      out.down.waiting += a.down.waiting;
      out.down.connecting += a.down.connecting;
      out.down.answered += a.down.answered;
      for (const c of a.conns) out.conns.push(c);
      out.stray += a.stray;
      mergeInto(out.histogram, [a.histogram]);
      mergeTimeline(out.timeline, a.timeline);
      out.errors.connect += a.errors.connect;
      out.errors.dropped += a.errors.dropped;
      for (const [status, n] of Object.entries(a.errors.status)) {
        out.errors.status[status] = (out.errors.status[status] ?? 0) + n;
      }
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
    await Promise.all(this.workers.map((w) => stopWorker(w)));
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

function spawnWorker(onSpawn: PoolOptions['onSpawn']): Worker {
  const ts = __filename.endsWith('.ts');
  const child = fork(join(__dirname, ts ? 'client-worker.ts' : 'client-worker.js'), [], {
    cwd: REPO_ROOT,
    // An absolute path: the tool may run from any directory.
    execArgv: ts
      ? ['--conditions=streamcast-source', '-r', require.resolve('ts-node/register/transpile-only')]
      : [],
    env: { ...process.env, TS_NODE_PROJECT: join(REPO_ROOT, 'tsconfig.json') },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const worker: Worker = {
    child,
    pid: child.pid ?? -1,
    progress: {
      type: 'progress',
      run: 0,
      min: 0,
      total: 0,
      open: 0,
      down: 0,
      failed: 0,
      errors: 0,
    },
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
  onSpawn?.(
    worker.pid,
    () => stopWorker(worker),
    () => killQuietly(worker.pid),
  );
  return worker;
}

async function stopWorker(worker: Worker): Promise<void> {
  const child = worker.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send({ type: 'close' } satisfies ToWorker);
  await withDeadline(exited, 3000, 'for a client process to exit').catch(() =>
    killQuietly(worker.pid),
  );
}

function waitFor(worker: Worker, type: FromWorker['type']): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    if (worker.exited) return reject(new Error(worker.exited));
    const queue = worker.waiters.get(type) ?? [];
    worker.waiters.set(type, queue);
    queue.push({ resolve, reject });
  });
}

/** Kills `pid` with SIGKILL if it still exists. */
export function killQuietly(pid: number | undefined): void {
  if (pid === undefined || pid < 0) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** `withTimeout` with the message of every wait here: "timed out after <ms> ms <what>". */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(promise, ms, `timed out after ${ms} ms ${what}`);
}
