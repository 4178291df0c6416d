import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from '@streamcast/testing';
import { withDeadline } from '@streamcast/loadtest';
import { onCleanup, taskset } from './procs';

export const NGINX = '/usr/sbin/nginx';
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const TEMPLATES = join(__dirname, '..', 'nchan');

/** Why Nchan cannot run here, or undefined when it can. */
export function nchanMissing(): string | undefined {
  if (process.env.BENCH_NCHAN === '0') return 'Nchan skipped (BENCH_NCHAN=0)';
  if (!existsSync(NGINX) || !existsSync(NCHAN_MODULE)) {
    return 'Nchan not installed: apt-get install libnginx-mod-nchan (the Nchan column is skipped)';
  }
  return undefined;
}

/** An nginx master process (and its workers) that this run started. */
export interface NginxProcess {
  port: number;
  url: string;
  /** The master's pid. */
  pid: number;
  /** Master and workers. */
  pids(): number[];
  /** The worker processes. */
  workers(): number[];
  output(): string;
  /** SIGQUIT (graceful), then SIGKILL of the whole group if it lingers. */
  stop(): Promise<void>;
  /** SIGKILL to the master and every worker at once (a crash). */
  kill(): Promise<void>;
}

/** Fills `${NAME}` placeholders, outside comments (which name them too). */
function fill(template: string, values: Record<string, string>): string {
  return template
    .split('\n')
    .map((line) =>
      line.trimStart().startsWith('#')
        ? line
        : line.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => values[name] ?? whole),
    )
    .join('\n');
}

/** Children of `pid`, from /proc. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Starts nginx in the foreground (`daemon off`) with `config` in a fresh temporary prefix, in a
 * process group of its own (so a crash can be simulated by killing the group), pinned to
 * `core` from its first instruction (taskset runs it: workers inherit the core).
 */
export async function startNginx(
  name: string,
  config: (listen: string) => string,
  core: number | undefined,
): Promise<NginxProcess> {
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, config(`127.0.0.1:${port}`));
  const args = ['-e', 'stderr', '-p', `${prefix}/`, '-c', file, '-g', 'daemon off;'];
  const bin = taskset();
  const child =
    core !== undefined && bin
      ? spawn(bin, ['-c', String(core), NGINX, ...args], {
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(NGINX, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const pid = child.pid as number;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killGroup = () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const stop = onCleanup(
    `${name} (nginx ${pid})`,
    async () => {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // gone
        }
        await withDeadline(exited, 5000, `for ${name} to exit`).catch(() => killGroup());
      }
      killGroup(); // workers left behind by a killed master
      rmSync(prefix, { recursive: true, force: true });
    },
    killGroup,
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`${name}: nginx exited with ${child.exitCode}:\n${output}`);
    }
    try {
      await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      break; // any answer: it listens
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name}: nginx did not listen within 15 s:\n${output}`);
    }
    await sleep(50);
  }
  const workers = () => childrenOf(pid);
  return {
    port,
    url,
    pid,
    pids: () => [pid, ...workers()],
    workers,
    output: () => output,
    stop,
    kill: async () => {
      killGroup();
      await exited;
    },
  };
}

/** Nchan (nginx + libnginx-mod-nchan) storing in the benchmark's Redis, on `core`. */
export function startNchanProcess(
  redisUrl: string,
  namespace: string,
  core: number | undefined,
): Promise<NginxProcess> {
  const template = readFileSync(join(TEMPLATES, 'nginx.conf.template'), 'utf8');
  return startNginx(
    'nchan',
    (listen) =>
      fill(template, {
        MODULE: NCHAN_MODULE,
        LISTEN: listen,
        REDIS: redisUrl,
        NAMESPACE: namespace,
      }),
    core,
  );
}

/** The storm's balancer in front of `upstreams` (ports with weights), on `core`. */
export function startBalancer(
  upstreams: Array<{ port: number; weight: number }>,
  core: number | undefined,
): Promise<NginxProcess> {
  const template = readFileSync(join(TEMPLATES, 'balancer.conf.template'), 'utf8');
  const lines = upstreams
    .map((u) => `server 127.0.0.1:${u.port} weight=${u.weight};`)
    .join('\n        ');
  return startNginx(
    'balancer',
    (listen) => fill(template, { LISTEN: listen, UPSTREAMS: lines }),
    core,
  );
}
