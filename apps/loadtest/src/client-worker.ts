/**
 * A client process (forked by ClientPool): many cheap SSE connections on raw TCP sockets, driven
 * over IPC. It decodes HTTP/1.1 chunked bodies, splits `\n\n`-terminated frames and reads, from
 * each event's data, the run number, sequence number and send time the publisher put there
 * (`{"r":<run>,"s":<seq>,"t":<epoch ms>,…}`), nothing more: the client side must stay far
 * cheaper than the server it measures. It also keeps the last `id:` and `retry:` of each
 * connection, so a lost connection resumes the way EventSource does (Last-Event-ID).
 *
 * Accounting is exact: each connection keeps the sequence numbers it received as ranges
 * (normally one), so the runner can tell, per connection, which events were delivered, missed
 * or received twice.
 */
import { connect, type Socket } from 'node:net';
import type {
  ConnReport,
  ConnSpec,
  FromWorker,
  ToWorker,
  WorkerConfig,
  WorkerErrors,
} from './client-protocol';
import { encodeHistogram, latencyHistogram, recordUs, type LatencyHistogram } from './latency';

const now = (): number => performance.timeOrigin + performance.now();

const enum Chunk {
  Size,
  Data,
  Trailer,
}

let config: WorkerConfig = {
  targets: [],
  headers: {},
  reconnect: false,
  retryMs: 3000,
  connectTimeoutMs: 30_000,
};
let headerText = '';
let run = 0;
let recordFrom = Infinity;
let recordUntil = Infinity;
let timelineOn = false;
let origin = 0;
let stray = 0;
const histogram = latencyHistogram(3);
const timeline = new Map<number, LatencyHistogram>();
const conns: Conn[] = [];
let total = 0;
const errors: WorkerErrors = { connect: 0, status: {}, dropped: 0 };
let errorCount = 0;

/** One `open` request: answered once each of its connections got its first frame or failed. */
interface Batch {
  pending: number;
  failed: number;
  done: () => void;
}

class Conn {
  private socket: Socket | undefined;
  private head = '';
  private headersDone = false;
  private chunked = false;
  private state = Chunk.Size;
  private size = 0;
  private remaining = 0;
  private pending = '';
  /** Ready in this connection's current life (first frame other than a bare `retry:`). */
  live = false;
  /** Ready at least once: it was counted as opened. */
  everReady = false;
  /** Stopped by us (drop/close): no reconnect. */
  stopped = false;
  /** Lost and waiting to reconnect. */
  down = false;
  /** Down, and the retry delay has not passed yet. */
  waitingRetry = false;
  failed = false;
  startedAt = 0;
  target: number;
  lastId = '';
  retryMs: number;
  readyAt = 0;
  // Ranges of sequence numbers received in this run: [lo, hi] current, earlier ones in `extra`.
  lo = 0;
  hi = -1;
  extra: number[] | undefined;
  dups = 0;
  drops = 0;
  lostAt = 0;
  resumedAt = 0;

  constructor(
    readonly spec: ConnSpec,
    private batch: Batch | undefined,
  ) {
    this.target = spec.t;
    this.retryMs = config.retryMs;
    this.start();
  }

