import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { validateEvent } from '@streamcast/events';
import {
  SseClient,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  type GatewayProcess,
  SOURCE_EXEC_ARGV,
} from '@streamcast/testing';

const REPO_ROOT = join(__dirname, '..', '..', '..');
const RUNNER = join(__dirname, 'main.ts');

interface Runner {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** apps/producers/src/main.ts …args from source, as `npm run producer` runs its build. */
function runner(args: string[], env: Record<string, string> = {}): Runner {
  const child = spawn(process.execPath, [...SOURCE_EXEC_ARGV, RUNNER, ...args], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

describe('producer runner (npm run producer)', () => {
  let gateway: GatewayProcess | undefined;
  let client: SseClient | undefined;
  let child: Runner | undefined;

  afterEach(async () => {
    client?.close();
    client = undefined;
    if (child && child.child.exitCode === null) {
      child.child.kill('SIGKILL');
      await child.exited;
    }
    child = undefined;
    await gateway?.stop();
    gateway = undefined;
  });

  it('publishes ticks to a gateway over HTTP and exits 0 on SIGTERM', async () => {
    gateway = await startGatewayProcess({});
    client = await SseClient.open(`${gateway.url}/api/events`);
    child = runner(['tick', '--intervalMs', '50'], { GATEWAY_URL: gateway.url });
    const events = await client.waitForEvents(3, 30_000, 'message');
    for (const e of events) {
      const data = JSON.parse(e.data) as { timestamp: number; message: string };
      expect(() => validateEvent('events', 'message', data)).not.toThrow();
      expect(data.message).toBe('实时数据');
      expect(e.id).toBeDefined();
    }
    child.child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(child.stderr()).toBe('');
  });

  it('publishes straight into Redis with REDIS_URL, which a gateway on that Redis serves; SIGINT exits 0', async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix() };
    gateway = await startGatewayProcess(env);
    client = await SseClient.open(`${gateway.url}/api/stocks/aapl`);
    child = runner(['stocks', '--symbols', 'AAPL,MSFT', '--interval-ms', '50', '--seed', '7'], env);
    const events = await client.waitForEvents(3, 30_000, 'priceUpdate');
    for (const e of events) {
      const data = JSON.parse(e.data) as { symbol: string };
      expect(() => validateEvent('stocks/AAPL', 'priceUpdate', data)).not.toThrow();
      expect(data.symbol).toBe('AAPL');
    }
    child.child.kill('SIGINT');
    expect(await child.exited).toBe(0);
  });

  it('refuses bad command lines with one line on stderr and exit 2, bad environment with exit 1', async () => {
    const cases: Array<[string[], Record<string, string>, number, RegExp]> = [
      [['stonks'], {}, 2, /^producer: unknown producer "stonks"/],
      [
        ['stocks', '--intervalMs', 'soon'],
        {},
        2,
        /^producer: stocks: --intervalMs must be an integer 10-3600000 \(got "soon"\)$/,
      ],
      [
        [],
        {},
        2,
        /^producer: name a producer: one of stocks, chat, system, sports, social, blog, tick, all/,
      ],
      [
        ['all', '--minuteMs', '3'],
        {},
        2,
        /^producer: all: option --minuteMs must be --<producer>\.<option>/,
      ],
      [
        ['tick'],
        { GATEWAY_URL: 'localhost:3000' },
        1,
        /^producer: config: GATEWAY_URL must be an http:\/\/ or https:\/\/ URL/,
      ],
    ];
    const runs = cases.map(([args, env]) => runner(args, env));
    const codes = await Promise.all(runs.map((r) => r.exited));
    cases.forEach(([args, , code, message], i) => {
      const run = runs[i] as Runner;
      const lines = run.stderr().split('\n').filter(Boolean);
      expect({ args, code: codes[i], lines: lines.length }).toEqual({ args, code, lines: 1 });
      expect(lines[0]).toMatch(message);
      expect(run.stdout()).toBe('');
    });
  });

  it('lists every producer and its options with defaults under --help, exit 0', async () => {
    const all = runner(['--help']);
    const one = runner(['sports', '--help']);
    expect(await all.exited).toBe(0);
    expect(await one.exited).toBe(0);
    for (const name of ['stocks', 'chat', 'system', 'sports', 'social', 'blog', 'tick', 'all']) {
      expect(all.stdout()).toMatch(new RegExp(`^  ${name}: `, 'm'));
    }
    expect(all.stdout()).toContain('--symbols <list>');
    expect(all.stdout()).toContain('(default AAPL,GOOGL,MSFT,TSLA,AMZN)');
    expect(one.stdout()).toContain('--minuteMs <int>');
    expect(one.stdout()).toContain('(default 1000)');
    expect(one.stdout()).not.toContain('--symbols');
  });
});
