import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SOURCE_EXEC_ARGV,
  provideRedis,
  startGatewayProcess,
  type TestRedis,
} from '@streamcast/testing';

/**
 * A gateway loads the libraries of optional features only when they are configured: jose (JWT
 * verification), @fastify/multipart (uploads), @fastify/static (pages). Each is megabytes of a
 * gateway's heap; a gateway without them configured should not carry them. Fastify's schema
 * compilers (Ajv) it never needs: no route of the gateway has a schema (schema-compilers.ts).
 */
describe('the modules a gateway loads', () => {
  let redis: TestRedis;
  let dir: string;
  let preload: string;

  beforeAll(async () => {
    redis = await provideRedis();
    dir = mkdtempSync(join(tmpdir(), 'streamcast-modules-'));
    preload = join(dir, 'list-modules.js');
    // On SIGUSR2 the gateway prints the npm packages it has loaded, as one JSON line.
    writeFileSync(
      preload,
      `process.on('SIGUSR2', () => {
        const names = new Set();
        for (const file of Object.keys(require.cache)) {
          const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(file);
          if (m) names.add(m[1]);
        }
        process.stdout.write('LOADED ' + JSON.stringify([...names]) + '\\n');
      });`,
    );
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await redis.stop();
  });

  async function loaded(env: Record<string, string>): Promise<string[]> {
    const gateway = await startGatewayProcess(
      { REDIS_URL: redis.url, ...env },
      { execArgv: [...SOURCE_EXEC_ARGV, '-r', preload] },
    );
    try {
      gateway.child.kill('SIGUSR2');
      let line: RegExpExecArray | null = null;
      while (!(line = /^LOADED (.*)$/m.exec(gateway.output()))) {
        await once(gateway.child.stdout!, 'data');
      }
      return JSON.parse(line[1] as string) as string[];
    } finally {
      await gateway.stop();
    }
  }

  it('carries none of jose, @fastify/multipart, @fastify/static when nothing needs them', async () => {
    const names = await loaded({ UPLOADS_ENABLED: 'false', WEB_ROOT: 'none' });
    expect(names).toEqual(expect.arrayContaining(['fastify', 'ioredis']));
    expect(names).not.toEqual(expect.arrayContaining(['jose']));
    expect(names).not.toEqual(expect.arrayContaining(['@fastify/multipart']));
    expect(names).not.toEqual(expect.arrayContaining(['@fastify/static']));
    expect(names).not.toEqual(expect.arrayContaining(['ajv']));
  });

  it('loads each when its feature is configured', async () => {
    const names = await loaded({
      JWT_SECRET: 'a-secret-of-at-least-thirty-two-characters',
      UPLOADS_ENABLED: 'true',
      WEB_ROOT: dir,
    });
    expect(names).toEqual(
      expect.arrayContaining(['jose', '@fastify/multipart', '@fastify/static']),
    );
    // Nor do the routes of uploads and pages have a schema.
    expect(names).not.toEqual(expect.arrayContaining(['ajv']));
    expect(names).not.toEqual(expect.arrayContaining(['@fastify/ajv-compiler']));
  });
});
