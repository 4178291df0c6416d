import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Configuration from the environment, parsed once at start. Each app composes the variables it
 * needs into one schema (`envSchema`); code receives the typed result, never process.env.
 *
 * Each variable parses its own text, so the schema is no more than an ordered list of them: no
 * schema library is loaded (zod, which this used, held 3.3 MB of every gateway's heap for a
 * parse done once at start; docs/benchmarks.md, "A 16 MB young generation").
 */

/** One environment variable: its value from its text (undefined when unset), or VarInvalid. */
export interface Var<T> {
  parse(raw: string | undefined): T;
}

/** Thrown by a Var's parse: the message names the variable and what it must be. */
export class VarInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VarInvalid';
  }
}

/** A variable from its parse function; `invalid(message)` refuses the text. */
export function defineVar<T>(parse: (raw: string | undefined) => T): Var<T> {
  return { parse };
}

export function invalid(message: string): never {
  throw new VarInvalid(message);
}

/**
 * `first`, then `next` on its value (which may refuse it with `invalid`). Not named `then`: a
 * module exporting a `then` function is a thenable, and `await import()` of it would never settle.
 */
function refine<A, B>(first: Var<A>, next: (value: A) => B): Var<B> {
  return defineVar((raw) => next(first.parse(raw)));
}

/** The variables of one process, in the order they are checked (the first bad one is reported). */
export interface EnvSchema<S extends Record<string, Var<unknown>>> {
  readonly shape: S;
}

export function envSchema<S extends Record<string, Var<unknown>>>(shape: S): EnvSchema<S> {
  return { shape };
}

/** The parsed configuration of a schema. */
export type EnvOf<E extends EnvSchema<Record<string, Var<unknown>>>> = {
  [K in keyof E['shape']]: E['shape'][K] extends Var<infer T> ? T : never;
};

const int = (name: string, min: number, max: number, fallback: number) =>
  defineVar((raw) => {
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
      return invalid(`${name} must be an integer ${min}-${max} (got ${JSON.stringify(raw)})`);
    }
    return value;
  });

const bool = (name: string, fallback: boolean) =>
  defineVar((raw) => {
    if (raw === undefined || raw === '') return fallback;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    return invalid(`${name} must be true or false (got ${JSON.stringify(raw)})`);
  });

const str = (fallback: string) =>
  defineVar((raw) => (raw === undefined || raw === '' ? fallback : raw));

const redisUrl = defineVar((raw) => {
  if (raw === undefined || raw === '') return undefined;
  if (!/^rediss?:\/\/[^\s]+$/.test(raw)) {
    return invalid(`REDIS_URL must be a redis:// or rediss:// URL (got ${JSON.stringify(raw)})`);
  }
  return raw;
});

/** One Sentinel, as `host:port` (`[::1]:26379` for IPv6). */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** A comma list of `host:port` (`[::1]:26379` for IPv6), as `name` says it. */
const hostPortList = (name: string) =>
  defineVar((raw): SentinelAddress[] | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const out: SentinelAddress[] = [];
    for (const item of raw.split(',')) {
      const match = /^\s*(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\s*$/.exec(item);
      const port = Number(match?.[2]);
      if (!match || port < 1 || port > 65535) {
        return invalid(`${name} must be a comma list of host:port (got ${JSON.stringify(raw)})`);
      }
      out.push({ host: (match[1] as string).replace(/^\[|\]$/g, ''), port });
    }
    return out;
  });

const sentinels = hostPortList('REDIS_SENTINELS');

const logLevel = defineVar((raw) => {
  const value = raw === undefined || raw === '' ? 'info' : raw;
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(value)) {
    return invalid(`LOG_LEVEL must be one of ${levels.join(', ')} (got ${JSON.stringify(raw)})`);
  }
  return value as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
});

