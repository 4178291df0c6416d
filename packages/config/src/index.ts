import { z } from 'zod';

/**
 * Configuration from the environment, parsed once at start. Each app composes the fields it
 * needs into one zod schema; code receives the typed result, never process.env.
 */

const int = (name: string, min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === '') return fallback;
      const value = Number(raw);
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer ${min}-${max} (got ${JSON.stringify(raw)})` });
        return z.NEVER;
      }
      return value;
    });

const str = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw === '' ? fallback : raw));

const redisUrl = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined || raw === '') return undefined;
    if (!/^rediss?:\/\/[^\s]+$/.test(raw)) {
      ctx.addIssue({ code: 'custom', message: `REDIS_URL must be a redis:// or rediss:// URL (got ${JSON.stringify(raw)})` });
      return z.NEVER;
    }
    return raw;
  });

const logLevel = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const value = raw === undefined || raw === '' ? 'info' : raw;
    const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
    if (!levels.includes(value)) {
      ctx.addIssue({ code: 'custom', message: `LOG_LEVEL must be one of ${levels.join(', ')} (got ${JSON.stringify(raw)})` });
      return z.NEVER;
    }
    return value as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  });

/** Variables every process that talks to the engine reads. */
export const engineEnv = {
  REDIS_URL: redisUrl,
  REDIS_PREFIX: str('sse').pipe(
    z.string().regex(/^[A-Za-z0-9_\-.:]{1,64}$/, 'REDIS_PREFIX must be 1-64 characters of A-Z a-z 0-9 _ - . :'),
  ),
  HISTORY_MAX_LEN: int('HISTORY_MAX_LEN', 1, 10_000_000, 1000),
  HISTORY_MAX_AGE_S: int('HISTORY_MAX_AGE_S', 0, 31_536_000, 86_400),
  LOG_LEVEL: logLevel,
};

/** Variables of a gateway process (see the README's configuration table). */
export const gatewayEnv = {
  ...engineEnv,
  PORT: int('PORT', 0, 65535, 3000),
  HOST: str('0.0.0.0'),
  RETRY_MS: int('RETRY_MS', 0, 3_600_000, 3000),
  HEARTBEAT_S: int('HEARTBEAT_S', 1, 3600, 15),
  MAX_TOPICS: int('MAX_TOPICS', 1, 1000, 32),
  MAX_BODY_BYTES: int('MAX_BODY_BYTES', 64, 100 * 1024 * 1024, 1024 * 1024),
  MAX_QUEUE_BYTES: int('MAX_QUEUE_BYTES', 1024, 1024 * 1024 * 1024, 1024 * 1024),
  DRAIN_S: int('DRAIN_S', 0, 3600, 10),
  PROBE_INTERVAL_MS: int('PROBE_INTERVAL_MS', 100, 60_000, 1000),
  PROBE_TIMEOUT_MS: int('PROBE_TIMEOUT_MS', 100, 60_000, 3000),
};

export const gatewaySchema = z.object(gatewayEnv);
export type GatewayConfig = z.infer<typeof gatewaySchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses `env` with `schema`; throws ConfigError with one line naming the first bad variable. */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const name = issue?.path.join('.') ?? '?';
  const message = issue?.message ?? 'invalid';
  throw new ConfigError(`config: ${message.includes(name) ? message : `${name}: ${message}`}`);
}

/**
 * For a process's main(): parses the environment, or prints the one-line reason to stderr and
 * exits 1 (API.md, "Processes").
 */
export function loadEnvOrExit<S extends z.ZodType>(schema: S): z.infer<S> {
  try {
    return parseEnv(schema);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}
