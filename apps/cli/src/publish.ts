import { createInterface } from 'node:readline';
import {
  ConfigError,
  defineVar,
  engineEnv,
  envSchema,
  parseEnv,
  type EnvOf,
} from '@streamcast/config';
import { redisConnection } from '@streamcast/engine-redis';
import { MAX_BATCH_EVENTS, assertTopic, describe, normalizeEventName } from '@streamcast/protocol';
import {
  createPublisher,
  PublishError,
  type PublishOutcome,
  type Publisher,
} from '@streamcast/publisher';
import {
  EXIT,
  UsageError,
  note,
  parseCommandLine,
  parseCount,
  parseHttpUrl,
  parseSeconds,
  redactUrl,
  runMain,
} from '@streamcast/command-line';

const PROGRAM = 'streamcast-publish';
const DEFAULT_GATEWAY = 'http://127.0.0.1:3000';
const DEFAULT_BATCH = 100;

export const PUBLISH_HELP = `Usage:
  ${PROGRAM} [options] <topic> [<event>] <data>
  ${PROGRAM} [options] [<topic> [<event>]] [-]  < events.jsonl

Publishes one event given as arguments, or one event per line of standard input, and prints
each event's id (its cursor, for tail --from) on a line of its own.

Arguments:
  <topic>   1-200 characters of A-Z a-z 0-9 _ - . : /
  <event>   the event type, 1-64 characters of A-Z a-z 0-9 _ - . : (default: message);
            given only together with <data>: two arguments are <topic> <data>
  <data>    the event's data as JSON: '{"title":"hi"}', 42, '"some text"', null
  -         read events from standard input; also when <data> is left out and standard
            input is not a terminal

Standard input:
  One JSON object per line: {"topic": "<t>", "event": "<type>", "data": <any JSON>}. "topic"
  and "event" may be left out when given as arguments; "data" is required (it may be null).
  "private": {"fields": [...], "claim": "..."} (or a list) marks fields of "data" only
  subscribers whose token carries the claim see (docs/security.md, "Private fields").
  Blank lines are skipped. With --text, each line is the data, sent as a string, to <topic>.
  Events are published in input order, in batches of the lines that have arrived while the
  one before was being published (up to --batch lines: one POST /publish, or one round trip
  to Redis), and each id is printed, in input order, once stored. A bad line (not JSON, bad
  topic or event, refused by the gateway) is reported on stderr with its line number and
  skipped; the lines after it are still published, and the exit code says something went
  wrong. If the target is unreachable or refuses the client (no or bad token), the run stops
  there: the lines after it (after its batch, if some of the batch was stored) are not
  published.

Options:
  --url <url>       gateway to publish through, with POST /publish
                    (env GATEWAY_URL; default ${DEFAULT_GATEWAY})
  --token <jwt>     bearer token for the gateway (env STREAMCAST_TOKEN; safer than the
                    command line, which other users of the machine can see)
  --redis <url>     publish straight into Redis, as the gateways' REDIS_URL (env REDIS_URL)
  --prefix <p>      Redis key prefix, as the gateways' REDIS_PREFIX (env REDIS_PREFIX;
                    default sse)
  --text            send <data> (or each line of standard input) as a string, unparsed
  --batch <n>       at most n lines of standard input in one publish, 1-${MAX_BATCH_EVENTS}
                    (default ${DEFAULT_BATCH}; 1 publishes one event per request, as gateways
                    before batch publishing need)
  --timeout <s>     give up on a publish after this many seconds (default 5)
  -h, --help        show this help

Target: --redis if given, else --url if given, else REDIS_CLUSTER_NODES if set (a Redis
Cluster's seed nodes host:port,…; REDIS_URL then gives only credentials and TLS), else
REDIS_URL if set, else GATEWAY_URL, else ${DEFAULT_GATEWAY}. Straight into Redis, HISTORY_MAX_LEN and HISTORY_MAX_AGE_S are honoured
as by the gateways; set them alike.

Exit codes:
  0  every event was published
  1  a publish failed: target unreachable, or refused (the error code and message are printed)
  2  bad usage: unknown option, bad topic or event, data or a line that is not JSON
  (when both happened in one run: 1)

Examples:
  ${PROGRAM} news headline '{"title":"hello"}'
  ${PROGRAM} news '"just a message event"'
  ${PROGRAM} --text news 'plain text, no quotes needed'
  printf '%s\\n' '{"topic":"news","data":1}' '{"topic":"news","event":"headline","data":{"title":"hi"}}' | ${PROGRAM}
  seq 3 | ${PROGRAM} --text counter tick -
  ${PROGRAM} --redis redis://127.0.0.1:6379 stocks/AAPL priceUpdate '{"symbol":"AAPL","price":"101.50","changePercent":"0.25"}'
  STREAMCAST_TOKEN=eyJ... ${PROGRAM} --url https://sse.example.com user/42/inbox note '{"n":1}'

From the repository root: npm run -s publish-event -- news headline '{"title":"hello"}'
`;