/** Variables every process that talks to the engine reads. */
export const engineEnv = {
  REDIS_URL: redisUrl,
  // Sentinels name the master; with them REDIS_URL (optional) gives only credentials, db and TLS.
  REDIS_SENTINELS: sentinels,
  // Seed nodes of a Redis Cluster (Redis >= 7.0, sharded pub/sub); with them REDIS_URL (optional)
  // gives only credentials and TLS. Exclusive with REDIS_SENTINELS.
  REDIS_CLUSTER_NODES: hostPortList('REDIS_CLUSTER_NODES'),
  REDIS_SENTINEL_NAME: refine(str('mymaster'), (name) =>
    /^[A-Za-z0-9_\-.:]{1,128}$/.test(name)
      ? name
      : invalid('REDIS_SENTINEL_NAME must be 1-128 characters of A-Z a-z 0-9 _ - . :'),
  ),
  REDIS_SENTINEL_PASSWORD: defineVar((raw) => (raw === undefined || raw === '' ? undefined : raw)),
  REDIS_PREFIX: refine(str('sse'), (prefix) =>
    /^[A-Za-z0-9_\-.:]{1,64}$/.test(prefix)
      ? prefix
      : invalid('REDIS_PREFIX must be 1-64 characters of A-Z a-z 0-9 _ - . :'),
  ),
  HISTORY_MAX_LEN: int('HISTORY_MAX_LEN', 1, 10_000_000, 1000),
  HISTORY_MAX_AGE_S: int('HISTORY_MAX_AGE_S', 0, 31_536_000, 86_400),
  LOG_LEVEL: logLevel,
};

const mediaTypes = (name: string, fallback: string) =>
  defineVar((raw) => {
    const text = raw === undefined || raw.trim() === '' ? fallback : raw;
    const list = text
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== '');
    for (const item of list) {
      if (!/^(\*\/\*|[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*))$/.test(item)) {
        return invalid(
          `${name} must be a comma list of media types such as text/*,image/png (got ${JSON.stringify(raw)})`,
        );
      }
    }
    return list;
  });

/**
 * Variables of upload receiving and processing: read by gateways (which receive, and without
 * Redis also process) and by the upload worker (see docs/producers.md, "Uploads").
 */
export const uploadEnv = {
  UPLOAD_DIR: str(join(tmpdir(), 'streamcast-uploads')),
  UPLOAD_MAX_BYTES: int('UPLOAD_MAX_BYTES', 1, 2 ** 40, 100 * 1024 * 1024),
  UPLOAD_TYPES: mediaTypes(
    'UPLOAD_TYPES',
    'text/*,image/*,application/pdf,application/json,application/octet-stream',
  ),
  UPLOAD_RETENTION_S: int('UPLOAD_RETENTION_S', 1, 31_536_000, 3600),
  UPLOAD_ATTEMPTS: int('UPLOAD_ATTEMPTS', 1, 100, 5),
  UPLOAD_CONCURRENCY: int('UPLOAD_CONCURRENCY', 1, 256, 2),
  UPLOAD_LOCK_MS: int('UPLOAD_LOCK_MS', 1000, 3_600_000, 30_000),
  UPLOAD_READ_BYTES_PER_S: int('UPLOAD_READ_BYTES_PER_S', 0, 2 ** 40, 0),
};

const optionalText = defineVar((raw) =>
  raw === undefined || raw.trim() === '' ? undefined : raw.trim(),
);

/** A comma list; each item checked by `problem` (a reason, or undefined when fine). */
const list = (
  name: string,
  fallback: readonly string[],
  what: string,
  problem: (item: string) => string | undefined,
) =>
  defineVar((raw) => {
    if (raw === undefined || raw.trim() === '') return [...fallback];
    const items = raw
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
    for (const item of items) {
      const why = problem(item);
      if (why) {
        return invalid(`${name} must be a comma list of ${what}: ${JSON.stringify(item)} ${why}`);
      }
    }
    return items;
  });

const PATTERN_RE = /^[A-Za-z0-9_\-.:/]+\*?$|^\*$/;
/** The topics `npm start`'s demo pages subscribe to, public there by default. */
export const DEMO_PUBLIC_TOPICS: readonly string[] = [
  'events',
  'stocks/*',
  'blog',
  'chat',
  'matches/*',
  'system/monitoring',
  'social',
  'uploads/*',
];
/** PUBLIC_TOPICS: patterns anyone may subscribe to without a token (`{sub}` has no meaning here). */
export const publicTopicsVar = (fallback: readonly string[]) =>
  list('PUBLIC_TOPICS', fallback, 'topic patterns (a topic, or one ending in *)', (p) =>
    p.length <= 200 && PATTERN_RE.test(p) ? undefined : 'is not a topic or a topic ending in *',
  );

