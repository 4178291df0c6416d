import { ConfigError, parseEnv } from '@streamcast/config';
import { describeConnection, redisConnection } from '@streamcast/engine-redis';
import { createPublisher, type Publisher } from '@streamcast/publisher';
import pino from 'pino';
import { parseArgs } from './args';
import { runnerEnv, type RunnerEnv } from './env';
import { UsageError } from './errors';
import { randomSeed } from './random';
import {
  describeOptions,
  isProducerName,
  parseOptions,
  producerDefinition,
  producerNames,
  producers,
  startAll,
  startProducer,
  type Producer,
  type ProducerName,
  type RawOptions,
} from './index';

/**
 * `npm run producer -- <name> [--option value …] [--seed N]`: runs one producer (or `all`)
 * against Redis (REDIS_URL) or a gateway (GATEWAY_URL). Exit codes: 0 after SIGINT/SIGTERM or
 * --help, 1 for the environment (or an unreachable Redis), 2 for the command line.
 */

const CONNECT_TIMEOUT_MS = 10_000;

/** Descriptions are written for Markdown; a terminal needs no backticks. */
const plain = (text: string) => text.replace(/`/g, '');

function helpText(name?: string): string {
  const lines: string[] = [];
  const optionLines = (
    def: (typeof producers)[ProducerName],
    extra: Array<[string, string]> = [],
  ) => {
    const rows = [...describeOptions(def), ...extra];
    const width = Math.max(...rows.map(([flag]) => flag.length));
    for (const [flag, text] of rows) lines.push(`    ${flag.padEnd(width)}  ${text}`);
  };
  if (name !== undefined && isProducerName(name)) {
    const def = producers[name];
    lines.push(
      `Usage: npm run producer -- ${name} [--option value …] [--seed N]`,
      '',
      `${name}: ${plain(def.description)}`,
      '',
      '  Options:',
    );
    optionLines(def, [
      [
        '--seed <int>',
        'seed of the random source: the same seed, the same events (default random)',
      ],
    ]);
    return `${lines.join('\n')}\n`;
  }
  lines.push(
    'Usage: npm run producer -- <name> [--option value …] [--seed N]',
    '       npm run producer -- all [--<name>.<option> value …] [--seed N]',
    '       npm run producer -- [<name>] --help',
    '',
    "Publishes demo events for the seed's pages until SIGINT/SIGTERM.",
    '',
    'Target (environment):',
    '  REDIS_URL      set: publish straight into this Redis (REDIS_PREFIX, default sse, as the gateways)',
    '  REDIS_SENTINELS  host:port,… : the same, on the master these Sentinels name (REDIS_SENTINEL_NAME)',
    '  REDIS_CLUSTER_NODES  host:port,… : the same, into this Redis Cluster (seed nodes)',
    '  GATEWAY_URL    otherwise: POST /publish on this gateway (default http://127.0.0.1:3000)',
    '  STREAMCAST_TOKEN  bearer token for GATEWAY_URL, when the gateway requires one',
    '  LOG_LEVEL      pino level (default info)',
    '',
    'Exit codes: 0 stopped by a signal, 1 bad environment or Redis unreachable, 2 bad command line.',
    '',
    'Producers (options also as --kebab-case; lists are comma-separated):',
  );
  for (const key of producerNames) {
    lines.push('', `  ${key}: ${plain(producers[key].description)}`);
    optionLines(producers[key]);
  }
  lines.push(
    '',
    '  all: every producer above at once; options as --<name>.<option>, e.g. --sports.minuteMs 200',
  );
  return `${lines.join('\n')}\n`;
}

/** `--stocks.symbols X` → { stocks: { symbols: X } }, for `all`. */
function splitOverrides(options: RawOptions): Partial<Record<ProducerName, RawOptions>> {
  const out: Partial<Record<ProducerName, RawOptions>> = {};
  for (const [key, value] of Object.entries(options)) {
    const dot = key.indexOf('.');
    const name = dot === -1 ? '' : key.slice(0, dot);
    if (!isProducerName(name)) {
      throw new UsageError(
        `all: option --${key} must be --<producer>.<option>, e.g. --stocks.intervalMs 500`,
      );
    }
    (out[name] ??= {})[key.slice(dot + 1)] = value;
  }
  return out;
}

function fail(code: number, message: string): never {
  process.stderr.write(`producer: ${message}\n`);
  process.exit(code);
}

async function connect(env: RunnerEnv): Promise<Publisher> {
  // REDIS_CLUSTER_NODES, REDIS_SENTINELS (the producer follows the master through a failover) or REDIS_URL.
  const redisOptions = redisConnection(env);
  if (!redisOptions) {
    return createPublisher({ gatewayUrl: env.GATEWAY_URL, token: env.STREAMCAST_TOKEN });
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `cannot reach Redis at ${env.REDIS_URL && !env.REDIS_SENTINELS && !env.REDIS_CLUSTER_NODES ? env.REDIS_URL : describeConnection(redisOptions)} within ${CONNECT_TIMEOUT_MS / 1000} s`,
          ),
        ),
      CONNECT_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([
      createPublisher({
        redisOptions,
        keyPrefix: env.REDIS_PREFIX,
        retention: { maxLen: env.HISTORY_MAX_LEN, maxAgeS: env.HISTORY_MAX_AGE_S },
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>;
  let overrides: Partial<Record<ProducerName, RawOptions>> = {};
  try {
    args = parseArgs(process.argv.slice(2));
    if (args.help) {
      if (args.name !== undefined && args.name !== 'all') producerDefinition(args.name);
      process.stdout.write(helpText(args.name));
      process.exit(0);
    }
    if (args.name === undefined) {
      throw new UsageError(
        `name a producer: one of ${producerNames.join(', ')}, all (--help lists their options)`,
      );
    }
    // Validate everything before connecting anywhere.
    if (args.name === 'all') {
      overrides = splitOverrides(args.options);
      for (const name of producerNames) parseOptions(producers[name], overrides[name]);
    } else {
      parseOptions(producerDefinition(args.name), args.options);
    }
  } catch (err) {
    if (err instanceof UsageError) fail(2, err.message);
    throw err;
  }

  let env: RunnerEnv;
  try {
    env = parseEnv(runnerEnv);
  } catch (err) {
    if (err instanceof ConfigError) fail(1, err.message);
    throw err;
  }

  const log = pino({ level: env.LOG_LEVEL, base: { component: 'producer' } });
  let publisher: Publisher;
  try {
    publisher = await connect(env);
  } catch (err) {
    fail(1, (err as Error).message);
  }

  const name = args.name;
  // Logged, so that any run can be replayed with --seed.
  const seed = args.seed ?? randomSeed();
  const context = {
    log: (msg: string) => log.info({ producer: name }, msg),
    onError: (err: Error, producer: string = name) =>
      log.warn({ producer, err: err.message }, 'publish failed'),
  };
  const producer: Producer =
    name === 'all'
      ? startAll(publisher, overrides, {
          seed,
          log: context.log,
          onError: context.onError,
        })
      : startProducer(name, publisher, args.options, seed, context);
  // Producer timers are unref'd (they must not hold an embedding process open); the runner is
  // the process, so this keeps it alive until a signal.
  const keepAlive = setInterval(() => {}, 1 << 30);
  log.info({ producer: name, target: publisher.target, seed }, 'producer started');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ producer: name, signal }, 'stopping');
    producer
      .stop()
      .then(() => publisher.close())
      .then(
        () => {
          clearInterval(keepAlive);
          log.flush();
          process.exit(0);
        },
        (err: unknown) => {
          log.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`producer: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
