import createError from '@fastify/error';

/**
 * Every error a client can see, with its stable code and HTTP status. A code never changes
 * meaning and is never reused; the README's error table lists each one (a test checks that).
 */
export const TopicMissing = createError(
  'TOPIC_MISSING',
  'at least one topic is required, as ?topic=<name> (repeatable)',
  400,
);
export const TopicInvalid = createError(
  'TOPIC_INVALID',
  'topic %s: %s; a topic is 1-200 characters of A-Z a-z 0-9 _ - . : /',
  400,
);
export const TooManyTopics = createError(
  'TOO_MANY_TOPICS',
  '%d distinct topics requested; at most %d per connection',
  400,
);
export const CursorInvalid = createError(
  'CURSOR_INVALID',
  'Last-Event-ID / lastEventId %s; send back an id this server gave, or none',
  400,
);
export const EventInvalid = createError(
  'EVENT_INVALID',
  'event %s: %s; an event type is 1-64 characters of A-Z a-z 0-9 _ - . :',
  400,
);
export const EventReserved = createError(
  'EVENT_RESERVED',
  'event type "reset" is reserved for the broadcaster',
  400,
);
export const BodyInvalid = createError('BODY_INVALID', 'request body: %s', 400);
export const DataMissing = createError(
  'DATA_MISSING',
  'request body has no "data" field; send {"topic", "event"?, "data"} (data may be null)',
  400,
);
export const ParamInvalid = createError('PARAM_INVALID', '%s', 400);
export const PublishForbidden = createError(
  'PUBLISH_FORBIDDEN',
  'publishing without a token is accepted from loopback only',
  403,
);
export const NotFound = createError('NOT_FOUND', 'no route %s %s', 404);
export const BodyTooLarge = createError(
  'BODY_TOO_LARGE',
  'request body is larger than %d bytes (MAX_BODY_BYTES)',
  413,
);
export const UnsupportedMediaType = createError(
  'UNSUPPORTED_MEDIA_TYPE',
  'content type %s is not accepted here; send application/json',
  415,
);
export const NotReady = createError(
  'NOT_READY',
  'the broadcaster cannot store events right now (%s); try again shortly',
  503,
);
export const Internal = createError('INTERNAL', 'internal error', 500);

/** The JSON body of every refused request. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}
