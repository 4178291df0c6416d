import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './ports';
import { SOURCE_EXEC_ARGV } from './source-exec';
import { sleep } from './wait';

const REPO_ROOT = join(__dirname, '..', '..', '..');

export interface GatewayProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** Milliseconds from the spawn to the first healthy /healthz (polled every 50 ms). */
  readyMs: number;
  /** Everything the process wrote to stdout and stderr. */
  output(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/**
 * Starts `npm run gateway`'s program as a child process on 127.0.0.1 and a free port, with
 * `env` on top of a clean environment; resolves once /healthz answers. By default from its
 * TypeScript source (SOURCE_EXEC_ARGV); `script` and `execArgv` run something else, e.g. the
 * compiled apps/gateway/dist/main.js with no execArgv (the benchmarks do); `node`, another node
 * binary than this process's.
 */
export async function startGatewayProcess(
  env: Record<string, string>,
  options: { port?: number; script?: string; execArgv?: readonly string[]; node?: string } = {},
): Promise<GatewayProcess> {
  const port = options.port ?? (await freePort());
  const script = options.script ?? join(REPO_ROOT, 'apps', 'gateway', 'src', 'main.ts');
  const started = Date.now();
  const node = options.node ?? process.execPath;
  const child = spawn(node, [...(options.execArgv ?? SOURCE_EXEC_ARGV), script], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      LOG_LEVEL: 'warn',
      // stop() is SIGTERM: no drain window unless a test asks for one.
      DRAIN_S: '0',
      ...env,
      HOST: '127.0.0.1',
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  let readyMs: number;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with ${child.exitCode} before it was healthy:\n${output}`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) {
        readyMs = Date.now() - started;
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not become healthy within 30 s:\n${output}`);
    }
    await sleep(50);
  }
  return {
    url,
    port,
    child,
    readyMs,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
