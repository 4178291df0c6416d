/**
 * Resume cost: the CPU one server spends opening a resumed stream, round after round, so that
 * the first round (code the process has not run much yet: what a storm's survivors run) and the
 * later ones (warm) show side by side. One server pinned to core 0; BENCH_STORM_TOPICS topics
 * of 10 events each, one subscriber per topic held open throughout (as a storm's survivors hold
 * streams of their own: no channel closes between resumes); then BENCH_RESUME_ROUNDS rounds of BENCH_RESUME_CONNECTIONS new
 * connections from this process (core 1, 500 in flight at a time), each with Last-Event-ID set
 * to its topic's 5th event: each must get events 6 to 10 exactly once and none before them,
 * then it closes. Per round: the server's CPU (all its processes) and Redis's per resumed
 * stream, from /proc, and the round's wall time. The same for Nchan.
 *
 *   BENCH_ONLY=resume npm run bench
 */
import { request } from 'node:http';
import { randomUUID } from 'node:crypto';
import { sleep } from '@streamcast/testing';
import type { BenchContext } from './lib/context';
import { nchanMissing } from './lib/nginx';
import { cpuSeconds, processesCpuSeconds } from './lib/procs';
import { int, log, table } from './lib/report';
import { startServer, type ServerKind, type ServerUnderTest } from './lib/servers';

const EVENTS = 10;
/** Index of the event whose id the resuming clients send: they are owed the ones after it. */
const FROM = 4;
const IN_FLIGHT = 500;
const TIMEOUT_MS = 20_000;

export interface ResumeRound {
  /** Wall time of the round: first request to last stream complete. */
  ms: number;
  /** CPU microseconds per resumed stream: the server's processes, and Redis. */
  serverUs: number;
  redisUs: number;
  /** Streams that failed (status, error, timeout) or whose events were wrong. */
  failed: number;
}

export interface ResumeRow {
  server: ServerKind;
  connections: number;
  rounds: ResumeRound[];
}

/** One event stream being read. */
interface Reading {
  /** Resolves to what came, once `done(text)` held; rejects as described at readStream. */
  result: Promise<string>;
  /** What came so far. */
  text(): string;
  /** Closes the stream (result settles as it was, or with an error if it was not done). */
  close(): void;
}

/**
 * Opens one event stream and reads it until `done(text)`, then closes it; `timeoutMs` 0: no
 * time limit. `onOpen` runs on a 200 answer. `result` rejects on any other status, an error,
 * the end of the stream, the time limit or close() before it was done.
 */
function readStream(
  url: string,
  path: string,
  headers: Record<string, string>,
  done: (text: string) => boolean,
  timeoutMs: number,
  onOpen: () => void = () => {},
): Reading {
  let text = '';
  let finish: (err?: Error) => void = () => {};
  const result = new Promise<string>((resolve, reject) => {
    finish = (err?: Error) => {
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolve(text);
    };
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () => finish(new Error(`${path}: not complete within ${timeoutMs} ms`)),
            timeoutMs,
          )
        : undefined;
    const req = request(
      new URL(path, url),
      { agent: false, headers: { accept: 'text/event-stream', ...headers } },
      (res) => {
        if (res.statusCode !== 200) return finish(new Error(`${path}: status ${res.statusCode}`));
        onOpen();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (done(text)) finish();
        });
        res.on('end', () => finish(new Error(`${path}: ended before it was complete`)));
      },
    );
    req.on('error', (err) => finish(err));
    req.end();
  });
  return { result, text: () => text, close: () => finish(new Error(`${path}: closed`)) };
}

/** How often `needle` occurs in `text`. */
function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/**
 * Opens one subscriber per topic, publishes EVENTS events on each, and returns each event's id
 * as its subscriber saw it (ids[topic][event]) and the subscribers: they stay open, as a storm's
 * survivors hold streams of their own, so that no topic's channel closes between resumes.
 */
async function seed(
  server: ServerUnderTest,
  topics: string[],
  tag: Tag,
): Promise<{ ids: string[][]; keepers: Reading[] }> {
  const marker = quoted(tag);
  let open = 0;
  const keepers = topics.map((topic) =>
    readStream(
      server.url,
      server.path(topic),
      {},
      () => false,
      0,
      () => open++,
    ),
  );
  const failed = Promise.race(keepers.map((k) => k.result));
  failed.catch(() => {});
  const settle = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!ok() && Date.now() < deadline) await Promise.race([sleep(20), failed]);
    if (!ok()) throw new Error(`the subscribers of ${topics.length} topics: ${what}`);
  };
  await settle('not all answered', () => open === topics.length);
  // Subscribed once answered; a little more for Nchan's channel to be set up in Redis.
  await sleep(300);
  const target = server.target(topics, 8);
  try {
    for (let i = 0; i < EVENTS; i++) {
      await Promise.all(topics.map((_, k) => target.publish(k, JSON.stringify({ m: tag(k, i) }))));
    }
  } finally {
    await target.close();
  }
  await settle('not every event came', () =>
    keepers.every((keeper, k) => keeper.text().includes(marker(k, EVENTS - 1))),
  );
  const ids = keepers.map((keeper, k) => {
    const found: string[] = [];
    for (const block of keeper.text().split(/\r?\n\r?\n/)) {
      const id = /^id: ?(.*)$/m.exec(block)?.[1];
      for (let i = 0; i < EVENTS; i++) {
        if (id !== undefined && block.includes(marker(k, i))) found[i] = id;
      }
    }
    if (found.filter((id) => id !== undefined).length < EVENTS) {
      throw new Error(`the subscriber of topic ${k} did not see the id of every event`);
    }
    return found;
  });
  return { ids, keepers };
}

