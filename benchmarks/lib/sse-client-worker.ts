/**
 * A benchmark client process (forked by ClientPool): many cheap SSE connections on raw TCP
 * sockets, driven over IPC. It decodes HTTP/1.1 chunked bodies, counts `\n\n`-terminated frames
 * and reads the run number, sequence number and send time that the publisher put in each event's
 * data (`{"r":<run>,"s":<seq>,"t":<ms>,"p":"…"}`), nothing more: the client side must stay far
 * cheaper than the server it measures.
 */
import { connect, type Socket } from 'node:net';
import { Histogram } from './histogram';
import type { ToWorker, FromWorker } from './client-protocol';

const now = (): number => performance.timeOrigin + performance.now();

const enum Chunk {
  Size,
  Data,
  Trailer,
}

let run = 0;
let recordFrom = Infinity;
let recordUntil = Infinity;
const histogram = new Histogram();
const conns: Conn[] = [];
let total = 0;
let waiting: { pending: number; failed: number; done: () => void } | undefined;

class Conn {
  private head = '';
  private headersDone = false;
  private chunked = false;
  private state = Chunk.Size;
  private size = 0;
  private remaining = 0;
  private pending = '';
  ready = false;
  closed = false;
  count = 0;
  next = 0;
  gaps = 0;
  dups = 0;
  stray = 0;

  constructor(
    private readonly socket: Socket,
    path: string,
    port: number,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`,
    );
  }

  resetCounters(): void {
    this.count = 0;
    this.next = 0;
    this.gaps = 0;
    this.dups = 0;
    this.stray = 0;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.ready) settle(false);
  }

  private onData(chunk: Buffer): void {
    let body: string;
    if (!this.headersDone) {
      this.head += chunk.toString('latin1');
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.head.slice(0, end);
      if (!/^HTTP\/1\.[01] 200/.test(head)) {
        this.socket.destroy();
        return;
      }
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      this.headersDone = true;
      const rest = Buffer.from(this.head.slice(end + 4), 'latin1');
      this.head = '';
      body = this.chunked ? this.dechunk(rest) : rest.toString('latin1');
    } else {
      body = this.chunked ? this.dechunk(chunk) : chunk.toString('latin1');
    }
    if (body.length > 0) this.onBody(body);
  }

  /** Minimal HTTP/1.1 chunked decoding: hex size line, data, CRLF. */
  private dechunk(buf: Buffer): string {
    let out = '';
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (this.state === Chunk.Data) {
        const take = Math.min(this.remaining, n - i);
        out += buf.toString('latin1', i, i + take);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = Chunk.Trailer;
      } else if (this.state === Chunk.Size) {
        const c = buf[i++] as number;
        if (c === 0x0a) {
          if (this.size === 0) {
            this.socket.destroy(); // last chunk: the stream ended
            return out;
          }
          this.remaining = this.size;
          this.size = 0;
          this.state = Chunk.Data;
        } else if (c >= 0x30 && c <= 0x39) this.size = this.size * 16 + (c - 0x30);
        else if (c >= 0x61 && c <= 0x66) this.size = this.size * 16 + (c - 0x57);
        else if (c >= 0x41 && c <= 0x46) this.size = this.size * 16 + (c - 0x37);
        // '\r' and chunk extensions: ignored
      } else {
        if (buf[i++] === 0x0a) this.state = Chunk.Size;
      }
    }
    return out;
  }

  private onBody(text: string): void {
    const s = this.pending.length > 0 ? this.pending + text : text;
    const arrived = now();
    let pos = 0;
    for (;;) {
      const end = s.indexOf('\n\n', pos);
      if (end < 0) break;
      if (!this.ready) {
        // The first frame (`retry:`) says the subscription is live.
        this.ready = true;
        settle(true);
      }
      const d = s.indexOf('{"r":', pos);
      if (d >= 0 && d < end) {
        const c1 = s.indexOf(',', d + 5);
        const c2 = s.indexOf(',', c1 + 5);
        const c3 = s.indexOf(',', c2 + 5);
        const r = +s.slice(d + 5, c1);
        if (r === run) {
          const seq = +s.slice(c1 + 5, c2);
          const t = +s.slice(c2 + 5, c3);
          this.count++;
          total++;
          if (seq === this.next) this.next++;
          else if (seq > this.next) {
            this.gaps += seq - this.next;
            this.next = seq + 1;
          } else this.dups++;
          if (t >= recordFrom && t <= recordUntil) histogram.record((arrived - t) * 1000);
        } else {
          this.stray++;
        }
      }
      pos = end + 2;
    }
    this.pending = pos === 0 ? s : s.slice(pos);
  }
}

function settle(ok: boolean): void {
  if (!waiting) return;
  if (!ok) waiting.failed++;
  if (--waiting.pending === 0) waiting.done();
}

function send(message: FromWorker): void {
  process.send?.(message);
}

function open(port: number, paths: string[]): void {
  const batch = { pending: paths.length, failed: 0, done: () => {} };
  batch.done = () => {
    waiting = undefined;
    const ready = conns.filter((c) => c.ready && !c.closed).length;
    send({ type: 'opened', ready, failed: batch.failed });
  };
  waiting = batch;
  if (paths.length === 0) return batch.done();
  for (const path of paths) {
    const socket = connect({ host: '127.0.0.1', port });
    conns.push(new Conn(socket, path, port));
  }
}

function progress(): void {
  if (run === 0 || conns.length === 0) return;
  let min = Infinity;
  let open = 0;
  for (const c of conns) {
    if (c.closed) continue;
    open++;
    if (c.count < min) min = c.count;
  }
  send({ type: 'progress', run, min: open > 0 ? min : 0, total, open });
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'open':
      open(message.port, message.paths);
      break;
    case 'run':
      run = message.run;
      recordFrom = Infinity;
      recordUntil = Infinity;
      histogram.reset();
      total = 0;
      for (const c of conns) c.resetCounters();
      send({ type: 'run', run });
      break;
    case 'window':
      if (message.start !== undefined) {
        histogram.reset();
        recordFrom = message.start;
        recordUntil = Infinity;
      }
      if (message.end !== undefined) recordUntil = message.end;
      send({ type: 'window' });
      break;
    case 'snapshot':
      send({ type: 'snapshot', total });
      break;
    case 'report': {
      let lost = 0;
      let gaps = 0;
      let dups = 0;
      let stray = 0;
      let open = 0;
      for (const c of conns) {
        if (!c.closed) open++;
        lost += Math.max(0, message.expected - c.count);
        gaps += c.gaps;
        dups += c.dups;
        stray += c.stray;
      }
      send({
        type: 'report',
        connections: conns.length,
        open,
        total,
        lost,
        gaps,
        dups,
        stray,
        histogram: histogram.toJSON(),
      });
      break;
    }
    case 'drop': {
      // Close every connection (the server sees them go) and forget them.
      const gone = conns.splice(0);
      for (const c of gone) c.destroy();
      send({ type: 'dropped', count: gone.length });
      break;
    }
    case 'close':
      for (const c of conns) c.destroy();
      send({ type: 'closed' });
      setTimeout(() => process.exit(0), 50);
      break;
  }
});

// The runner is gone (even killed): never outlive it.
process.on('disconnect', () => process.exit(0));
setInterval(progress, 25);
send({ type: 'hello', pid: process.pid });
