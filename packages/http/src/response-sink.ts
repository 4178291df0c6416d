import type { ServerResponse } from 'node:http';
import type { Sink } from '@streamcast/hub';
import { STREAM_HEADERS } from '@streamcast/protocol';

/** A hub Sink over a Node.js HTTP response (Fastify's reply.raw, Express's res). */
export class ResponseSink implements Sink {
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, string> = {},
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
  }

  write(chunk: Buffer | string): void {
    this.res.write(chunk);
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  drained(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
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
