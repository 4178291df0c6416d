import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { parseCursor, topicFingerprint } from '@streamcast/protocol';
import { createPublisher } from '@streamcast/publisher';
import {
  freePort,
  publishHttp,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  waitFor,
  type GatewayProcess,
  SOURCE_EXEC_ARGV,
} from '@streamcast/testing';

/**
 * The two command-line tools as a person runs them: child processes, real gateway, real Redis,
 * arguments and pipes.
 */
const ROOT = join(__dirname, '..', '..', '..');
const SCRIPTS = { publish: join(__dirname, 'publish.ts'), tail: join(__dirname, 'tail.ts') };
const CURSOR_RE = /^2~[0-9a-z]{6}\.[0-9a-z]{1,16}\.[0-9a-z]+\.[0-9a-z]+$/;

class Cli {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (c: Buffer) => (this.stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  lines(): string[] {
    return this.stdout.split('\n').filter((l) => l !== '');
  }

  json(): Array<{ id: string; event: string; data: unknown }> {
    return this.lines().map((l) => JSON.parse(l));
  }

  async waitForStderr(text: string, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      () => this.stderr.includes(text),
      () => `${this.name} to say '${text}' (stderr: ${this.stderr})`,
      timeoutMs,
    );
  }

  async waitForLines(count: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      () => this.lines().length >= count,
      () => `${count} lines from ${this.name} (got ${this.lines().length}; stderr: ${this.stderr})`,
      timeoutMs,
    );
  }

  /** Resolves to the exit code; fails if the process is still running after `timeoutMs`. */
  async exit(timeoutMs = 30_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `${this.name} still running after ${timeoutMs} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const running: Cli[] = [];

/** Starts a tool; `stdin` is written and closed, else standard input is /dev/null (not a TTY). */
function start(tool: 'publish' | 'tail', args: string[], stdin?: string): Cli {
  const child = spawn(process.execPath, [...SOURCE_EXEC_ARGV, SCRIPTS[tool], ...args], {
    cwd: ROOT,
    // A clean environment: no REDIS_URL or GATEWAY_URL of the test run leaks into target choice.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (stdin !== undefined) child.stdin?.end(stdin);
  const cli = new Cli(`${tool} ${args.join(' ')}`, child);
  running.push(cli);
  return cli;
}

async function run(tool: 'publish' | 'tail', args: string[], stdin?: string) {
  const cli = start(tool, args, stdin);
  const code = await cli.exit();
  return { code, stdout: cli.stdout, stderr: cli.stderr, lines: cli.lines() };
}

afterEach(() => {
  for (const cli of running.splice(0)) if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
});

describe('streamcast-publish and streamcast-tail', () => {
  const prefix = testPrefix();
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: prefix,
      RETRY_MS: '200',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  /** `streamcast-tail` on the gateway: `count` events of `topic` after the cursor `from`. */
  function tailFrom(from: string | undefined, count: number, topic: string) {
    return run('tail', [
      '--url',
      gateway.url,
      '--from',
      from as string,
      '--count',
      String(count),
      topic,
    ]);
  }

  async function publishArgs(args: string[]): Promise<string> {
    const result = await run('publish', ['--url', gateway.url, ...args]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result.lines).toHaveLength(1);
    return result.lines[0] as string;
  }

  it('prints, as JSON lines, the events published after it started (round trip)', async () => {
    const tail = start('tail', ['--url', gateway.url, '--json', '--count', '3', 'round-trip']);
    await tail.waitForStderr('connected');
    const ids = [
      await publishArgs(['round-trip', 'headline', '{"title":"one"}']),
      await publishArgs(['round-trip', '"two"']),
      await publishArgs(['--text', 'round-trip', 'note', 'three, unquoted']),
    ];
    expect(await tail.exit()).toBe(0);
    expect(tail.json()).toEqual([
      { id: ids[0], event: 'headline', data: { title: 'one' } },
      { id: ids[1], event: 'message', data: 'two' },
      { id: ids[2], event: 'note', data: 'three, unquoted' },
    ]);
  });

  it('publishes one event per line of standard input and prints each cursor', async () => {
    const lines = [
      '{"topic":"batch","event":"n","data":{"i":0}}',
      '{"topic":"batch","data":[1]}',
      '',
      '{"topic":"batch-2","event":"n","data":null}',
      '{"topic":"batch","event":"n","data":"three"}',
      '{"data":4}',
    ];
    const result = await run(
      'publish',
      ['--url', gateway.url, 'batch', '-'],
      `${lines.join('\n')}\n`,
    );
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result.lines).toHaveLength(5);
    expect(new Set(result.lines).size).toBe(5);
    for (const id of result.lines) {
      expect(id).toMatch(CURSOR_RE);
      expect(parseCursor(id).format).toBe('topics');
    }
    // The topic argument is the default of lines without one: the last line went to "batch".
    const tail = await tailFrom(result.lines[0], 3, 'batch');
    expect(tail.code).toBe(0);
    expect(tail.lines.map((l) => JSON.parse(l).data)).toEqual([[1], 'three', 4]);
  });

  it('publishes many lines in batches, through the gateway and into Redis, ids in input order', async () => {
    for (const target of [
      ['--url', gateway.url],
      ['--redis', testRedisUrl(), '--prefix', prefix],
    ]) {
      const topic = `batched-${target[0]!.slice(2)}`;
      const lines = Array.from({ length: 450 }, (_, i) =>
        i === 7 ? '{"data":' : JSON.stringify({ data: i }),
      );
      const result = await run(
        'publish',
        [...target, '--batch', '100', topic, '-'],
        `${lines.join('\n')}\n`,
      );
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^streamcast-publish: line 8: not JSON/),
      ]);
      expect(result.lines).toHaveLength(449);
      expect(new Set(result.lines).size).toBe(449);
      // The ids are printed in input order: each one resumes right after its own event.
      const tail = await tailFrom(result.lines[99], 3, topic);
      expect(tail.lines.map((l) => JSON.parse(l).data)).toEqual([101, 102, 103]);
      const all = await tailFrom(result.lines[0], 448, topic);
      expect(all.lines.map((l) => JSON.parse(l).id)).toEqual(result.lines.slice(1));
    }
  });

  it('reports each bad line by its number, publishes the others in order, and exits 2', async () => {
    const lines = [
      '{"topic":"partial","data":1}',
      '{"topic":"partial","data":',
      '{"topic":"no spaces please","data":3}',
      '{"topic":"partial"}',
      '{"topic":"partial","evnet":"typo","data":5}',
      '{"topic":"partial","data":6}',
    ];
    const result = await run('publish', ['--url', gateway.url], lines.join('\n'));
    expect(result.code).toBe(2);
    expect(result.lines).toHaveLength(2);
    const errors = result.stderr.trim().split('\n');
    expect(errors).toHaveLength(4);
    expect(errors[0]).toMatch(/^streamcast-publish: line 2: not JSON/);
    expect(errors[1]).toMatch(/^streamcast-publish: line 3: topic "no spaces please"/);
    expect(errors[2]).toMatch(/^streamcast-publish: line 4: no "data"/);
    expect(errors[3]).toMatch(/^streamcast-publish: line 5: unknown field "evnet"/);
  });

  it('resumes after --from with the events that followed it, in order', async () => {
    const input = [0, 1, 2, 3, 4].map((i) =>
      JSON.stringify({ topic: 'resume', event: 'n', data: { i } }),
    );
    const published = await run('publish', ['--url', gateway.url], input.join('\n'));
    expect(published.code).toBe(0);
    const ids = published.lines;
    expect(ids).toHaveLength(5);
    const tail = await tailFrom(ids[1], 3, 'resume');
    expect(tail.code).toBe(0);
    expect(tail.lines.map((l) => JSON.parse(l))).toEqual(
      [2, 3, 4].map((i) => ({ id: ids[i], event: 'n', data: { i } })),
    );
  });

  it('publishes straight into Redis with --redis, and a tail through the gateway sees it', async () => {
    const tail = start('tail', ['--url', gateway.url, '--count', '1', 'via-redis']);
    await tail.waitForStderr('connected');
    const result = await run('publish', [
      '--redis',
      testRedisUrl(),
      '--prefix',
      prefix,
      'via-redis',
      'direct',
      '{"hello":"redis"}',
    ]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await tail.exit()).toBe(0);
    expect(tail.json()).toEqual([
      { id: result.lines[0], event: 'direct', data: { hello: 'redis' } },
    ]);
  });

  it('publishes private fields from JSON lines, through the gateway and into Redis', async () => {
    const tail = start('tail', ['--url', gateway.url, '--count', '2', 'cli-private']);
    await tail.waitForStderr('connected');
    const line = JSON.stringify({
      topic: 'cli-private',
      event: 'order',
      data: { n: 1, email: 'ann@example.com' },
      private: { fields: ['email'], claim: 'staff' },
    });
    const viaGateway = await run('publish', ['--url', gateway.url], `${line}\n`);
    const viaRedis = await run(
      'publish',
      ['--redis', testRedisUrl(), '--prefix', prefix],
      `${line}\n`,
    );
    for (const result of [viaGateway, viaRedis]) {
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    }
    expect(await tail.exit()).toBe(0);
    // The tail has no token: it sees the public view of both.
    expect(tail.json()).toEqual([
      { id: viaGateway.lines[0], event: 'order', data: { n: 1 } },
      { id: viaRedis.lines[0], event: 'order', data: { n: 1 } },
    ]);
    const bad = await run(
      'publish',
      ['--url', gateway.url],
      `${JSON.stringify({ topic: 'cli-private', data: 1, private: { fields: ['x'], claim: 'staff' } })}\n`,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/BODY_INVALID.*"private" needs "data" to be a JSON object/);
  });

  it('prints readable lines with --pretty, and tells a reset on stderr', async () => {
    await publishArgs(['pretty', 'headline', '{"title":"before"}']);
    const tail = start('tail', [
      '--url',
      gateway.url,
      '--pretty',
      '--from',
      `2~${topicFingerprint('pretty')}.zz.1.0`,
      '--count',
      '1',
      'pretty',
    ]);
    // An unknown epoch: the gateway resets, and the topic continues from there (no replay of
    // "before"): the one event printed is the one published after the reset.
    await tail.waitForStderr('reset pretty (history-lost)');
    const id = await publishArgs(['pretty', 'headline', '{"title":"hello"}']);
    expect(await tail.exit()).toBe(0);
    expect(tail.stdout).toMatch(
      new RegExp(
        `^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  pretty  headline  #${id.split('.').slice(2).join('\\.')}  \\{"title":"hello"\\}\\n$`,
      ),
    );
  });

  it.each<[string, 'publish' | 'tail', string[], RegExp]>([
    ['publish without a topic', 'publish', [], /nothing to publish/],
    [
      'publish to a bad topic',
      'publish',
      ['no spaces', '1'],
      /topic "no spaces": has a character outside/,
    ],
    [
      'publish data that is not JSON',
      'publish',
      ['news', 'headline', '{oops'],
      /data "\{oops" is not JSON/,
    ],
    ['publish with an unknown option', 'publish', ['--nope', 'news', '1'], /unknown option --nope/],
    [
      'publish with a batch of 0',
      'publish',
      ['--batch', '0', 'news', '-'],
      /--batch must be a whole number of at least 1/,
    ],
    [
      'publish with a batch over 1000',
      'publish',
      ['--batch', '1001', 'news', '-'],
      /--batch must be at most 1000/,
    ],
    ['publish the reserved event type', 'publish', ['news', 'reset', '1'], /"reset" is reserved/],
    [
      'publish a seed event that does not fit its schema',
      'publish',
      ['chat', 'new-message', '{"user":1}'],
      /BODY_INVALID: invalid new-message on chat: user: .*; text: /,
    ],
    ['tail without a topic', 'tail', [], /no topic/],
    ['tail of a bad topic', 'tail', ['no spaces'], /topic "no spaces"/],
    [
      'tail from a bad cursor',
      'tail',
      ['--from', 'NOT A CURSOR', 'news'],
      /--from "NOT A CURSOR" is not a cursor/,
    ],
    ['tail with a bad count', 'tail', ['--count', 'x', 'news'], /--count must be a whole number/],
    ['tail with an unknown option', 'tail', ['--wat', 'news'], /unknown option --wat/],
  ])('exits 2 with one line for %s', async (_name, tool, args, message) => {
    const result = await run(tool, args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(lines[0]).toMatch(new RegExp(`^streamcast-${tool}: `));
  });

  it('exits 1 with the error code when the gateway or Redis cannot be reached, and stops a batch', async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const single = await run('publish', ['--url', nobody, 'news', '1']);
    expect(single.code).toBe(1);
    expect(single.stderr).toMatch(
      /^streamcast-publish: NOT_READY: cannot reach http:\/\/127\.0\.0\.1:\d+\/publish/,
    );
    const batch = await run('publish', ['--url', nobody, 'news', '-'], '{"data":1}\n{"data":2}\n');
    expect(batch.code).toBe(1);
    expect(batch.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^streamcast-publish: line 1: NOT_READY: .*; stopped, the lines after it were not published$/,
      ),
    ]);
    const redis = await run('publish', [
      '--redis',
      `redis://127.0.0.1:${await freePort()}`,
      '--timeout',
      '1',
      'news',
      '1',
    ]);
    expect(redis.code).toBe(1);
    expect(redis.stderr).toMatch(/NOT_READY: cannot reach redis:\/\/127\.0\.0\.1:\d+ within 1 s/);
  });

  it('exits 3 when --timeout passes without an event', async () => {
    const started = Date.now();
    const tail = await run('tail', ['--url', gateway.url, '--timeout', '1', 'quiet-topic']);
    expect(tail.code).toBe(3);
    expect(tail.stderr).toMatch(/no event for 1 s/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('documents every option, the exit codes and examples in --help', async () => {
    for (const tool of ['publish', 'tail'] as const) {
      const help = await run(tool, ['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage:/);
      for (const text of ['--url', '--token', 'Exit codes', 'Examples'])
        expect(help.stdout).toContain(text);
    }
  });
});

describe('streamcast-tail across failures', () => {
  let servers: Server[] = [];

  afterEach(async () => {
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    servers = [];
  });

  async function fakeGateway(
    answer: (req: IncomingMessage, n: number) => { status: number; body: string; end: boolean },
  ) {
    const requests: IncomingMessage[] = [];
    const server = createServer((req, res) => {
      requests.push(req);
      const { status, body, end } = answer(req, requests.length);
      const type = status === 200 ? 'text/event-stream' : 'application/json';
      res.writeHead(status, { 'content-type': type });
      res.write(body);
      if (end) res.end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address() as { port: number };
    return { url: `http://127.0.0.1:${address.port}`, requests, server };
  }

  it('sends the token, retries after a 503 with the last cursor, and prints nothing twice', async () => {
    const fake = await fakeGateway((_req, n) =>
      n === 1
        ? { status: 200, body: 'retry: 100\n\nid: 1~0.aa.1.0\nevent: n\ndata: 1\n\n', end: true }
        : n === 2
          ? { status: 503, body: '{"error":{"code":"NOT_READY","message":"draining"}}', end: true }
          : {
              status: 200,
              body: 'retry: 100\n\nid: 1~0.aa.2.0\nevent: n\ndata: 2\n\n',
              end: false,
            },
    );
    const tail = start('tail', [
      '--url',
      fake.url,
      '--token',
      'secret-jwt',
      '--count',
      '2',
      'fake',
    ]);
    expect(await tail.exit()).toBe(0);
    expect(tail.json()).toEqual([
      { id: '1~0.aa.1.0', event: 'n', data: 1 },
      { id: '1~0.aa.2.0', event: 'n', data: 2 },
    ]);
    expect(tail.stderr).toMatch(/gateway answered 503 NOT_READY draining; trying again in/);
    const [first, second, third] = fake.requests;
    expect(fake.requests).toHaveLength(3);
    expect(first?.url).toBe('/events?topic=fake');
    expect(first?.headers.authorization).toBe('Bearer secret-jwt');
    // EventSource's own reconnect sends the header; after it gave up, tail resumes by query.
    expect(second?.headers['last-event-id']).toBe('1~0.aa.1.0');
    const resumed = new URL(third?.url ?? '', fake.url).searchParams;
    expect([resumed.getAll('topic'), resumed.get('lastEventId')]).toEqual([['fake'], '1~0.aa.1.0']);
    expect(third?.headers.authorization).toBe('Bearer secret-jwt');
  });

  it('exits 1 with the code and the cursor to resume from when the token is refused', async () => {
    const fake = await fakeGateway((_req, n) =>
      n === 1
        ? { status: 200, body: 'retry: 100\n\nid: 1~0.aa.7.0\ndata: "hi"\n\n', end: true }
        : {
            status: 401,
            body: '{"error":{"code":"TOKEN_EXPIRED","message":"token expired"}}',
            end: true,
          },
    );
    const tail = await run('tail', ['--url', fake.url, '--token', 'old', 'fake']);
    expect(tail.code).toBe(1);
    expect(tail.lines).toEqual(['{"id":"1~0.aa.7.0","event":"message","data":"hi"}']);
    expect(tail.stderr).toMatch(
      /refused: 401 TOKEN_EXPIRED token expired; resume with --from 1~0\.aa\.7\.0\n$/,
    );
  });

  it('prints every event exactly once while its gateway is killed and another takes its port', async () => {
    const env = { REDIS_URL: testRedisUrl(), REDIS_PREFIX: testPrefix(), RETRY_MS: '200' };
    let gateway = await startGatewayProcess(env);
    const port = gateway.port;
    const publisher = await createPublisher({
      redisUrl: env.REDIS_URL,
      keyPrefix: env.REDIS_PREFIX,
    });
    try {
      const tail = start('tail', ['--url', gateway.url, '--json', '--count', '6', 'restart']);
      await tail.waitForStderr('connected');
      const ids = [
        await publishHttp(gateway.url, 'restart', 'n', 0),
        await publishHttp(gateway.url, 'restart', 'n', 1),
      ];
      await tail.waitForLines(2);
      await gateway.kill();
      await tail.waitForStderr('connection lost');
      // Stored while no gateway runs: the tail gets them from history when it is back.
      ids.push(
        await publisher.publish('restart', 'n', 2),
        await publisher.publish('restart', 'n', 3),
      );
      gateway = await startGatewayProcess(env, { port });
      await tail.waitForStderr('reconnected');
      ids.push(
        await publishHttp(gateway.url, 'restart', 'n', 4),
        await publishHttp(gateway.url, 'restart', 'n', 5),
      );
      expect(await tail.exit()).toBe(0);
      expect(tail.json()).toEqual(
        [0, 1, 2, 3, 4, 5].map((n) => ({ id: ids[n], event: 'n', data: n })),
      );
    } finally {
      await publisher.close();
      await gateway.stop();
    }
  });
});
