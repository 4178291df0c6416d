import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

/**
 * Node's HTTP server keeps, for every connection whose response is in progress, the request and
 * response objects with their stream states and headers, a parser bound to both (with ~1.7 KB of
 * native memory of its own), and a dozen listeners and bound functions on the socket: about
 * 6 KB per idle event stream (measured; a bare socket is under 1 KB of heap). Once a stream's
 * headers are on the wire none of it is needed, as the stream writes its chunks to the socket
 * itself. `detachStream` takes the socket out of the HTTP server the way Node does for an
 * upgraded connection, and returns the parser to Node's pool for the next request. The server
 * still knows the stream: `server.closeAllConnections()` ends it (tracked here), and
 * `server.closeIdleConnections()` leaves it alone, as for any response in progress.
 *
 * All of this is Node's internals (the same from Node 20 to 26). Every one is checked before
 * anything changes, and a response that does not look as expected stays attached: the stream
 * works either way, it only costs more memory (test: response-sink.test.ts, on every Node CI
 * runs).
 */

interface HttpCommon {
  freeParser(parser: unknown, req: unknown, socket: unknown): void;
}

/** An emitter's listeners as it holds them: one function, or an array of them. */
interface EventsInternals {
  _events?: Record<string, (() => void) | Array<() => void> | undefined>;
}

interface SocketInternals {
  parser?: { socket?: unknown } | null;
  server?: Server;
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
  return typeof found?.freeParser === 'function' ? (found as HttpCommon) : undefined;
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

/** The detached streams of each server, for its closeAllConnections(). */
const detachedOf = new WeakMap<Server, Set<Socket>>();

/** Registers a detached socket with its server, whose closeAllConnections() then ends it too. */
function track(server: Server, socket: Socket): void {
  let sockets = detachedOf.get(server);
  if (!sockets) {
    const tracked = new Set<Socket>();
    sockets = tracked;
    detachedOf.set(server, tracked);
    const closeAll = server.closeAllConnections;
    server.closeAllConnections = function closeAllConnections(this: Server): void {
      closeAll.call(this);
      for (const detached of tracked) detached.destroy();
    };
  }
  sockets.add(socket);
  socket.on('close', untrack);
}

function untrack(this: Socket & SocketInternals): void {
  if (this.server) detachedOf.get(this.server)?.delete(this);
}

function ignore(): void {}

/** As Node's server does when a client ends its side first: end ours. */
function endSocket(this: Socket): void {
  this.end();
}

/** Why a response stays attached; undefined when it can be detached. */
export function detachRefusal(res: ServerResponse): string | undefined {
  const found = inspect(res);
  return typeof found === 'string' ? found : undefined;
}

/**
 * The server's listeners to remove from the socket of `res` (in SERVER_LISTENERS' order), or why
 * it stays attached.
 */
function inspect(res: ServerResponse): Array<() => void> | string {
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
  if (typeof socket.server?.closeAllConnections !== 'function') return 'no server';
  const found: Array<() => void> = [];
  for (const [event, name] of SERVER_LISTENERS) {
    const listener = soleListener(socket, event, name);
    if (!listener) return `no single '${name}' listener on '${event}'`;
    found.push(listener);
  }
  return found;
}

/**
 * The one listener of `event` named `name`, read in place: `socket.listeners()` copies the list,
 * and a resume storm detaches thousands of streams a second (8 copies each were a tenth of the
 * garbage of opening a stream, measured).
 */
function soleListener(socket: Socket, event: string, name: string): (() => void) | undefined {
  const held = (socket as unknown as EventsInternals)._events?.[event];
  if (typeof held === 'function') return held.name === name ? held : undefined;
  if (!Array.isArray(held)) return undefined;
  let sole: (() => void) | undefined;
  for (const listener of held) {
    if (listener.name !== name) continue;
    if (sole) return undefined;
    sole = listener;
  }
  return sole;
}

/**
 * Takes the socket of `res` out of the HTTP server; undefined (nothing changed) when it cannot.
 * Listeners of 'close' on the request and the response are returned for the caller to run when
 * the socket closes: neither object emits anything once detached.
 */
export function detachStream(
  res: ServerResponse,
): { socket: Socket; closeListeners: Array<() => void> } | undefined {
  const listeners = inspect(res);
  if (typeof listeners === 'string' || !common) return undefined;
  const socket = res.socket as Socket & SocketInternals;
  const req = res.req as IncomingMessage;
  const closeListeners = [...req.listeners('close'), ...res.listeners('close')] as Array<
    () => void
  >;

  socket.on('error', ignore);
  SERVER_LISTENERS.forEach(([event], i) =>
    socket.removeListener(event, listeners[i] as () => void),
  );
  (res as ServerResponse & Required<ResponseInternals>).detachSocket(socket);
  // As Node does when a connection closes: the parser lets go of the request and its state,
  // leaves the server's list of connections and goes back to the pool.
  common.freeParser(socket.parser, req, socket);
  track(socket.server as Server, socket);
  // Back to the prototype's methods, by assignment: deleting properties would turn the socket
  // into a dictionary-mode object, 1.6 KB larger (measured).
  const own = socket as unknown as Record<string, unknown>;
  const proto = Socket.prototype as unknown as Record<string, unknown>;
  for (const method of SOCKET_OVERRIDES) {
    if (Object.hasOwn(own, method)) own[method] = proto[method];
  }

  socket.on('end', endSocket);
  // A client has nothing more to say on an event stream; whatever it sends is read and dropped.
  (socket as { readableFlowing: boolean | null }).readableFlowing = null;
  socket.on('data', ignore);
  return { socket, closeListeners };
}