  private start(): void {
    const target = config.targets[this.target];
    if (!target) throw new Error(`no target ${this.target}`);
    this.head = '';
    this.headersDone = false;
    this.chunked = false;
    this.state = Chunk.Size;
    this.size = 0;
    this.remaining = 0;
    this.pending = '';
    this.live = false;
    this.startedAt = now();
    const socket = connect({ host: target.host, port: target.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.onData(chunk);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket === socket) this.onClose();
    });
    const resume = this.lastId ? `Last-Event-ID: ${this.lastId}\r\n` : '';
    socket.write(
      `GET ${this.spec.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n` +
        `Accept: text/event-stream\r\n${headerText}${resume}\r\n`,
    );
  }

  resetCounters(): void {
    this.lo = 0;
    this.hi = -1;
    this.extra = undefined;
    this.dups = 0;
    this.drops = 0;
    this.lostAt = 0;
    this.resumedAt = 0;
  }

  /** The next sequence number expected (0 before the first). */
  get next(): number {
    return this.hi + 1;
  }

  stop(): void {
    this.stopped = true;
    this.socket?.destroy();
  }

  /** Where a lost connection is on its way back. */
  whereDown(): 'waiting' | 'connecting' | 'answered' {
    if (this.waitingRetry) return 'waiting';
    return this.headersDone ? 'answered' : 'connecting';
  }

  /** Too slow to get its first frame: counted as a failed connection. */
  checkTimeout(at: number): void {
    if (
      !this.live &&
      !this.down &&
      !this.stopped &&
      at - this.startedAt > config.connectTimeoutMs
    ) {
      errors.connect++;
      errorCount++;
      this.socket?.destroy();
    }
  }

  private onClose(): void {
    if (this.stopped) return;
    const wasLive = this.live;
    this.live = false;
    if (wasLive) {
      this.drops++;
      this.lostAt = now();
      errors.dropped++;
      errorCount++;
    } else if (this.headersDone) {
      // Answered, then closed without a frame: a refusal (counted by status) or an empty stream.
    } else {
      errors.connect++;
      errorCount++;
      // Refused or reset before answering: the next attempt goes to the next target.
      this.target = (this.target + 1) % config.targets.length;
    }
    if (!this.everReady) {
      // Never opened: a failed connection (no reconnect for these).
      this.failed = true;
      settle(this.takeBatch(), false);
      return;
    }
    if (!config.reconnect) return;
    this.down = true;
    this.waitingRetry = true;
    setTimeout(() => {
      this.waitingRetry = false;
      if (!this.stopped) this.start();
    }, this.retryMs).unref();
  }

  private onData(chunk: Buffer): void {
    let body: string;
    if (!this.headersDone) {
      this.head += chunk.toString('latin1');
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.head.slice(0, end);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? '???';
      this.headersDone = true;
      if (status !== '200') {
        errors.status[status] = (errors.status[status] ?? 0) + 1;
        errorCount++;
        this.target = (this.target + 1) % config.targets.length;
        this.socket?.destroy();
        return;
      }
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
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
            this.socket?.destroy(); // last chunk: the stream ended
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
      const first = s.charCodeAt(pos);
      if (first === 0x72 /* r */ && s.startsWith('retry:', pos)) {
        const ms = parseInt(s.slice(pos + 6, end), 10);
        if (ms >= 0) this.retryMs = ms;
        // A bare `retry:` is what a server that cannot serve sends before closing.
        if (s.indexOf('\n', pos) === end) {
          pos = end + 2;
          continue;
        }
      }
      if (!this.live) this.becameLive(arrived);
      if (first === 0x69 /* i */ && config.reconnect && s.startsWith('id:', pos)) {
        const eol = s.indexOf('\n', pos);
        this.lastId = s.slice(s.charCodeAt(pos + 3) === 0x20 ? pos + 4 : pos + 3, eol);
      }
      const d = s.indexOf('{"r":', pos);
      if (d >= 0 && d < end) {
        const c1 = s.indexOf(',', d + 5);
        const c2 = s.indexOf(',', c1 + 5);
        const c3 = s.indexOf(',', c2 + 5);
        const r = +s.slice(d + 5, c1);
        if (r === run) {
          const t = +s.slice(c2 + 5, c3 < 0 || c3 > end ? s.indexOf('}', c2) : c3);
          this.receive(+s.slice(c1 + 5, c2));
          total++;
          if (t >= recordFrom && t <= recordUntil) recordUs(histogram, (arrived - t) * 1000);
          if (timelineOn) {
            const second = Math.floor((t - origin) / 1000);
            let h = timeline.get(second);
            if (!h) timeline.set(second, (h = latencyHistogram(2)));
            recordUs(h, (arrived - t) * 1000);
          }
        } else {
          stray++;
        }
      }
      pos = end + 2;
    }
    this.pending = pos === 0 ? s : s.slice(pos);
  }

  private becameLive(at: number): void {
    this.live = true;
    if (this.down) {
      this.down = false;
      this.resumedAt = at;
    }
    if (!this.everReady) {
      this.everReady = true;
      this.readyAt = at;
      settle(this.takeBatch(), true);
    }
  }

  private takeBatch(): Batch | undefined {
    const batch = this.batch;
    this.batch = undefined;
    return batch;
  }

  private receive(seq: number): void {
    if (seq === this.hi + 1 && this.hi >= 0) {
      this.hi = seq;
    } else if (this.hi < 0) {
      this.lo = this.hi = seq;
    } else if (seq > this.hi) {
      // A gap: keep the range so far, start a new one.
      (this.extra ??= []).push(this.lo, this.hi);
      this.lo = this.hi = seq;
    } else if (seq >= this.lo || this.inExtra(seq)) {
      this.dups++;
    } else {
      // Late but new (out of order): its own range.
      (this.extra ??= []).push(seq, seq);
    }
  }

  private inExtra(seq: number): boolean {
    const extra = this.extra;
    if (!extra) return false;
    for (let i = 0; i < extra.length; i += 2) {
      if (seq >= (extra[i] as number) && seq <= (extra[i + 1] as number)) return true;
    }
    return false;
  }

  report(): ConnReport {
    const ranges = this.extra ? [...this.extra] : [];
    if (this.hi >= 0) ranges.push(this.lo, this.hi);
    return {
      t: this.spec.t,
      k: this.spec.k,
      readyAt: this.readyAt,
      ranges,
      dups: this.dups,
      drops: this.drops,
      lostAt: this.lostAt,
      resumedAt: this.resumedAt,
      open: this.live,
    };
  }
}