const jwtSecret = refine(optionalText, (secret) =>
  secret === undefined || secret.length >= 32
    ? secret
    : invalid(
        'JWT_SECRET must be at least 32 characters (a short HS256 secret can be guessed offline)',
      ),
);

const jwksUrl = refine(optionalText, (raw) => {
  if (raw === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  const local = url !== undefined && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && local))) {
    return invalid(
      `JWT_JWKS_URL must be an https:// URL (http:// only on localhost) (got ${JSON.stringify(raw)})`,
    );
  }
  return url.href;
});

const jwksFile = refine(optionalText, (raw) => {
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(raw, 'utf8')) as { keys?: unknown } | null;
    if (!Array.isArray(parsed?.keys)) throw new Error('no "keys" list');
  } catch (err) {
    return invalid(
      `JWT_JWKS_FILE must be a readable JSON Web Key Set (${JSON.stringify(raw)}: ${(err as Error).message})`,
    );
  }
  return raw;
});

const ORIGIN_RE =
  /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * TRUST_PROXY: which peers' X-Forwarded-For is believed (Fastify's `trustProxy`): a comma
 * list of the balancers' addresses, CIDRs and proxy-addr's names (loopback, linklocal,
 * uniquelocal). `true` (believe anyone) is refused: any client could then claim to be
 * loopback, and loopback may publish. Hop counts are not offered: Fastify 5 cannot check the
 * peer with them, and trusts nobody.
 */
const trustProxy = defineVar((raw): false | string[] => {
  const text = raw?.trim() ?? '';
  if (text === '' || text === 'false') return false;
  const items = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const ok = (item: string) =>
    ['loopback', 'linklocal', 'uniquelocal'].includes(item) ||
    (/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(item) && /[.:]/.test(item));
  if (items.length === 0 || !items.every(ok)) {
    return invalid(
      `TRUST_PROXY must be a comma list of the balancers' addresses or CIDRs (loopback, 10.0.0.0/8, …); "true" is refused (got ${JSON.stringify(raw)})`,
    );
  }
  return items;
});

/** Variables of authentication, browser protections and limits (docs/security.md, "Security"). */
export const securityEnv = {
  JWT_SECRET: jwtSecret,
  JWT_JWKS_URL: jwksUrl,
  JWT_JWKS_FILE: jwksFile,
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: list('JWT_AUDIENCE', [], 'audiences', (a) =>
    a.length <= 256 ? undefined : 'is too long',
  ),
  JWT_CLOCK_SKEW_S: int('JWT_CLOCK_SKEW_S', 0, 600, 30),
  PUBLIC_TOPICS: publicTopicsVar([]),
  CORS_ORIGINS: list(
    'CORS_ORIGINS',
    [],
    'origins such as https://app.example.com (no path, no *)',
    (o) => (ORIGIN_RE.test(o) ? undefined : 'is not scheme://host[:port]'),
  ),
  TRUST_PROXY: trustProxy,
  MAX_CONNECTIONS: int('MAX_CONNECTIONS', 0, 10_000_000, 20_000),
  MAX_STREAMS_PER_IP: int('MAX_STREAMS_PER_IP', 0, 10_000_000, 500),
  MAX_STREAMS_PER_SUBJECT: int('MAX_STREAMS_PER_SUBJECT', 0, 10_000_000, 100),
  CLUSTER_MAX_STREAMS_PER_IP: int('CLUSTER_MAX_STREAMS_PER_IP', 0, 100_000_000, 2000),
  CLUSTER_MAX_STREAMS_PER_SUBJECT: int('CLUSTER_MAX_STREAMS_PER_SUBJECT', 0, 100_000_000, 300),
  STREAM_COUNT_TTL_S: int('STREAM_COUNT_TTL_S', 3, 3600, 30),
  PUBLISH_RATE_PER_MIN: int('PUBLISH_RATE_PER_MIN', 0, 100_000_000, 6000),
};

