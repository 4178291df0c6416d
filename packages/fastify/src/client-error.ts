import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import {
  HeadersTooLarge,
  HttpInvalid,
  Internal,
  RequestTimeout,
  UrlInvalid,
  errorBody,
} from '@streamcast/protocol';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/**
 * Answers what Node's HTTP parser refused (malformed request lines and headers, oversized
 * headers, timeouts) in the API's error shape, then drops the connection: Fastify's
 * `clientErrorHandler` option. Nothing of the request is echoed.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new HeadersTooLarge()
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new RequestTimeout()
        : new HttpInvalid(
            /^HPE_[A-Z_]+$/.test(err.code ?? '') ? (err.code as string) : 'unparsable',
          );
  const status = error.statusCode ?? 400;
  const body = JSON.stringify(errorBody(error.code, error.message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Answers the router's own refusals (Fastify's `frameworkErrors` option) in the API's error
 * shape. Fastify's default answer quotes the whole URL, query string and any `?token=` with it.
 */
export function frameworkErrors(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    const err = new UrlInvalid(
      error.code === 'FST_ERR_BAD_URL'
        ? 'has a percent-escape that is not UTF-8'
        : 'has a parameter longer than the route accepts',
    );
    reply.code(400).send(errorBody(err.code, err.message));
    return;
  }
  const err = new Internal();
  reply.code(500).send(errorBody(err.code, err.message));
}