const text = defineVar((raw) => raw);
const cliEnv = envSchema({
  REDIS_URL: engineEnv.REDIS_URL,
  REDIS_CLUSTER_NODES: engineEnv.REDIS_CLUSTER_NODES,
  REDIS_PREFIX: engineEnv.REDIS_PREFIX,
  HISTORY_MAX_LEN: engineEnv.HISTORY_MAX_LEN,
  HISTORY_MAX_AGE_S: engineEnv.HISTORY_MAX_AGE_S,
  GATEWAY_URL: text,
  STREAMCAST_TOKEN: text,
});
type Env = EnvOf<typeof cliEnv>;

const REDIS_URL_RE = /^rediss?:\/\/[^\s]+$/;
const PREFIX_RE = /^[A-Za-z0-9_\-.:]{1,64}$/;

type Target =
  | {
      kind: 'redis';
      url: string;
      /** A Redis Cluster's seed nodes (REDIS_CLUSTER_NODES); `url` then gives credentials only. */
      cluster?: Array<{ host: string; port: number }>;
      prefix: string;
      retention: { maxLen: number; maxAgeS: number };
    }
  | { kind: 'http'; url: string; token: string | undefined };

interface Draft {
  topic: string;
  event: string;
  data: unknown;
  /** Fields only some subscribers see (docs/security.md, "Private fields"). */
  private?: unknown;
}

/** How a publish ended, and whether the lines after it can still be tried. */
type Outcome =
  | { ok: true; id: string }
  | { ok: false; exit: typeof EXIT.failed | typeof EXIT.usage; message: string; stop: boolean };

export function main(argv: string[]): void {
  runMain(PROGRAM, () => publishCommand(argv));
}

