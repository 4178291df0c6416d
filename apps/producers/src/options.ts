import { z } from 'zod';
import { UsageError } from './errors';
import type { OptionsSchema, ProducerDefinition } from './types';

/**
 * Option builders. Every option accepts what a command line gives (strings) as well as typed
 * values from code, is optional, and carries its description and default for `--help`.
 */

export interface OptionInfo {
  description: string;
  /** Placeholder shown in help: `<ms>`, `<list>`, … */
  value: string;
  /** The default as typed on a command line. */
  default: string;
}

/** Help text of every option built here. */
export const optionInfo = z.registry<OptionInfo>();

/** A raw option value: from the command line (strings, repeated → array) or from code. */
export type RawOption = string | number | boolean | string[];
export type RawOptions = Record<string, RawOption>;

const show = (raw: unknown): string => JSON.stringify(raw) ?? String(raw);

/** A refused value: what is accepted and what was given. */
class Bad {
  constructor(readonly message: string) {}
}

function option<T>(
  info: OptionInfo,
  fallback: T,
  convert: (raw: unknown) => T | Bad,
): z.ZodType<T, unknown> {
  const schema = z
    .unknown()
    .optional()
    .transform((raw, ctx): T => {
      if (raw === undefined) return fallback;
      const result = convert(raw);
      if (result instanceof Bad) {
        ctx.addIssue({ code: 'custom', message: result.message });
        return z.NEVER;
      }
      return result;
    });
  schema.register(optionInfo, info);
  return schema as unknown as z.ZodType<T, unknown>;
}

/** An integer in [min, max]. */
export function integerOption(description: string, fallback: number, min: number, max: number) {
  return option<number>(
    { description, value: '<int>', default: String(fallback) },
    fallback,
    (raw) => {
      const value =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw)
            ? Number(raw)
            : NaN;
      if (!Number.isSafeInteger(value) || value < min || value > max) {
        return new Bad(`must be an integer ${min}-${max} (got ${show(raw)})`);
      }
      return value;
    },
  );
}

/** A finite number in [min, max]. */
export function numberOption(description: string, fallback: number, min: number, max: number) {
  return option<number>(
    { description, value: '<number>', default: String(fallback) },
    fallback,
    (raw) => {
      const value =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && raw.trim() !== ''
            ? Number(raw)
            : NaN;
      if (!Number.isFinite(value) || value < min || value > max) {
        return new Bad(`must be a number ${min}-${max} (got ${show(raw)})`);
      }
      return value;
    },
  );
}

/** true/false (also yes/no, 1/0, on/off). */
export function booleanOption(description: string, fallback: boolean) {
  return option<boolean>(
    { description, value: '<bool>', default: String(fallback) },
    fallback,
    (raw) => {
      if (typeof raw === 'boolean') return raw;
      const text = String(raw).trim().toLowerCase();
      if (['true', 'yes', '1', 'on'].includes(text)) return true;
      if (['false', 'no', '0', 'off'].includes(text)) return false;
      return new Bad(`must be true or false (got ${show(raw)})`);
    },
  );
}

/** Free text of 1 to `max` characters. */
export function textOption(description: string, fallback: string, max = 500) {
  return option<string>({ description, value: '<text>', default: fallback }, fallback, (raw) => {
    if (typeof raw !== 'string' || raw.length < 1 || raw.length > max) {
      return new Bad(`must be text of 1-${max} characters (got ${show(raw)})`);
    }
    return raw;
  });
}

export interface ListItem {
  /** What an item must be, for messages: `1-12 of A-Z 0-9 . -`. */
  what: string;
  pattern: RegExp;
  /** Applied to each trimmed item before the pattern check (e.g. upper-casing). */
  normalize?: (item: string) => string;
  /** @default 100 */
  maxItems?: number;
}

/** A comma-separated list (or an array), at least one item, duplicates dropped. */
export function listOption(description: string, fallback: string[], item: ListItem) {
  const maxItems = item.maxItems ?? 100;
  return option<string[]>(
    { description, value: '<list>', default: fallback.join(',') },
    fallback,
    (raw) => {
      const parts = Array.isArray(raw)
        ? raw.flatMap((part) => String(part).split(','))
        : typeof raw === 'string' || typeof raw === 'number'
          ? String(raw).split(',')
          : undefined;
      if (!parts) return new Bad(`must be a comma-separated list (got ${show(raw)})`);
      const items: string[] = [];
      for (const part of parts) {
        const trimmed = part.trim();
        if (trimmed === '') continue;
        const value = item.normalize ? item.normalize(trimmed) : trimmed;
        if (!item.pattern.test(value)) {
          return new Bad(`items must be ${item.what} (got ${show(trimmed)})`);
        }
        if (!items.includes(value)) items.push(value);
      }
      if (items.length === 0 || items.length > maxItems) {
        return new Bad(`must list 1-${maxItems} items (got ${show(raw)})`);
      }
      return items;
    },
  );
}

/** `interval-ms` → `intervalMs`, so both spellings work on the command line. */
export function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Validates raw options against a producer's schema: unknown names and bad values throw a
 * UsageError of one line naming the option (`stocks: --intervalMs must be an integer …`).
 */
export function parseOptions<S extends OptionsSchema>(
  definition: ProducerDefinition<S>,
  raw: RawOptions = {},
): z.output<S> {
  const shape = definition.options.shape as Record<string, unknown>;
  const input: Record<string, unknown> = {};
  for (const [given, value] of Object.entries(raw)) {
    const key = camelCase(given);
    if (!Object.hasOwn(shape, key)) {
      const known = Object.keys(shape)
        .map((k) => `--${k}`)
        .join(', ');
      throw new UsageError(
        `${definition.name}: unknown option --${given} (options: ${known}, --seed)`,
      );
    }
    input[key] = value;
  }
  const result = definition.options.safeParse(input);
  if (result.success) return result.data as z.output<S>;
  const issue = result.error.issues[0];
  const key = issue?.path.join('.') ?? '?';
  throw new UsageError(`${definition.name}: --${key} ${issue?.message ?? 'is invalid'}`);
}

/** Help lines for a producer's options: `--name <value>  description (default …)`. */
export function describeOptions(definition: ProducerDefinition): Array<[string, string]> {
  return Object.entries(definition.options.shape as Record<string, z.ZodType>).map(
    ([key, schema]) => {
      const info = optionInfo.get(schema);
      return [
        `--${key} ${info?.value ?? '<value>'}`,
        `${info?.description ?? ''} (default ${info?.default ?? '?'})`,
      ];
    },
  );
}
