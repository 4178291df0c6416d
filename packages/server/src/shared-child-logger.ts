import type { FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';

/**
 * The app's logger, as Fastify gets it: one whose child for a request (bindings `{reqId}` only,
 * no options) is itself. No child logger per request: a stream's request lives for hours, and a
 * child per request costs every idle connection memory for bindings nobody logs. Any other child
 * (Fastify's own, with its serializers; `app.log.child({component})`) is pino's, made the same
 * way. Done here rather than with a `childLoggerFactory`: Fastify checks every logger such a
 * factory returns (seven method lookups and an array, for every request), and not those of its
 * own factory, which calls child().
 */
export function sharedChildLogger(log: Logger): FastifyBaseLogger {
  const shared = Object.create(log) as FastifyBaseLogger;
  shared.child = (bindings, options) =>
    onlyKey(bindings, 'reqId') && (options === undefined || onlyKey(options, undefined))
      ? shared
      : sharedChildLogger(log.child(bindings, options));
  return shared;
}

/** Whether `object` has no enumerable key but `key` (none at all when `key` is undefined). */
function onlyKey(object: object, key: string | undefined): boolean {
  for (const k in object) if (k !== key) return false;
  return true;
}