function settle(batch: Batch | undefined, ok: boolean): void {
  if (!batch) return;
  if (!ok) batch.failed++;
  if (--batch.pending === 0) batch.done();
}

function send(message: FromWorker): void {
  process.send?.(message);
}

function open(specs: ConnSpec[]): void {
  const batch: Batch = { pending: specs.length, failed: 0, done: () => {} };
  batch.done = () => {
    let ready = 0;
    for (const c of conns) if (c.everReady && !c.stopped) ready++;
    send({ type: 'opened', ready, failed: batch.failed });
  };
  if (specs.length === 0) return batch.done();
  for (const spec of specs) conns.push(new Conn(spec, batch));
}

function progress(): void {
  if (conns.length === 0) return;
  let min = Infinity;
  let open = 0;
  let down = 0;
  let failed = 0;
  for (const c of conns) {
    if (c.live) {
      open++;
      if (c.hi >= 0 && c.next < min) min = c.next;
    } else if (c.down) down++;
    else if (c.failed) failed++;
  }
  send({
    type: 'progress',
    run,
    min: min === Infinity ? 0 : min,
    total,
    open,
    down,
    failed,
    errors: errorCount,
  });
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'configure':
      config = message.config;
      headerText = Object.entries(config.headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      send({ type: 'configured' });
      break;
    case 'open':
      open(message.conns);
      break;
    case 'run':
      run = message.run;
      recordFrom = Infinity;
      recordUntil = Infinity;
      timelineOn = message.timeline;
      origin = message.origin;
      histogram.reset();
      for (const h of timeline.values()) h.destroy();
      timeline.clear();
      total = 0;
      stray = 0;
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
      const down = { waiting: 0, connecting: 0, answered: 0 };
      for (const c of conns) {
        if (!c.down) continue;
        const where = c.whereDown();
        down[where]++;
      }
      send({
        type: 'report',
        conns: conns.map((c) => c.report()),
        stray,
        histogram: encodeHistogram(histogram),
        timeline: [...timeline].map(([second, h]) => [second, encodeHistogram(h)]),
        errors,
        down,
      });
      break;
    }
    case 'drop': {
      // Close every connection (the server sees them go) and forget them.
      const gone = conns.splice(0);
      for (const c of gone) c.stop();
      send({ type: 'dropped', count: gone.length });
      break;
    }
    case 'close':
      for (const c of conns) c.stop();
      send({ type: 'closed' });
      setTimeout(() => process.exit(0), 50);
      break;
  }
});

// The runner is gone (even killed): never outlive it.
process.on('disconnect', () => process.exit(0));
setInterval(progress, 25);
setInterval(() => {
  const at = now();
  for (const c of conns) c.checkTimeout(at);
}, 1000);
send({ type: 'hello', pid: process.pid });
