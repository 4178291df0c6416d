import { readFileSync, readdirSync } from 'node:fs';
import { provideRedis, startGatewayProcess, type TestRedis } from '@streamcast/testing';

/** Each thread of `pid`: its name and nice value (field 19 of /proc/<pid>/task/<tid>/stat). */
function threads(pid: number): Array<{ name: string; nice: number }> {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const dir = `/proc/${pid}/task/${tid}`;
    const fields = readFileSync(`${dir}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return { name: readFileSync(`${dir}/comm`, 'utf8').trim(), nice: Number(fields[16]) };
  });
}

/** Node 22 and later name V8's worker threads; Node 20 names none, and nothing is changed. */
const namesWorkers = Number(process.versions.node.split('.')[0]) >= 22;

const linux = process.platform === 'linux' ? describe : describe.skip;

linux("a gateway's V8 worker threads (V8_WORKER_NICE)", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await provideRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it.each([
    [undefined, 10],
    ['19', 19],
    ['0', 0],
  ])(
    'V8_WORKER_NICE=%s: V8Worker threads at nice %d, every other thread at 0',
    async (setting, nice) => {
      const gateway = await startGatewayProcess({
        REDIS_URL: redis.url,
        ...(setting === undefined ? {} : { V8_WORKER_NICE: setting }),
      });
      try {
        const all = threads(gateway.child.pid as number);
        const workers = all.filter((t) => t.name.endsWith('V8Worker'));
        const others = all.filter((t) => !t.name.endsWith('V8Worker'));
        if (namesWorkers) {
          expect(workers.length).toBeGreaterThan(0);
          expect(workers.map((t) => t.nice)).toEqual(workers.map(() => nice));
        } else {
          expect(workers).toEqual([]);
        }
        // The event loop and every other thread keep their priority.
        expect(others.length).toBeGreaterThan(0);
        expect(others.map((t) => t.nice)).toEqual(others.map(() => 0));
      } finally {
        await gateway.stop();
      }
    },
  );
});
