import type { IncomingHttpHeaders } from 'node:http';
import { TokenInvalid } from '@streamcast/protocol';

/** The cookie a browser's `EventSource` (`withCredentials`) carries the token in. */
export const TOKEN_COOKIE = 'sse_token';
/** The query parameter for clients that cannot set headers (EventSource); subscribing only. */
export const TOKEN_QUERY = 'token';

/** What authorisation reads from a request, whatever framework parsed it. */
export interface AuthRequest {
  headers: IncomingHttpHeaders;
  /** The `token` query parameter as parsed: a string, or an array when repeated. */
  queryToken: unknown;
  /** The client's address (behind a balancer: from X-Forwarded-For when TRUST_PROXY says so). */
  ip: string | undefined;
}

export type TokenSource = 'header' | 'cookie' | 'query';

export interface FoundToken {
  token: string;
  source: TokenSource;
}

/**
 * The request's token, first match wins: `Authorization: Bearer`, the `sse_token` cookie, the
 * `token` query parameter (only when `allowQuery`). Throws TOKEN_INVALID for an Authorization
 * header of another scheme and for a token given more than once.
 */
export function findToken(req: AuthRequest, allowQuery: boolean): FoundToken | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined && authorization !== '') {
    const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(authorization);
    if (!match) throw new TokenInvalid('the Authorization header must be "Bearer <jwt>"');
    return { token: match[1] as string, source: 'header' };
  }
  const cookie = readCookie(req.headers.cookie, TOKEN_COOKIE);
  if (cookie !== undefined) return { token: cookie, source: 'cookie' };
  if (allowQuery && req.queryToken !== undefined && req.queryToken !== '') {
    if (typeof req.queryToken !== 'string')
      throw new TokenInvalid('?token= was given more than once');
    return { token: req.queryToken, source: 'query' };
  }
  return undefined;
}

/** True when the request carries a `token` query parameter (refused on writes). */
export function hasQueryToken(req: AuthRequest): boolean {
  return req.queryToken !== undefined;
}

/** True when the request authenticates by cookie alone (no Authorization header). */
export function isCookieAuthenticated(req: AuthRequest): boolean {
  const authorization = req.headers.authorization;
  if (authorization !== undefined && authorization !== '') return false;
  return readCookie(req.headers.cookie, TOKEN_COOKIE) !== undefined;
}

/** One cookie's value from a Cookie header; undefined when absent or empty. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2)
      value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      // not percent-encoded after all: keep it as it is (verification refuses it if bad)
    }
    return value === '' ? undefined : value;
  }
  return undefined;
}

/**
 * Whether a write's origin is trusted: its `Origin` (else the origin of its `Referer`) is in
 * `allowed`, or is this very host (same-origin pages). A request with neither header is
 * not trusted; `Origin: null` (sandboxed frames, file: pages) never is.
 */
export function isTrustedOrigin(req: AuthRequest, allowed: ReadonlySet<string>): boolean {
  const origin = requestOrigin(req);
  if (origin === undefined || origin === 'null') return false;
  if (allowed.has(origin)) return true;
  const host = req.headers.host;
  if (!host) return false;
  try {
    const url = new URL(origin);
    return (
      (url.protocol === 'http:' || url.protocol === 'https:') && url.host === host.toLowerCase()
    );
  } catch {
    return false;
  }
}

/** The request's `Origin`, else the origin of its `Referer`. */
export function requestOrigin(req: AuthRequest): string | undefined {
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== '') return origin;
  const referer = req.headers.referer;
  if (typeof referer !== 'string' || referer === '') return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return 'null';
  }
}
