import { Authorizer, type AuthRequest, type Principal } from '@streamcast/auth';
import { RateLimiter, StreamCounter, retryAfter } from '@streamcast/limits';
import {
  BatchTooLarge,
  OriginForbidden,
  PublishForbidden,
  RateLimited,
  describe,
} from '@streamcast/protocol';
import { isLoopback } from './loopback';

export interface GuardOptions {
  /** Who may subscribe and publish. @default no keys: subscribing open, publishing loopback only */
  auth?: Authorizer;
  /** Stream limits (per process, per IP, per subject, across the cluster). @default none */
  streams?: StreamCounter;
  /** Publishes a minute per token subject (else per client IP); 0: no limit. @default 0 */
  publishRatePerMin?: number;
}

/** A stream let in: when it must end, and how to give its place back. */
export interface Admission {
  principal: Principal | undefined;
  /** When the token expires (the stream is ended then), in ms since the epoch. */
  expiresAt: number | undefined;
  /** Call when the stream is over (once; more is harmless). */
  release(): void;
}

/**
 * Every check a request passes before it reaches the hub: authentication and topic claims,
 * the origin of writes, stream limits and the publish rate. Shared by the Fastify plugin and
 * the Express middleware, so that both refuse alike. Refusals are counted by code for /metrics.
 *
 * Loopback clients are not counted per IP (nor rate limited when publishing without a
 * token): they are local tools, or every client at once behind a balancer on this host whose
 * X-Forwarded-For is not trusted (set TRUST_PROXY).
 */
export class Guard {
  readonly auth: Authorizer;
  readonly streams: StreamCounter;
  readonly publishRate: RateLimiter;
  /** Refused requests by error code, for /metrics. */
  readonly refusals = new Map<string, number>();

  constructor(options: GuardOptions = {}) {
    this.auth = options.auth ?? new Authorizer();
    this.streams = options.streams ?? new StreamCounter();
    this.publishRate = new RateLimiter(options.publishRatePerMin ?? 0);
  }

  /**
   * Lets a stream on `topics` (validated, distinct) in, or throws: AUTH_REQUIRED,
   * TOKEN_INVALID, TOKEN_EXPIRED (401), TOPIC_FORBIDDEN (403), TOO_MANY_STREAMS,
   * TOO_MANY_CONNECTIONS (429, with `retryAfter`), NOT_READY (the key set cannot be fetched).
   */
  async admitStream(req: AuthRequest, topics: readonly string[]): Promise<Admission> {
    try {
      const principal = await this.auth.authorizeSubscribe(req, topics);
      const release = await this.streams.acquire({
        ip: countedIp(req.ip),
        subject: principal?.sub,
      });
      return { principal, expiresAt: principal?.expiresAt, release };
    } catch (err) {
      throw this.refused(err);
    }
  }

  /**
   * The checks of every write before its body is read (the plugin runs them for every POST,
   * PUT, PATCH and DELETE of the app, uploads included): no query token, and a trusted origin
   * for cookie-authenticated writes. Throws AUTH_REQUIRED or ORIGIN_FORBIDDEN.
   */
  checkWrite(req: AuthRequest): void {
    try {
      this.auth.checkWrite(req);
    } catch (err) {
      throw this.refused(err);
    }
  }

  /**
   * Authenticates a publish before its body is read. With keys: a token (header or cookie)
   * is required and the publish rate applies; without: loopback only, and a browser page on a
   * foreign origin may not borrow the loopback trust (as it could a cookie). Resolves to the
   * principal whose claims `assertPublish` checks once the topic is known.
   */
  async admitPublish(req: AuthRequest): Promise<Principal | undefined> {
    try {
      if (!this.auth.enabled) {
        if (!isLoopback(req.ip)) throw new PublishForbidden();
        if (req.headers.origin !== undefined && !this.auth.trustsOrigin(req)) {
          throw new OriginForbidden(describe(req.headers.origin));
        }
        return undefined;
      }
      const principal = await this.auth.authenticateWrite(req);
      this.takePublishes(req, principal, 1);
      return principal;
    } catch (err) {
      throw this.refused(err);
    }
  }

  /**
   * The rest of a batch's publishes, once its size is known (`admitPublish` took one): a batch
   * of N counts as N publishes against PUBLISH_RATE_PER_MIN. Throws RATE_LIMITED, or
   * BATCH_TOO_LARGE for a batch larger than the rate itself (nothing of the batch is stored
   * then, and the one admitPublish took is given back: a refused batch costs nothing). No-op
   * without keys, as the rate applies to tokens' holders.
   */
  admitBatch(req: AuthRequest, principal: Principal | undefined, events: number): void {
    if (!this.auth.enabled || events <= 1) return;
    try {
      const perMinute = this.publishRate.perMinute;
      if (perMinute > 0 && events > perMinute) throw new BatchTooLarge(events, perMinute);
      this.takePublishes(req, principal, events - 1);
    } catch (err) {
      this.publishRate.give(publisherKey(req, principal), 1);
      throw this.refused(err);
    }
  }

  private takePublishes(req: AuthRequest, principal: Principal | undefined, count: number): void {
    const wait = this.publishRate.take(publisherKey(req, principal), Date.now(), count);
    if (wait > 0) {
      const whom = principal?.sub !== undefined ? "this token's subject" : 'this client';
      throw retryAfter(new RateLimited(this.publishRate.perMinute, whom), wait);
    }
  }

  /** Throws TOPIC_FORBIDDEN unless the principal may publish to `topic` (auth off: no-op). */
  assertPublish(principal: Principal | undefined, topic: string): void {
    try {
      this.auth.assertPublish(principal, topic);
    } catch (err) {
      throw this.refused(err);
    }
  }

  close(): void {
    this.streams.close();
  }

  private refused(err: unknown): unknown {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string') this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
    return err;
  }
}

/** The IP a stream is counted under: none for loopback (see Guard). */
function countedIp(ip: string | undefined): string | undefined {
  return ip === undefined || isLoopback(ip) ? undefined : ip;
}

/** Whose publishes the rate counts: the token's subject, else the client's address. */
function publisherKey(req: AuthRequest, principal: Principal | undefined): string {
  return principal?.sub !== undefined ? `sub:${principal.sub}` : `ip:${req.ip ?? '?'}`;
}
