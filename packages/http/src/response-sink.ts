import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Sink } from '@streamcast/hub';
import { STREAM_HEADERS } from '@streamcast/protocol';
import { detachStream } from './detach';

/**
 * The hub writes each event's frame as one Buffer shared by every single-topic stream of the
 * topic. On a chunked response, the HTTP chunk around it (`<hex size>\r\n<frame>\r\n`) is then
 * built once per event, here, and written straight to each socket: one buffer per stream instead
 * of res.write's four (size, CRLF, data, CRLF) through the OutgoingMessage machinery, which was
 * most of the gateway's fan-out time in profiles. The hub writes one frame to all its streams
 * before the next, so remembering the last one is enough.
 */
let lastFrame: Buffer | undefined;
let lastChunk: Buffer = Buffer.alloc(0);

function chunkOf(frame: Buffer): Buffer {
  if (frame !== lastFrame) {
    const head = `${frame.length.toString(16)}\r\n`;
    const chunk = Buffer.allocUnsafe(head.length + frame.length + 2);
    chunk.write(head, 0, 'latin1');
    frame.copy(chunk, head.length);
    chunk.write('\r\n', head.length + frame.length, 'latin1');
    lastFrame = frame;
    lastChunk = chunk;
  }
  return lastChunk;
}

/** Node's own fields of a response that say whether the socket may be written directly. */
interface ResponseInternals {
  chunkedEncoding?: boolean;
  _header?: string | null;
  _headerSent?: boolean;
  outputData?: unknown[];
}

/**
 * Once on the wire, a response's header text is only ever tested for truthiness (headersSent,
 * "headers already sent" checks), yet Node keeps the string it built by concatenation: a tree
 * of ~1 KB per idle stream, measured. It is replaced by this constant.
 */
const SENT_HEADER = 'HTTP/1.1 200 OK\r\n\r\n';

function settleLater(sink: ResponseSink): void {
  sink.settle();
}

function detachLater(sink: ResponseSink): void {
  sink.detach();
}

/**
 * Sinks written to in this tick, flushed together when it ends: one nextTick for every stream
 * an event went to, not one each.
 */
let queuedSinks: ResponseSink[] = [];

function flushQueued(): void {
  const sinks = queuedSinks;
  queuedSinks = [];
  // Indexed, not for...of: this runs once per tick, mostly in V8's baseline tier, where an
  // iterator allocates a result object per stream.
  for (let i = 0; i < sinks.length; i++) (sinks[i] as ResponseSink).flush();
}

/** A tick's chunks past this many bytes go to the socket at once (placement writes in bulk). */
const QUEUE_FLUSH_BYTES = 64 * 1024;

