/**
 * Resume cost: the CPU one server spends opening a resumed stream, round after round, so that
 * the first round (code the process has not run much yet: what a storm's survivors run) and the
 * later ones (warm) show side by side. One server pinned to core 0; BENCH_STORM_TOPICS topics
 * of 10 events each, one subscriber per topic held open throughout (as a storm's survivors hold
 * streams of their own: no channel closes between resumes); then BENCH_RESUME_ROUNDS rounds of BENCH_RESUME_CONNECTIONS new
 * connections from this process (core 1, 500 in flight at a time), each with Last-Event-ID set
 * to its topic's 5th event: each must get events 6 to 10 exactly once and none before them,
 * then it closes. Per round: the server's CPU (all its processes) and Redis's per resumed
 * stream, from /proc, and the round's wall time. The same for node-http (plain node:http with
 * its history in memory: what Node itself charges per stream) and for Nchan.
 *
 *   BENCH_ONLY=resume npm run bench
 */
import { request } from 'node:http';
import { randomUUID } from 'node:crypto';
import { SseClient, sleep } from '@streamcast/testing';
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

/**
 * Opens one event stream and reads it until `done(text)`, then closes it. Rejects on a status
 * other than 200, an error, the end of the stream or TIMEOUT_MS.
 */
function readStream(
  url: string,
  path: string,
  headers: Record<string, string>,
  done: (text: string) => boolean,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = (err?: Error) => {
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolve(text);
    };
    const timer = setTimeout(
      () => finish(new Error(`${path}: not complete within ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
    const req = request(
      new URL(path, url),
      { agent: false, headers: { accept: 'text/event-stream', ...headers } },
      (res) => {
        if (res.statusCode !== 200) return finish(new Error(`${path}: status ${res.statusCode}`));
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
): Promise<{ ids: string[][]; keepers: SseClient[] }> {
  const keepers: SseClient[] = [];
  try {
    for (const topic of topics) {
      const keeper = await SseClient.open(`${server.url}${server.path(topic)}`);
      keepers.push(keeper);
      if (keeper.status !== 200) throw new Error(`${server.path(topic)}: status ${keeper.status}`);
    }
    // Subscribed once answered; a little more for Nchan's channel to be set up in Redis.
    await sleep(300);
    const target = server.target(topics, 8);
    try {
      for (let i = 0; i < EVENTS; i++) {
        await Promise.all(
          topics.map((_, k) => target.publish(k, JSON.stringify({ m: tag(k, i) }))),
        );
      }
    } finally {
      await target.close();
    }
    const ids: string[][] = [];
    for (const [k, keeper] of keepers.entries()) {
      const events = await keeper.waitForEvents(EVENTS);
      const index = new Map(Array.from({ length: EVENTS }, (_, i) => [tag(k, i), i]));
      const found: string[] = [];
      for (const e of events) {
        const i = index.get((JSON.parse(e.data) as { m?: string }).m ?? '');
        if (i !== undefined && e.id !== undefined) found[i] = e.id;
      }
      if (found.filter((id) => id !== undefined).length < EVENTS) {
        throw new Error(`the subscriber of topic ${k} did not see the id of every event`);
      }
      ids.push(found);
    }
    return { ids, keepers };
  } catch (err) {
    for (const keeper of keepers) keeper.close();
    throw err;
  }
}

/** The text an event carries (its data is `{"m":<tag>}`), unique to the run. */
type Tag = (topic: number, event: number) => string;

async function runResumeOne(ctx: BenchContext, kind: ServerKind): Promise<ResumeRow> {
  const p = ctx.params;
  const run = randomUUID().slice(0, 8);
  const tag: Tag = (k, i) => `${run}.${k}.${i}`;
  // The tag as found in the stream, with JSON.stringify's quotes: event 1's is not in event 10's.
  const marker = (k: number, i: number) => `"${tag(k, i)}"`;
  const topics = Array.from({ length: p.stormTopics }, (_, k) => `bench-resume-${run}-${k}`);
  const server = await startServer(kind, ctx.redis.url);
  let keepers: SseClient[] = [];
  try {
    log(`resume ${kind}: ${topics.length} topics of ${EVENTS} events`);
    let ids: string[][];
    ({ ids, keepers } = await seed(server, topics, tag));
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
          );
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
    for (const keeper of keepers) keeper.close();
    await server.stop();
  }
}

export async function runResume(ctx: BenchContext): Promise<ResumeRow[]> {
  const rows = [await runResumeOne(ctx, 'streamcast')];
  if (ctx.params.nodeHttp) rows.push(await runResumeOne(ctx, 'node-http'));
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
    "storm's survivors do); later rounds, warm code (V8 has optimised the path). node-http: plain node:http on",
    "the gateway's Node with its history in memory (lib/node-http-server.js), what Node itself charges per stream.",
  );
  return out.join('\n');
}
