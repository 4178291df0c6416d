import type { Hub } from '@streamcast/hub';
import {
  DataMissing,
  dataJson,
  NotReady,
  assertTopic,
  normalizeEventName,
  normalizePrivate,
  withTimeout,
} from '@streamcast/protocol';

export interface PublishOptions {
  /**
   * Fields of `data` (an object) only subscribers with a claim may see:
   * `{"fields": ["email"], "claim": "staff"}` or a list of such groups (docs/security.md, "Private fields").
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
  const json = dataJson(data);
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
