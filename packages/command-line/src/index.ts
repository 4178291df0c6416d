import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * What the command-line tools (streamcast-publish, streamcast-tail, streamcast-loadtest) share:
 * one option parser, exit codes, one-line errors, option checks, and leaving with every byte of
 * stdout written.
 */

/** Exit codes of the tools (documented in their --help and docs/tools.md). */
export const EXIT = {
  ok: 0,
  /** The target could not be reached, or refused (publish); the gateway refused for good (tail). */
  failed: 1,
  /** Bad arguments or environment: unknown option, bad topic, bad JSON, bad cursor. */
  usage: 2,
  /** tail --timeout: nothing arrived in time. */
  timeout: 3,
} as const;

/** Bad arguments: printed as one line with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * node:util parseArgs, strict: an unknown option, a missing value or an argument where none is
 * taken is a UsageError of one short line.
 */
export function parseCommandLine<T extends Omit<ParseArgsConfig, 'strict'>>(
  config: T,
): ReturnType<typeof parseArgs<T & { strict: true }>> {
  try {
    return parseArgs({ ...config, strict: true });
  } catch (err) {
    throw parseArgsProblem(err);
  }
}

/** Turns node:util parseArgs' errors into one short line. */
export function parseArgsProblem(err: unknown): UsageError {
  const error = err as Error & { code?: string };
  const option = /option '([^']+)'/i.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
    const hint = /^-\d/.test(option) ? '; put -- before arguments that start with -' : '';
    return new UsageError(`unknown option ${option}${hint}`);
  }
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    return new UsageError(`option ${option.replace(/ <value>$/, '')} needs a value`);
  }
  if (error.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return new UsageError(`unexpected argument: ${error.message.split("'")[1] ?? error.message}`);
  }
  return new UsageError(error.message.split('. ')[0] ?? error.message);
}

export function parseCount(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(
      `${flag} must be a whole number of at least 1 (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

export function parseSeconds(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !(value > 0) || value > 86_400) {
    throw new UsageError(
      `${flag} must be a number of seconds above 0 (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

/** An http(s) URL from an option or the environment; `source` names where it came from. */
export function parseHttpUrl(source: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(
      `${source} must be an http:// or https:// URL (got ${JSON.stringify(raw)})`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(
      `${source} must be an http:// or https:// URL (got ${JSON.stringify(raw)})`,
    );
  }
  return url;
}

/** A URL fit for messages: any password replaced by `***`. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (!url.password) return raw;
    url.password = '***';
    return url.toString();
  } catch {
    return raw;
  }
}

/** Writes one line to stderr as `<program>: <message>`. */
export function note(program: string, message: string): void {
  process.stderr.write(`${program}: ${oneLine(message)}\n`);
}

/**
 * Keeps a message on one line. A schema check's message ends with zod's issues as indented JSON
 * (`invalid priceUpdate on stocks/AAPL: [ { "path": ["price"], … } ]`): those become
 * `price: <message>; …`.
 */
export function oneLine(message: string): string {
  if (!message.includes('\n')) return message;
  const start = message.indexOf('[');
  if (start !== -1) {
    try {
      const issues = JSON.parse(message.slice(start)) as Array<{
        path?: unknown[];
        message?: string;
      }>;
      if (Array.isArray(issues) && issues.every((i) => typeof i?.message === 'string')) {
        const text = issues.map((i) => `${(i.path ?? []).join('.') || 'data'}: ${i.message}`);
        return `${message.slice(0, start)}${text.join('; ')}`;
      }
    } catch {
      // not zod's issues: flatten below
    }
  }
  return message.replace(/\s*\n\s*/g, ' ');
}

/**
 * Exits once stdout has taken everything written so far (a pipe may still hold a write when
 * process.exit would cut it off).
 */
export function exitAfterFlush(code: number): void {
  process.exitCode = code;
  if (process.stdout.writableLength === 0) process.exit(code);
  process.stdout.write('', () => process.exit(code));
}

/**
 * Runs a tool's main: a UsageError becomes one line and exit 2, anything unexpected one line and
 * exit 1. `main` resolves to the exit code.
 */
export function runMain(program: string, main: () => Promise<number>): void {
  // A reader that went away (`… | head -1`) is not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
  main().then(exitAfterFlush, (err: unknown) => {
    if (err instanceof UsageError) {
      note(program, `${err.message} (see ${program} --help)`);
      exitAfterFlush(EXIT.usage);
    } else {
      note(program, (err as Error)?.message ?? String(err));
      exitAfterFlush(EXIT.failed);
    }
  });
}
