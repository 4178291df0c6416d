import type { Hub } from '@streamcast/hub';
import {
  BatchTooLarge,
  BodyInvalid,
  DataMissing,
  MAX_BATCH_EVENTS,
  dataJson,
  NotReady,
  assertTopic,
  errorBody,
  normalizeEventName,
  normalizePrivate,
  withTimeout,
  type ErrorBody,
} from '@streamcast/protocol';

export interface PublishOptions {
  /**
   * Fields of `data` (an object) only subscribers with a claim may see:
   * `{"fields": ["email"], "claim": "staff"}` or a list of such groups (docs/security.md, "Private fields").
   */
  private?: unknown;
}

/** The fields of one publish, as `POST /publish` takes them (each entry of a batch too). */
export const PUBLISH_FIELDS: ReadonlySet<string> = new Set(['topic', 'event', 'data', 'private']);

/** One entry of a batch's answer, in the order of the batch: its id, or why it was refused. */
export type BatchResult = { id: string } | ErrorBody;

/** An event checked and encoded, ready for the hub. */
interface Checked {
  topic: string;
  event: string;
  json: string;
  privateFields: string | undefined;
}

/** The checks of every publish: throws the protocol's 400 errors; nothing reaches the engine. */
function check(topic: unknown, event: unknown, data: unknown, privateSpec: unknown): Checked {
  assertTopic(topic);
  const name = normalizeEventName(event);
  if (data === undefined) throw new DataMissing();
  const privateFields = normalizePrivate(privateSpec, data);
  return { topic, event: name, json: dataJson(data), privateFields };
}

/** Stores a checked event; a failure or an event not stored within `timeoutMs` is NOT_READY. */
async function store(hub: Hub, checked: Checked, timeoutMs: number): Promise<string> {
  try {
    return await withTimeout(
      hub.publish(checked.topic, checked.event, checked.json, checked.privateFields),
      timeoutMs,
      `not stored within ${timeoutMs} ms`,
    );
  } catch (err) {
    throw new NotReady((err as Error).message);
  }
}

/**
 * Validates and publishes one event through `hub`, as `POST /publish` does: bad input throws
 * the protocol's 400 errors before anything reaches the engine; an event not stored within
 * `timeoutMs` (or an engine that cannot store) throws NOT_READY, never a false success.
 */
export async function publishToHub(
  hub: Hub,
  topic: unknown,
  event: unknown,
  data: unknown,
  timeoutMs: number,
  options: PublishOptions = {},
): Promise<string> {
  const checked = check(topic, event, data, options.private);
  if (!hub.isReady()) throw notReady(hub);
  return store(hub, checked, timeoutMs);
}

/**
 * Publishes a batch, as `POST /publish` with a JSON array does (docs/api.md, "Batch publish"):
 * each entry is an object of PUBLISH_FIELDS, checked on its own; `allow` (the token's claims)
 * may throw for an entry's topic. Bad entries get their own error and are not stored; the good
 * ones are all sent to the engine at once, in the batch's order (so one topic's events are
 * stored in that order, in one round trip), and each answers its id or NOT_READY. Each event is
 * stored whole or not at all. Throws, before anything is stored, BODY_INVALID for an empty
 * batch, BATCH_TOO_LARGE past MAX_BATCH_EVENTS and NOT_READY when the engine cannot store.
 */
export async function publishBatchToHub(
  hub: Hub,
  entries: readonly unknown[],
  timeoutMs: number,
  allow: (topic: string) => void = () => {},
): Promise<BatchResult[]> {
  if (entries.length === 0) throw new BodyInvalid('an empty batch: send at least one event');
  if (entries.length > MAX_BATCH_EVENTS) throw new BatchTooLarge(entries.length, MAX_BATCH_EVENTS);
  const checked = entries.map((entry): Checked | ErrorBody => {
    try {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new BodyInvalid('a batch entry must be a JSON object {"topic", "event"?, "data"}');
      }
      for (const key of Object.keys(entry)) {
        if (!PUBLISH_FIELDS.has(key)) throw new BodyInvalid(`unknown field ${JSON.stringify(key)}`);
      }
      const { topic, event, data, private: privateSpec } = entry as Record<string, unknown>;
      assertTopic(topic);
      allow(topic);
      return check(topic, event, data, privateSpec);
    } catch (err) {
      return refusal(err);
    }
  });
  if (!hub.isReady()) throw notReady(hub);
  // Every store starts in this tick, in order: the engine sends them in one go.
  const stored = checked.map((c): Promise<BatchResult> =>
    'error' in c ? Promise.resolve(c) : store(hub, c, timeoutMs).then((id) => ({ id }), refusal),
  );
  return Promise.all(stored);
}

/**
 * An entry's refusal as the API shapes it: a 4xx of the protocol (bad input, a topic the token
 * may not publish to) or NOT_READY. Anything else is a fault, not a refusal: it is rethrown, and
 * fails the whole request before anything is stored.
 */
function refusal(err: unknown): ErrorBody {
  const { code, statusCode, message } = err as {
    code?: unknown;
    statusCode?: unknown;
    message?: unknown;
  };
  const refused = typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500;
  if (typeof code === 'string' && (refused || code === 'NOT_READY')) {
    return errorBody(code, String(message));
  }
  throw err;
}

/** Why `hub` cannot store now, for the 503's message. */
function notReady(hub: Hub): Error {
  return new NotReady(hub.isDraining ? 'draining' : 'the engine link is down');
}