async function publishCommand(argv: string[]): Promise<number> {
  const parsed = parseCommandLine({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      redis: { type: 'string' },
      prefix: { type: 'string' },
      text: { type: 'boolean' },
      batch: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(PUBLISH_HELP);
    return EXIT.ok;
  }

  let env: Env;
  try {
    env = parseEnv(cliEnv);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const target = chooseTarget(values, env);
  const timeoutMs = (parseSeconds('--timeout', values.timeout) ?? 5) * 1000;
  const text = values.text ?? false;
  const batchSize = parseCount('--batch', values.batch) ?? DEFAULT_BATCH;
  if (batchSize > MAX_BATCH_EVENTS) {
    throw new UsageError(`--batch must be at most ${MAX_BATCH_EVENTS} (got ${batchSize})`);
  }

  if (positionals.length > 3) {
    throw new UsageError(
      `too many arguments (${positionals.length}); quote <data> as one argument`,
    );
  }
  if (positionals.length === 0 && process.stdin.isTTY) {
    throw new UsageError('no topic: give <topic> [<event>] <data>, or pipe JSON lines in');
  }
  const fromStdin =
    positionals.length === 0 ||
    positionals.at(-1) === '-' ||
    (positionals.length === 1 && !process.stdin.isTTY);
  const opener = lazyPublisher(target, timeoutMs);
  try {
    if (fromStdin) {
      const args = positionals.at(-1) === '-' ? positionals.slice(0, -1) : positionals;
      const defaults = {
        topic: args[0] === undefined ? undefined : checkTopic(args[0]),
        event: args[1] === undefined ? undefined : checkEvent(args[1]),
      };
      if (text && defaults.topic === undefined) {
        throw new UsageError('--text with standard input needs <topic> as an argument');
      }
      return await publishLines(opener, defaults, text, positionals.length === 0, batchSize);
    }
    const [topicArg, second, third] = positionals as [
      string,
      string | undefined,
      string | undefined,
    ];
    const topic = checkTopic(topicArg);
    if (second === undefined) {
      throw new UsageError(
        `no data for ${describe(topic)}: give <topic> [<event>] <data>, or pipe lines in`,
      );
    }
    const [event, rawData] =
      third === undefined ? ['message', second] : [checkEvent(second), third];
    const data = text ? rawData : parseDataArgument(rawData, third === undefined);
    const outcome = await publishOne(await opener.open(), { topic, event, data });
    if (!outcome.ok) {
      note(PROGRAM, outcome.message);
      return outcome.exit;
    }
    process.stdout.write(`${outcome.id}\n`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof PublishError) {
      note(PROGRAM, `${err.code}: ${err.message}`);
      return EXIT.failed;
    }
    throw err;
  } finally {
    await opener.close();
  }
}

function chooseTarget(
  values: { url?: string; token?: string; redis?: string; prefix?: string },
  env: Env,
): Target {
  if (values.url !== undefined && values.redis !== undefined) {
    throw new UsageError('give --url or --redis, not both');
  }
  const cluster =
    values.redis === undefined && values.url === undefined ? env.REDIS_CLUSTER_NODES : undefined;
  const redisUrl =
    values.redis ??
    (values.url === undefined ? (env.REDIS_URL ?? (cluster ? '' : undefined)) : undefined);
  if (redisUrl !== undefined) {
    if (values.redis !== undefined && !REDIS_URL_RE.test(values.redis)) {
      throw new UsageError(
        `--redis must be a redis:// or rediss:// URL (got ${JSON.stringify(values.redis)})`,
      );
    }
    if (values.token !== undefined)
      throw new UsageError('--token is for a gateway (--url), not --redis');
    if (values.prefix !== undefined && !PREFIX_RE.test(values.prefix)) {
      throw new UsageError(
        `--prefix must be 1-64 characters of A-Z a-z 0-9 _ - . : (got ${JSON.stringify(values.prefix)})`,
      );
    }
    return {
      kind: 'redis',
      url: redisUrl,
      ...(cluster ? { cluster } : {}),
      prefix: values.prefix ?? env.REDIS_PREFIX,
      retention: { maxLen: env.HISTORY_MAX_LEN, maxAgeS: env.HISTORY_MAX_AGE_S },
    };
  }
  if (values.prefix !== undefined) throw new UsageError('--prefix is for --redis, not a gateway');
  const raw = values.url ?? env.GATEWAY_URL ?? DEFAULT_GATEWAY;
  parseHttpUrl(values.url !== undefined ? '--url' : 'GATEWAY_URL', raw);
  return { kind: 'http', url: raw, token: values.token ?? (env.STREAMCAST_TOKEN || undefined) };
}

/** Connects on first use, so bad input or an empty stdin never waits for the target. */
function lazyPublisher(target: Target, timeoutMs: number) {
  let pending: Promise<Publisher> | undefined;
  return {
    open(): Promise<Publisher> {
      pending ??= openPublisher(target, timeoutMs);
      return pending;
    },
    async close(): Promise<void> {
      const publisher = await pending?.catch(() => undefined);
      await publisher?.close();
    },
  };
}

async function openPublisher(target: Target, timeoutMs: number): Promise<Publisher> {
  if (target.kind === 'http') {
    return createPublisher({ gatewayUrl: target.url, token: target.token, timeoutMs });
  }
  const cluster = target.cluster;
  const shown = cluster
    ? `cluster ${cluster.map((n) => `${n.host}:${n.port}`).join(',')}`
    : redactUrl(target.url);
  let timer: NodeJS.Timeout | undefined;
  // ioredis keeps retrying an unreachable server; give up after the same bound as a publish.
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(new PublishError(`cannot reach ${shown} within ${timeoutMs / 1000} s`, 'NOT_READY')),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      createPublisher({
        ...(cluster
          ? {
              redisOptions: redisConnection({
                REDIS_CLUSTER_NODES: cluster,
                REDIS_URL: target.url || undefined,
              }),
            }
          : { redisUrl: target.url }),
        keyPrefix: target.prefix,
        retention: target.retention,
        timeoutMs,
      }),
      timeout,
    ]);
  } catch (err) {
    if (err instanceof PublishError) {
      const message = target.url ? err.message.split(target.url).join(shown) : err.message;
      throw new PublishError(message, err.code, err.status);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function publishOne(publisher: Publisher, draft: Draft): Promise<Outcome> {
  try {
    const options = draft.private === undefined ? undefined : { private: draft.private };
    return { ok: true, id: await publisher.publish(draft.topic, draft.event, draft.data, options) };
  } catch (err) {
    return failure(err);
  }
}

/** Publishes lines as one batch; one outcome per line, in order. */
async function publishBatch(publisher: Publisher, drafts: Draft[]): Promise<Outcome[]> {
  let outcomes: PublishOutcome[];
  try {
    outcomes = await publisher.publishMany(drafts);
  } catch (err) {
    return drafts.map(() => failure(err));
  }
  return outcomes.map((o) => ('id' in o ? { ok: true, id: o.id } : failure(o.error)));
}

/** A failed publish: what it means for the exit code, and whether the run can go on. */
function failure(err: unknown): Outcome & { ok: false } {
  if (!(err instanceof PublishError)) {
    return { ok: false, exit: EXIT.failed, message: (err as Error).message, stop: true };
  }
  const message = `${err.code}: ${err.message}`;
  // Checked here, before sending: the payload does not fit the topic's schema (seed topics).
  if (err.status === undefined && (err.code === 'BODY_INVALID' || err.code === 'DATA_MISSING')) {
    return { ok: false, exit: EXIT.usage, message, stop: false };
  }
  // Refused for this event only: later events may well be accepted.
  const aboutThisEvent = err.status === 400 || err.status === 413 || err.code === 'TOPIC_FORBIDDEN';
  return { ok: false, exit: EXIT.failed, message, stop: !aboutThisEvent };
}

async function publishLines(
  opener: ReturnType<typeof lazyPublisher>,
  defaults: { topic: string | undefined; event: string | undefined },
  text: boolean,
  nothingGiven: boolean,
  batchSize: number,
): Promise<number> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  /** Lines read and not yet published (or reported), in input order. */
  const queue: Array<{ lineNo: number; draft: Draft } | { lineNo: number; bad: string }> = [];
  let lineNo = 0;
  let events = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  lines.on('line', (line) => {
    lineNo++;
    if (line.trim() === '') return;
    events++;
    try {
      queue.push({ lineNo, draft: parseLine(line, defaults, text) });
    } catch (err) {
      queue.push({ lineNo, bad: (err as Error).message });
    }
    // Reading stays ahead of publishing by a few batches, no more.
    if (queue.length >= 4 * batchSize) lines.pause();
    wake?.();
  });
  lines.on('close', () => {
    ended = true;
    wake?.();
  });

  let exit: number = EXIT.ok;
  const worse = (code: number) => {
    // A failed publish outranks bad input: it is the one a script must not ignore.
    if (exit !== EXIT.failed) exit = code;
  };
  let stopped = false;
  while (!stopped) {
    if (queue.length === 0) {
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    // Bad lines are reported in their place; the good ones up to the next bad line form a batch.
    const head = queue[0]!;
    if ('bad' in head) {
      queue.shift();
      note(PROGRAM, `line ${head.lineNo}: ${head.bad}`);
      worse(EXIT.usage);
      continue;
    }
    let size = 1;
    while (size < batchSize && size < queue.length && 'draft' in queue[size]!) size++;
    const batch = queue.splice(0, size) as Array<{ lineNo: number; draft: Draft }>;
    // Resuming (or closing) a closed readline throws on Node 24 and later.
    if (!ended && queue.length < 4 * batchSize) lines.resume();
    let outcomes: Outcome[];
    try {
      const publisher = await opener.open();
      outcomes =
        batch.length === 1
          ? [await publishOne(publisher, batch[0]!.draft)]
          : await publishBatch(
              publisher,
              batch.map((b) => b.draft),
            );
    } catch (err) {
      outcomes = batch.map(() => failure(err));
    }
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i]!;
      if (outcome.ok) {
        process.stdout.write(`${outcome.id}\n`);
        continue;
      }
      worse(outcome.exit);
      const at = batch[i]!.lineNo;
      if (outcome.stop && !outcomes.slice(i + 1).some((o) => o.ok)) {
        // Nothing after it was stored: the run ends at this line.
        note(
          PROGRAM,
          `line ${at}: ${outcome.message}; stopped, the lines after it were not published`,
        );
        stopped = true;
        break;
      }
      note(PROGRAM, `line ${at}: ${outcome.message}`);
      if (outcome.stop) stopped = true;
    }
    if (stopped && outcomes.at(-1)?.ok) {
      note(
        PROGRAM,
        `stopped after line ${batch.at(-1)!.lineNo}, the lines after it were not published`,
      );
    }
  }
  if (stopped) {
    if (!ended) lines.close();
    process.stdin.destroy();
  }
  if (events === 0) {
    if (nothingGiven) {
      throw new UsageError(
        'nothing to publish: give <topic> [<event>] <data>, or JSON lines on standard input',
      );
    }
    note(PROGRAM, 'no events on standard input');
  }
  return exit;
}

