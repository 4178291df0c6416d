import type { Histogram } from './histogram';

/** IPC between the runner (ClientPool) and a client process (sse-client-worker.ts). */
export type ToWorker =
  | { type: 'open'; port: number; paths: string[] }
  | { type: 'run'; run: number }
  | { type: 'window'; start?: number; end?: number }
  | { type: 'snapshot' }
  | { type: 'report'; expected: number }
  | { type: 'drop' }
  | { type: 'close' };

export type WorkerReport = {
  type: 'report';
  connections: number;
  open: number;
  /** Events of the current run received, summed over connections. */
  total: number;
  /** Sum over connections of (expected - received), never negative per connection. */
  lost: number;
  gaps: number;
  dups: number;
  /** Events of another run (arriving late): ignored. */
  stray: number;
  histogram: ReturnType<Histogram['toJSON']>;
};

export type FromWorker =
  | { type: 'hello'; pid: number }
  | { type: 'opened'; ready: number; failed: number }
  | { type: 'run'; run: number }
  | { type: 'window' }
  | { type: 'snapshot'; total: number }
  | { type: 'progress'; run: number; min: number; total: number; open: number }
  | WorkerReport
  | { type: 'dropped'; count: number }
  | { type: 'closed' };