/** The text an event carries (its data is `{"m":<tag>}`), unique to the run. */
type Tag = (topic: number, event: number) => string;

/** The tag with JSON.stringify's quotes, as found in the stream: event 1's is not in event 10's. */
const quoted =
  (tag: Tag): Tag =>
  (k, i) =>
    `"${tag(k, i)}"`;

async function runResumeOne(ctx: BenchContext, kind: ServerKind): Promise<ResumeRow> {
  const p = ctx.params;
  const run = randomUUID().slice(0, 8);
  const tag: Tag = (k, i) => `${run}.${k}.${i}`;
  const marker = quoted(tag);
  const topics = Array.from({ length: p.stormTopics }, (_, k) => `bench-resume-${run}-${k}`);
  const server = await startServer(kind, ctx.redis.url);
  let stopKeepers = () => {};
  try {
    log(`resume ${kind}: ${topics.length} topics of ${EVENTS} events`);
    const { ids, keepers } = await seed(server, topics, tag);
    stopKeepers = () => {
      for (const keeper of keepers) {
        keeper.result.catch(() => {});
        keeper.close();
      }
    };
    const redisPid = ctx.redis.pid as number;
    const rounds: ResumeRound[] = [];
    for (let round = 0; round < p.resumeRounds; round++) {
      const serverCpu = processesCpuSeconds(server.pids());
      const redisCpu = cpuSeconds(redisPid);
      const started = performance.now();
      let failed = 0;
      let firstError: Error | undefined;
      const one = async (j: number) => {
        const k = j % topics.length;
        try {
          const text = await readStream(
            server.url,
            server.path(topics[k] as string),
            { 'last-event-id': (ids[k] as string[])[FROM] as string },
            (t) => t.includes(marker(k, EVENTS - 1)),
            TIMEOUT_MS,
          ).result;
          for (let i = 0; i < EVENTS; i++) {
            if (occurrences(text, marker(k, i)) !== (i > FROM ? 1 : 0)) {
              throw new Error(
                `topic ${k}: event ${i + 1} came ${occurrences(text, marker(k, i))} times`,
              );
            }
          }
        } catch (err) {
          failed++;
          firstError ??= err as Error;
        }
      };
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(IN_FLIGHT, p.resumeConnections) }, async () => {
          while (next < p.resumeConnections) await one(next++);
        }),
      );
      const wall = performance.now() - started;
      // The server's work of closing them counts too.
      await sleep(300);
      rounds.push({
        ms: wall,
        serverUs: ((processesCpuSeconds(server.pids()) - serverCpu) * 1e6) / p.resumeConnections,
        redisUs: ((cpuSeconds(redisPid) - redisCpu) * 1e6) / p.resumeConnections,
        failed,
      });
      if (firstError)
        log(`resume ${kind}: round ${round + 1}: ${failed} failed, first: ${firstError.message}`);
      await sleep(500);
    }
    return { server: kind, connections: p.resumeConnections, rounds };
  } catch (err) {
    const output = server.output().trim();
    if (output) log(`${kind} server output:\n${output.slice(-2000)}`);
    throw err;
  } finally {
    stopKeepers();
    await server.stop();
  }
}

export async function runResume(ctx: BenchContext): Promise<ResumeRow[]> {
  const rows = [await runResumeOne(ctx, 'streamcast')];
  if (!nchanMissing()) rows.push(await runResumeOne(ctx, 'nchan'));
  return rows;
}

/** Every stream of every round got exactly the events it was owed. */
export function resumeOk(row: ResumeRow): boolean {
  return row.rounds.every((r) => r.failed === 0);
}

export function formatResume(ctx: BenchContext, rows: ResumeRow[]): string {
  const p = ctx.params;
  const out = [
    `resume cost: ${int(p.resumeConnections)} resumed streams a round (Last-Event-ID, ${EVENTS - FROM - 1} events owed ` +
      `each, ${IN_FLIGHT} in flight), ${p.stormTopics} topics, ${p.resumeRounds} rounds on one fresh server`,
    table(
      ['server', 'round', 'wall ms', 'server CPU µs / stream', 'Redis CPU µs / stream', 'failed'],
      rows.flatMap((r) =>
        r.rounds.map((round, i) => [
          r.server,
          String(i + 1),
          int(round.ms),
          int(round.serverUs),
          int(round.redisUs),
          int(round.failed),
        ]),
      ),
    ),
  ];
  const missing = nchanMissing();
  if (missing) out.push(missing);
  out.push(
    'CPU from /proc at 10 ms resolution, closing included. Round 1 runs code the server has barely run (as a',
    "storm's survivors do); later rounds, warm code (V8 has optimised the path).",
  );
  return out.join('\n');
}