function parseLine(
  line: string,
  defaults: { topic: string | undefined; event: string | undefined },
  text: boolean,
): Draft {
  if (text)
    return { topic: defaults.topic as string, event: defaults.event ?? 'message', data: line };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new UsageError(
      `not JSON (${(err as Error).message}); expected {"topic", "event"?, "data"}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError('not a JSON object; expected {"topic", "event"?, "data"}');
  }
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).filter(
    (k) => k !== 'topic' && k !== 'event' && k !== 'data' && k !== 'private',
  );
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown field ${describe(unknown[0])}; expected {"topic", "event"?, "data"}`,
    );
  }
  const topic = fields.topic ?? defaults.topic;
  if (topic === undefined) throw new UsageError('no "topic" (and no <topic> argument)');
  if (!('data' in fields)) throw new UsageError('no "data" (it may be null)');
  return {
    topic: checkTopic(topic),
    event: checkEvent(fields.event ?? defaults.event ?? 'message'),
    data: fields.data,
    private: fields.private,
  };
}

function checkTopic(topic: unknown): string {
  try {
    assertTopic(topic);
    return topic;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function checkEvent(event: unknown): string {
  try {
    return normalizeEventName(event);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function isEventName(text: string): boolean {
  try {
    normalizeEventName(text);
    return true;
  } catch {
    return false;
  }
}

function parseDataArgument(raw: string, couldBeEvent: boolean): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    // Two arguments are <topic> <data>; someone who meant <topic> <event> gets told how.
    const hint = couldBeEvent && isEventName(raw) ? ', or give <topic> <event> <data>' : '';
    throw new UsageError(
      `data ${describe(raw)} is not JSON; quote a string as '"text"' or use --text${hint}`,
    );
  }
}

if (require.main === module) main(process.argv.slice(2));