/** The HTTP chunk of a string written by a detached stream. */
function chunkOfText(text: string): string {
  return `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
}

/** Chunks as one: text when they all are, else bytes. */
function joined(first: Buffer | string, more: Array<Buffer | string>): Buffer | string {
  const all = [first, ...more];
  if (all.every((chunk) => typeof chunk === 'string')) return all.join('');
  return Buffer.concat(
    all.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)),
  );
}

const LAST_CHUNK = '0\r\n\r\n';

const CLOSE = { connection: 'close' };

/**
 * A hub Sink over a Node.js HTTP response (Fastify's reply.raw, Express's res). Once the
 * stream's headers are on the wire, its socket is taken out of the HTTP server (detach.ts) and
 * the sink writes the chunks itself; 'close' listeners on the request and response that were
 * there by then still run when the stream ends. A response that cannot be detached stays as it
 * was and is written through (mostly past) Node's response.
 */
export class ResponseSink implements Sink {
  private closed = false;
  /**
   * What this tick wrote, handed to the socket when the tick ends (flush): one chunk in `queued`,
   * any more in `queuedMore`. Events of one tick leave in one write, as corking would do, and the
   * usual single event of a tick is one plain socket.write: corking costs Node's Writable an
   * object per chunk and a list per uncork, most of what a delivery allocated.
   */
  private queued: Buffer | string | undefined = undefined;
  private queuedMore: Array<Buffer | string> | undefined = undefined;
  private queuedBytes = 0;
  /** What is queued is the response's to write (not chunked here): its headers are not out. */
  private queuedRaw = false;
  /** begin() ran; the socket is detached (or the header text released) once it is sent. */
  private headerPending = false;
  /** The response, until its socket is detached. */
  private res: ServerResponse | undefined;
  /** The socket, once detached from the HTTP server. */
  private socket: Socket | undefined;
  /** Run once when the stream ends: the hub's, then those the request and response had. */
  private closeListeners: Array<() => void> = [];
  private readonly markClosed = (): void => {
    if (this.closed) return;
    this.closed = true;
    const listeners = this.closeListeners;
    this.closeListeners = [];
    for (const listener of listeners) listener();
  };

  constructor(
    res: ServerResponse,
    private readonly headers: OutgoingHttpHeaders = {},
    /** When the hub ends the stream (its token expires), in ms since the epoch. */
    readonly expiresAt?: number,
  ) {
    this.res = res;
    // The client may be gone already (it left while the host's middleware or an async
    // topics lookup ran): no 'close' would follow, so the hub must learn it here.
    this.closed = res.destroyed;
    res.once('close', this.markClosed);
    const socket = res.socket;
    if (socket) {
      // Events are small and latency matters; a stream is meant to stay open.
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      socket.setTimeout(0);
    }
  }

  /** True once the stream writes to its socket without Node's response (detach.ts). */
  get detached(): boolean {
    return this.socket !== undefined;
  }

  begin(): void {
    const res = this.res;
    if (!res) return;
    // HTTP/1: the connection ends with the stream (a detached socket cannot serve another
    // request), and says so, or a keep-alive client (Node's agent, a browser, a balancer's
    // upstream pool) could send its next request on it as it closes. HTTP/2 has no such header.
    const http1 = (res.req?.httpVersionMajor ?? 1) < 2;
    res.writeHead(200, { ...STREAM_HEADERS, ...this.headers, ...(http1 ? CLOSE : undefined) });
    this.headerPending = true;
  }

  write(chunk: Buffer | string): void {
    const detached = this.socket;
    if (detached) {
      if (this.closed || detached.destroyed) return;
      this.queue(typeof chunk === 'string' ? chunkOfText(chunk) : chunkOf(chunk));
      return;
    }
    if (!this.queuedRaw) {
      const socket = (this.res as ServerResponse).socket;
      if (typeof chunk !== 'string' && socket && this.direct(socket)) {
        this.queue(chunkOf(chunk));
        return;
      }
      this.flush(); // what was queued goes first
      this.queuedRaw = true;
    }
    // Through the response, as one res.write when the tick ends: a stream's first writes (its
    // `retry:`, its cursor, the history it resumes with) are one chunk behind its headers.
    this.queue(chunk);
  }

  private queue(chunk: Buffer | string): void {
    // A string's length in characters, as Node's writableLength counts what a socket holds.
    this.queuedBytes += chunk.length;
    if (this.queued === undefined) {
      this.queued = chunk;
      if (queuedSinks.length === 0) process.nextTick(flushQueued);
      queuedSinks.push(this);
    } else if (this.queuedMore === undefined) {
      this.queuedMore = [chunk];
    } else {
      this.queuedMore.push(chunk);
    }
    if (this.queuedBytes >= QUEUE_FLUSH_BYTES) this.flush();
  }

  /** Hands what this tick queued to the socket: one write, or one corked batch. */
  flush(): void {
    const first = this.queued;
    if (first === undefined) return;
    const more = this.queuedMore;
    this.queued = undefined;
    this.queuedMore = undefined;
    this.queuedBytes = 0;
    if (this.queuedRaw) {
      this.queuedRaw = false;
      this.writeThrough(more === undefined ? first : joined(first, more));
      return;
    }
    const socket = this.socket ?? this.res?.socket;
    if (!socket || socket.destroyed || socket.writableEnded) return;
    if (more === undefined) {
      socket.write(first);
      return;
    }
    socket.cork();
    socket.write(first);
    for (let i = 0; i < more.length; i++) socket.write(more[i] as Buffer | string);
    socket.uncork();
  }

  /** Writes through the response, then sees whether its header is out. */
  private writeThrough(chunk: Buffer | string): void {
    const res = this.res;
    if (!res || res.destroyed || res.writableEnded) return;
    res.write(chunk);
    if (this.headerPending && !this.settle()) {
      // Node 24 and later put the header on the wire at the next tick, not in res.write (Node
      // 20 did it at once): look again then (test: response-sink.test.ts, on every CI Node).
      process.nextTick(settleLater, this);
    }
  }

  /**
   * Once the header is on the wire, schedules the detach: at the next turn of the loop, when
   * Node has finished parsing the request. False while the header is not yet sent.
   */
  settle(): boolean {
    const res = this.res as (ServerResponse & ResponseInternals) | undefined;
    if (!res || !this.headerPending) return true;
    if (res._headerSent !== true || typeof res._header !== 'string') return false;
    this.headerPending = false;
    setImmediate(detachLater, this);
    return true;
  }

  /** Detaches the socket or, where it cannot be, replaces the header text. */
  detach(): void {
    const res = this.res as (ServerResponse & ResponseInternals) | undefined;
    if (!res || this.closed) return;
    res.off('close', this.markClosed);
    const detached = detachStream(res);
    if (detached) {
      this.socket = detached.socket;
      this.res = undefined;
      // Theirs ran before the hub's while attached (they were added first).
      this.closeListeners = [...detached.closeListeners, ...this.closeListeners];
      detached.socket.on('close', this.markClosed);
      return;
    }
    res.once('close', this.markClosed);
    res._header = SENT_HEADER;
  }

  /**
   * True when bytes written to the socket land right after what the response wrote: chunked
   * encoding, headers already on the wire, nothing queued inside the response (Node 22 and
   * later hold what res.write wrote in this tick inside the response, until the next tick).
   */
  private direct(socket: Socket): boolean {
    const res = this.res as ServerResponse & ResponseInternals;
    return (
      res.chunkedEncoding === true &&
      res._headerSent === true &&
      res.outputData?.length === 0 &&
      res.writableCorked === 0 &&
      !res.writableEnded &&
      !socket.destroyed
    );
  }

  get bufferedBytes(): number {
    const written = this.socket
      ? this.socket.writableLength
      : (this.res as ServerResponse).writableLength;
    return written + this.queuedBytes;
  }

  drained(): Promise<void> {
    // Queued bytes only drain once written: a caller waiting here may be in a chain of
    // microtasks that the tick's flush would not interrupt.
    this.flush();
    const res = this.res;
    // Direct writes fill the socket without the response knowing: ask both.
    const socket = this.socket ?? res?.socket;
    if (this.closed || (!res?.writableNeedDrain && !socket?.writableNeedDrain)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        res?.off('drain', done);
        socket?.off('drain', done);
        this.closeListeners = this.closeListeners.filter((l) => l !== done);
        resolve();
      };
      res?.once('drain', done);
      socket?.once('drain', done);
      this.onClose(done);
    });
  }

  end(): void {
    if (this.closed) return;
    this.flush();
    if (this.socket) this.socket.end(LAST_CHUNK);
    else this.res?.end();
  }

  destroy(): void {
    this.queued = undefined;
    this.queuedMore = undefined;
    this.queuedBytes = 0;
    this.queuedRaw = false;
    if (this.socket) this.socket.destroy();
    else this.res?.destroy();
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.closeListeners.push(listener);
  }
}
