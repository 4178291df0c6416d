import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

/**
 * Node's HTTP server keeps, for every connection whose response is in progress, the request and
 * response objects with their stream states and headers, a parser bound to both, and a dozen
 * listeners and bound functions on the socket: about 4 KB of heap per idle event stream
 * (measured; a bare socket is under 1 KB). Once a stream's headers are on the wire none of it
 * is needed, as the stream writes its chunks to the socket itself. `detachStream` takes the
 * socket out of the HTTP server the way Node does for an upgraded connection, and leaves it
 * registered with the server, so `server.closeAllConnections()` still ends the stream and
 * `server.closeIdleConnections()` still leaves it alone, as for any response in progress.
 *
 * All of this is Node's internals (the same from Node 20 to 26). Every one is checked before
 * anything changes, and a response that does not look as expected stays attached: the stream
 * works either way, it only costs more memory (test: detach.test.ts, on every Node CI runs).
 */

/** The parser's fields that tie it to the request it parsed. */
interface ParserInternals {
  socket: Socket | null;
  incoming: unknown;
  outgoing: unknown;
  onIncoming: unknown;
  _headers: unknown[];
  _url: string;
  _consumed: boolean;
  unconsume(): void;
  [slot: number]: unknown;
}

interface HttpCommon {
  freeParser(parser: unknown, req: unknown, socket: unknown): void;
  HTTPParser: { kOnMessageBegin: number; kOnExecute: number; kOnTimeout: number };
}

interface SocketInternals {
  parser?: ParserInternals | null;
  _httpMessage?: unknown;
}

interface ResponseInternals {
  chunkedEncoding?: boolean;
  _headerSent?: boolean;
  outputData?: unknown[];
  detachSocket?: (socket: Socket) => void;
}

const common = loadHttpCommon();

function loadHttpCommon(): HttpCommon | undefined {
  const get = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  const found = get?.call(process, '_http_common') as Partial<HttpCommon> | undefined;
  const slots = found?.HTTPParser;
  if (typeof found?.freeParser !== 'function' || typeof slots?.kOnExecute !== 'number') {
    return undefined;
  }
  return found as HttpCommon;
}

/** The listeners Node's HTTP server puts on a connection's socket, by event and name. */
const SERVER_LISTENERS: ReadonlyArray<readonly [string, string]> = [
  ['data', 'bound socketOnData'],
  ['end', 'bound socketOnEnd'],
  ['close', 'bound socketOnClose'],
  ['drain', 'bound socketOnDrain'],
  ['error', 'socketOnError'],
  ['timeout', 'socketOnTimeout'],
  ['resume', 'onSocketResume'],
  ['pause', 'onSocketPause'],
];

/** Methods the HTTP server puts on each socket, over the prototype's. */
const SOCKET_OVERRIDES = ['on', 'addListener', 'prependListener', 'setEncoding'] as const;

/**
 * Stands for the response on a detached socket: `closeIdleConnections()` skips a connection
 * whose message has not finished.
 */
const STREAMING = Object.freeze({ finished: false });

function ignore(): void {}

/**
 * Put in the parser of a detached stream, which parses nothing more: freeing the parser gives it
 * a new array before it is used again. Shared, where one each would cost 32 bytes per stream.
 */
const NO_HEADERS: unknown[] = [];

/** Returns the parser of a detached socket that closed to Node's pool, as Node would have. */
function freeDetachedParser(this: Socket & SocketInternals): void {
  this._httpMessage = null;
  common?.freeParser(this.parser, null, this);
}

/** As Node's server does when a client ends its side first: end ours. */
function endSocket(this: Socket): void {
  this.end();
}

/** Why a response stays attached; undefined when it can be detached. */
export function detachRefusal(res: ServerResponse): string | undefined {
  if (!common) return 'process.getBuiltinModule("_http_common") is missing';
  const r = res as ServerResponse & ResponseInternals;
  const socket = res.socket as (Socket & SocketInternals) | null;
  if (!socket || socket.destroyed) return 'no socket';
  if (socket._httpMessage !== res) return 'the socket serves another response';
  if (r.chunkedEncoding !== true) return 'not chunked';
  if (r._headerSent !== true || r.outputData?.length !== 0) return 'headers not on the wire';
  if (res.writableEnded) return 'ended';
  if (typeof r.detachSocket !== 'function') return 'no res.detachSocket';
  if (res.req?.complete !== true) return 'request not complete';
  const parser = socket.parser;
  if (!parser || parser.socket !== socket) return 'no parser';
  for (const [event, name] of SERVER_LISTENERS) {
    if (socket.listeners(event).filter((l) => l.name === name).length !== 1) {
      return `no single '${name}' listener on '${event}'`;
    }
  }
  return undefined;
}

/**
 * Takes the socket of `res` out of the HTTP server; undefined (nothing changed) when it cannot.
 * Listeners of 'close' on the request and the response are returned for the caller to run when
 * the socket closes: neither object emits anything once detached.
 */
export function detachStream(
  res: ServerResponse,
): { socket: Socket; closeListeners: Array<() => void> } | undefined {
  if (detachRefusal(res) !== undefined || !common) return undefined;
  const socket = res.socket as Socket & SocketInternals;
  const req = res.req as IncomingMessage;
  const parser = socket.parser as ParserInternals;
  const closeListeners = [...req.listeners('close'), ...res.listeners('close')] as Array<
    () => void
  >;

  socket.on('error', ignore);
  for (const [event, name] of SERVER_LISTENERS) {
    const listener = socket.listeners(event).find((l) => l.name === name);
    if (listener) socket.removeListener(event, listener as () => void);
  }
  (res as ServerResponse & Required<ResponseInternals>).detachSocket(socket);
  socket._httpMessage = STREAMING;

  // The parser stays in the server's list of connections (closeAllConnections() finds the
  // socket through it) but lets go of the request, the response and their state.
  if (parser._consumed) {
    parser.unconsume();
    parser._consumed = false;
  }
  const { kOnMessageBegin, kOnExecute, kOnTimeout } = common.HTTPParser;
  parser[kOnMessageBegin] = null;
  parser[kOnExecute] = null;
  parser[kOnTimeout] = null;
  parser.incoming = null;
  parser.outgoing = null;
  parser.onIncoming = null;
  parser._headers = NO_HEADERS;
  parser._url = '';
  // Back to the prototype's methods, by assignment: deleting properties would turn the socket
  // into a dictionary-mode object, 1.6 KB larger (measured).
  const own = socket as unknown as Record<string, unknown>;
  const proto = Socket.prototype as unknown as Record<string, unknown>;
  for (const method of SOCKET_OVERRIDES) {
    if (Object.hasOwn(own, method)) own[method] = proto[method];
  }

  socket.on('close', freeDetachedParser);
  socket.on('end', endSocket);
  // A client has nothing more to say on an event stream; whatever it sends is read and dropped.
  (socket as { readableFlowing: boolean | null }).readableFlowing = null;
  socket.on('data', ignore);
  return { socket, closeListeners };
}
