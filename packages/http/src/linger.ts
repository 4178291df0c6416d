import type { Socket } from 'node:net';

/** How long a connection refused before its body was read goes on reading it, at most. */
export const LINGER_MS = 5000;

/**
 * For an answer sent before the request's body was read, on a connection that then closes (a
 * body over the limit by its `Content-Length`: 413 with `Connection: close`). Node closes such a
 * socket as soon as the answer is out, and closing a socket with unread bytes makes the kernel
 * reset the connection: a client still sending its body sees EPIPE or ECONNRESET, and may never
 * read the answer. As nginx's lingering close does, the socket instead sends its FIN after the
 * answer and goes on reading (and dropping) whatever still arrives, until the client closes its
 * side or `lingerMs` have passed.
 */
export function lingerOnClose(socket: Socket, lingerMs = LINGER_MS): void {
  const closing = socket as Socket & { destroySoon?: () => void };
  // Node's HTTP server ends a `Connection: close` response with socket.destroySoon(); on a
  // Node without it the connection closes as before.
  if (typeof closing.destroySoon !== 'function') return;
  closing.destroySoon = function lingeringClose(this: Socket): void {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.resume();
  };
}
