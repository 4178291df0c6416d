import createError from '@fastify/error';

/**
 * Every error a client can see, with its stable code and HTTP status. A code never changes
 * meaning and is never reused; the error table of docs/api.md lists each one (a test checks that).
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
export const AuthRequired = createError('AUTH_REQUIRED', '%s', 401);
export const TokenInvalid = createError('TOKEN_INVALID', 'token refused: %s', 401);
export const TokenExpired = createError(
  'TOKEN_EXPIRED',
  'token expired; reconnect with a fresh one (the stream resumes from Last-Event-ID)',
  401,
);
export const TopicForbidden = createError(
  'TOPIC_FORBIDDEN',
  'the token does not allow %s topic %s',
  403,
);
export const OriginForbidden = createError(
  'ORIGIN_FORBIDDEN',
  'origin %s may not write here; a write authenticated by a cookie or by loopback must come from an origin in CORS_ORIGINS (or this host)',
  403,
);
export const TooManyStreams = createError(
  'TOO_MANY_STREAMS',
  '%s; close a stream or try again later',
  429,
);
export const TooManyConnections = createError(
  'TOO_MANY_CONNECTIONS',
  'this gateway holds its maximum of %d streams (MAX_CONNECTIONS); try again shortly',
  429,
);
export const RateLimited = createError(
  'RATE_LIMITED',
  'more than %d publishes a minute (PUBLISH_RATE_PER_MIN) for %s; slow down',
  429,
);
export const HttpInvalid = createError(
  'HTTP_INVALID',
  'the request is not well-formed HTTP/1.1 (%s)',
  400,
);
export const UrlInvalid = createError('URL_INVALID', 'the URL path %s', 400);
export const RequestTimeout = createError(
  'REQUEST_TIMEOUT',
  'the request did not arrive in time',
  408,
);
export const HeadersTooLarge = createError(
  'HEADERS_TOO_LARGE',
  'the request line and headers are larger than the server accepts (16 KiB)',
  431,
);
export const NotFound = createError('NOT_FOUND', 'no route %s %s', 404);
export const BodyTooLarge = createError(
  'BODY_TOO_LARGE',
  'request body is larger than %d bytes (MAX_BODY_BYTES)',
  413,
);
export const BatchTooLarge = createError(
  'BATCH_TOO_LARGE',
  'a batch of %d events; at most %d per request (split it)',
  413,
);
export const UnsupportedMediaType = createError(
  'UNSUPPORTED_MEDIA_TYPE',
  'content type %s is not accepted here; send application/json',
  400,
);
export const UploadInvalid = createError(
  'UPLOAD_INVALID',
  'upload: %s; send multipart/form-data with an optional "fileId" field, then the file as "file"',
  400,
);
export const FileTooLarge = createError(
  'FILE_TOO_LARGE',
  'the file is larger than %d bytes (UPLOAD_MAX_BYTES)',
  413,
);
export const FileTypeUnsupported = createError(
  'FILE_TYPE_UNSUPPORTED',
  'files of type %s are not accepted; accepted: %s (UPLOAD_TYPES)',
  400,
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
