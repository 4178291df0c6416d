import { UsageError } from './errors';
import type { RawOption, RawOptions } from './options';

export interface RunnerArgs {
  /** The producer (or `all`); undefined when none was named. */
  name: string | undefined;
  help: boolean;
  seed: number | undefined;
  /** `--key value` pairs as given; a repeated option collects an array; a bare flag is `true`. */
  options: RawOptions;
}

const MAX_SEED = 4294967295;

/**
 * The runner's command line: `<name> [--option value | --option=value …] [--seed N] [--help]`.
 * Throws a UsageError (one line) on anything else.
 */
export function parseArgs(argv: readonly string[]): RunnerArgs {
  const out: RunnerArgs = { name: undefined, help: false, seed: undefined, options: {} };
  let seedText: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') {
      out.help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg.length > 1) {
        throw new UsageError(
          `unknown flag ${arg} (options are spelt --name value; --help lists them)`,
        );
      }
      if (out.name !== undefined) {
        throw new UsageError(
          `unexpected argument ${JSON.stringify(arg)} (values follow their option: --symbols AAPL,MSFT)`,
        );
      }
      out.name = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const key = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!/^[A-Za-z][A-Za-z0-9.-]*$/.test(key)) {
      throw new UsageError(
        `bad option name ${JSON.stringify(arg)} (options are spelt --name value)`,
      );
    }
    let value: string | true;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) value = true;
      else {
        value = next;
        i++;
      }
    }
    if (key === 'seed') {
      seedText = value === true ? '' : value;
      continue;
    }
    const previous: RawOption | undefined = out.options[key];
    if (previous === undefined) out.options[key] = value;
    else
      out.options[key] = [
        ...(Array.isArray(previous) ? previous : [String(previous)]),
        String(value),
      ];
  }
  if (seedText !== undefined) {
    const seed = /^\d+$/.test(seedText) ? Number(seedText) : NaN;
    if (!Number.isSafeInteger(seed) || seed > MAX_SEED) {
      throw new UsageError(
        `--seed must be an integer 0-${MAX_SEED} (got ${JSON.stringify(seedText)})`,
      );
    }
    out.seed = seed;
  }
  return out;
}