/**
 * WEB_ROOT: the folder of static pages a gateway serves. Empty (the default): the repository's
 * apps/web/public when it is there (build-gateway resolves it); `none`: no pages; else a directory.
 */
const webRoot = defineVar((raw) => {
  if (raw === undefined || raw === '' || raw === 'none') return raw ?? '';
  let isDirectory = false;
  try {
    isDirectory = statSync(raw).isDirectory();
  } catch {
    // missing or unreadable: reported below
  }
  if (!isDirectory) {
    return invalid(
      `WEB_ROOT must be a directory, none, or empty for the demo pages (got ${JSON.stringify(raw)})`,
    );
  }
  return resolve(raw);
});

/** Variables of a gateway process (see the table in docs/configuration.md). */
export const gatewayEnv = {
  ...engineEnv,
  PORT: int('PORT', 0, 65535, 3000),
  HOST: str('0.0.0.0'),
  RETRY_MS: int('RETRY_MS', 0, 3_600_000, 3000),
  HEARTBEAT_S: int('HEARTBEAT_S', 1, 3600, 15),
  // At most 32: the cursor of a connection (about 30 characters per topic) must stay under 1,024.
  MAX_TOPICS: int('MAX_TOPICS', 1, 32, 32),
  MAX_BODY_BYTES: int('MAX_BODY_BYTES', 64, 100 * 1024 * 1024, 1024 * 1024),
  MAX_QUEUE_BYTES: int('MAX_QUEUE_BYTES', 1024, 1024 * 1024 * 1024, 1024 * 1024),
  DRAIN_S: int('DRAIN_S', 0, 3600, 10),
  STREAM_MAX_LIFETIME_S: int('STREAM_MAX_LIFETIME_S', 0, 7 * 86400, 1800),
  PROBE_INTERVAL_MS: int('PROBE_INTERVAL_MS', 100, 60_000, 1000),
  PROBE_TIMEOUT_MS: int('PROBE_TIMEOUT_MS', 100, 60_000, 3000),
  // Opt-in topic labels on /metrics, capped: sse_topic_streams{topic} for the busiest N topics.
  METRICS_TOPICS: int('METRICS_TOPICS', 0, 1000, 0),
  WEB_ROOT: webRoot,
  // false: no POST /api/upload (404 NOT_FOUND), for deployments without an upload worker.
  UPLOADS_ENABLED: bool('UPLOADS_ENABLED', true),
  ...uploadEnv,
  ...securityEnv,
};

export const gatewaySchema = envSchema(gatewayEnv);
export type GatewayConfig = EnvOf<typeof gatewaySchema>;

/** Variables of the upload worker (`npm run upload-worker`): it takes jobs from Redis. */
export const uploadWorkerSchema = envSchema({
  ...engineEnv,
  ...uploadEnv,
});
export type UploadWorkerConfig = EnvOf<typeof uploadWorkerSchema>;
export type UploadConfig = Pick<GatewayConfig, keyof typeof uploadEnv>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses `env` with `schema`; throws ConfigError with one line naming the first bad variable. */
export function parseEnv<S extends Record<string, Var<unknown>>>(
  schema: EnvSchema<S>,
  env: NodeJS.ProcessEnv = process.env,
): EnvOf<EnvSchema<S>> {
  const out: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(schema.shape)) {
    try {
      out[name] = variable.parse(env[name]);
    } catch (err) {
      if (!(err instanceof VarInvalid)) throw err;
      const message = err.message;
      throw new ConfigError(`config: ${message.includes(name) ? message : `${name}: ${message}`}`);
    }
  }
  return out as EnvOf<EnvSchema<S>>;
}

/**
 * For a process's main(): parses the environment, or prints the one-line reason to stderr and
 * exits 1 (API.md, "Processes").
 */
export function loadEnvOrExit<S extends Record<string, Var<unknown>>>(
  schema: EnvSchema<S>,
): EnvOf<EnvSchema<S>> {
  try {
    return parseEnv(schema);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}
