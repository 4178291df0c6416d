import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Sink } from '@streamcast/hub';
import { STREAM_HEADERS } from '@streamcast/protocol';

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

function releaseHeaderLater(sink: ResponseSink): void {
  sink.releaseHeader();
}

/**
 * Streams corked in this tick, uncorked together when it ends: one nextTick for every stream an
 * event was written to, not one each.
 */
let corkedSinks: Array<{ socket: Socket; sink: { corked: boolean } }> = [];

function uncorkAll(): void {
  const corked = corkedSinks;
  corkedSinks = [];
  for (const { socket, sink } of corked) {
    sink.corked = false;
    socket.uncork();
  }
}

/** A hub Sink over a Node.js HTTP response (Fastify's reply.raw, Express's res). */
export class ResponseSink implements Sink {
  private closed = false;
  /** The socket is corked until the next tick: events of one tick leave in one write. */
  corked = false;
  /** begin() ran; the header text is released after the first write sends it. */
  private headerPending = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: OutgoingHttpHeaders = {},
    /** When the hub ends the stream (its token expires), in ms since the epoch. */
    readonly expiresAt?: number,
  ) {
    // The client may be gone already (it left while the host's middleware or an async
    // topics lookup ran): no 'close' would follow, so the hub must learn it here.
    this.closed = res.destroyed;
    res.once('close', () => {
      this.closed = true;
    });
    const socket = res.socket;
    if (socket) {
      // Events are small and latency matters; a stream is meant to stay open.
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      socket.setTimeout(0);
    }
  }

  begin(): void {
    this.res.writeHead(200, { ...STREAM_HEADERS, ...this.headers });
    this.headerPending = true;
  }

  write(chunk: Buffer | string): void {
    const socket = this.res.socket;
    if (typeof chunk !== 'string' && socket && this.direct(socket)) {
      // As res.write does: cork once per tick, so a burst of events is one syscall.
      if (!this.corked) {
        this.corked = true;
        socket.cork();
        if (corkedSinks.length === 0) process.nextTick(uncorkAll);
        corkedSinks.push({ socket, sink: this });
      }
      socket.write(chunkOf(chunk));
      return;
    }
    this.res.write(chunk);
    if (this.headerPending && !this.releaseHeader()) {
      // Node 24 and later put the header on the wire at the next tick, not in res.write (Node
      // 20 did it at once): look again then (test: response-sink.test.ts, on every CI Node).
      process.nextTick(releaseHeaderLater, this);
    }
  }

  /** Replaces the header text once it is on the wire; false while it is not yet. */
  releaseHeader(): boolean {
    const res = this.res as ServerResponse & ResponseInternals;
    if (res._headerSent !== true || typeof res._header !== 'string') return false;
    this.headerPending = false;
    res._header = SENT_HEADER;
    return true;
  }

  /**
   * True when bytes written to the socket land right after what the response wrote: chunked
   * encoding, headers already on the wire, nothing queued inside the response.
   */
  private direct(socket: Socket): boolean {
    const res = this.res as ServerResponse & ResponseInternals;
    return (
      res.chunkedEncoding === true &&
      res._headerSent === true &&
      res.outputData?.length === 0 &&
      !res.writableEnded &&
      !socket.destroyed
    );
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  drained(): Promise<void> {
    // Direct writes fill the socket without the response knowing: ask both.
    const socket = this.res.socket;
    if (this.closed || (!this.res.writableNeedDrain && !socket?.writableNeedDrain)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        socket?.off('drain', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
      socket?.once('drain', done);
    });
  }

  end(): void {
    if (!this.closed) this.res.end();
  }

  destroy(): void {
    this.res.destroy();
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.res.once('close', listener);
  }
}
