import type { Hub } from '@streamcast/hub';
import {
  BodyInvalid,
  DataMissing,
  NotReady,
  assertTopic,
  normalizeEventName,
  normalizePrivate,
  withTimeout,
} from '@streamcast/protocol';

export interface PublishOptions {
  /**
   * Fields of `data` (an object) only subscribers with a claim may see:
   * `{"fields": ["email"], "claim": "staff"}` or a list of such groups (README, "Private fields").
   */
  private?: unknown;
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
  assertTopic(topic);
  const eventName = normalizeEventName(event);
  if (data === undefined) throw new DataMissing();
  const privateFields = normalizePrivate(options.private, data);
  const json = stringify(data);
  if (json === undefined) throw new BodyInvalid('"data" is not a JSON value');
  if (!hub.isReady()) throw new NotReady('the engine link is down');
  try {
    return await withTimeout(
      hub.publish(topic, eventName, json, privateFields),
      timeoutMs,
      `not stored within ${timeoutMs} ms`,
    );
  } catch (err) {
    throw new NotReady((err as Error).message);
  }
}

/**
 * JSON text of `data`. Nesting too deep for JSON.stringify (a hostile body of 20,000 `[`
 * parses, but overflows the stack here) is the client's fault: BODY_INVALID, not a 500.
 * Cycles and BigInt still throw as they are: a bug of the calling code.
 */
function stringify(data: unknown): string | undefined {
  try {
    return JSON.stringify(data) as string | undefined;
  } catch (err) {
    if (err instanceof RangeError) throw new BodyInvalid('"data" is nested too deeply');
    throw err;
  }
}
