import { AuthRequired, OriginForbidden, TopicForbidden, describe } from '@streamcast/protocol';
import {
  findToken,
  hasQueryToken,
  isCookieAuthenticated,
  isTrustedOrigin,
  requestOrigin,
  type AuthRequest,
} from './auth-request';
import { allowedBy } from './patterns';
import { TokenVerifier, type Principal, type TokenVerifierOptions } from './token-verifier';

export interface AuthorizerOptions extends TokenVerifierOptions {
  /** Patterns anyone may subscribe to without a token (PUBLIC_TOPICS). @default [] */
  publicTopics?: readonly string[];
  /** Origins trusted for cookie-authenticated writes, as CORS_ORIGINS. @default [] */
  corsOrigins?: readonly string[];
}

/**
 * Who may subscribe to and publish on which topics (API.md, "Authentication and
 * authorisation"). Framework-agnostic: the Fastify plugin and the Express middleware both ask
 * it. With no keys configured (`enabled` false) subscribing is open, and the caller keeps
 * publishing to loopback.
 */
export class Authorizer {
  readonly enabled: boolean;
  readonly publicTopics: readonly string[];
  readonly corsOrigins: ReadonlySet<string>;
  private readonly verifier: TokenVerifier | undefined;

  constructor(options: AuthorizerOptions = {}) {
    const hasKeys = Boolean(options.secret || options.jwksUrl || options.jwksFile || options.jwks);
    this.enabled = hasKeys;
    this.verifier = hasKeys ? new TokenVerifier(options) : undefined;
    this.publicTopics = options.publicTopics ?? [];
    this.corsOrigins = new Set(options.corsOrigins ?? []);
  }

  /**
   * May this request subscribe to `topics` (validated, distinct)? Resolves to the token's
   * principal, or undefined when there is none (auth off, or every topic public and no valid
   * token sent: on public topics a token only unlocks private fields, and a bad or stale one is
   * ignored, so a stale cookie cannot lock a page out of public streams). Throws AUTH_REQUIRED,
   * TOKEN_INVALID, TOKEN_EXPIRED, TOPIC_FORBIDDEN, or NOT_READY when the key set cannot be
   * fetched.
   */
  async authorizeSubscribe(
    req: AuthRequest,
    topics: readonly string[],
  ): Promise<Principal | undefined> {
    if (!this.verifier) return undefined;
    const closed = topics.filter((topic) => !allowedBy(this.publicTopics, topic, undefined));
    if (closed.length === 0) {
      const sent = findToken(req, true);
      return sent ? this.verifier.verify(sent.token).catch(() => undefined) : undefined;
    }
    const found = findToken(req, true);
    if (!found) {
      throw new AuthRequired(
        `topic ${describe(closed[0])} is not public; send a token as Authorization: Bearer <jwt>, ` +
          'the sse_token cookie, or ?token=',
      );
    }
    const principal = await this.verifier.verify(found.token);
    for (const topic of closed) {
      if (!allowedBy(principal.subscribe, topic, principal.sub)) {
        throw new TopicForbidden('subscribing to', describe(topic));
      }
    }
    return principal;
  }

  /**
   * The checks every write (POST and the like) passes before its body is read, when keys are
   * configured: a token in the query string is refused (it is for subscribing only: URLs end up
   * in logs and histories), and a write authenticated by the cookie must come from a trusted
   * origin (CSRF). Synchronous; throws AUTH_REQUIRED or ORIGIN_FORBIDDEN.
   */
  checkWrite(req: AuthRequest): void {
    if (!this.verifier) return;
    if (hasQueryToken(req)) {
      throw new AuthRequired(
        'a token in the query string is accepted for subscribing only; send Authorization: Bearer <jwt>',
      );
    }
    if (isCookieAuthenticated(req) && !isTrustedOrigin(req, this.corsOrigins)) {
      throw new OriginForbidden(describe(requestOrigin(req) ?? '(none)'));
    }
  }

  /**
   * Authenticates a write: checkWrite, then a token is required (header or cookie). Resolves
   * to its principal; throws as checkWrite, and TOKEN_INVALID, TOKEN_EXPIRED, NOT_READY.
   * With no keys configured it resolves to undefined: the caller applies its loopback rule.
   */
  async authenticateWrite(req: AuthRequest): Promise<Principal | undefined> {
    if (!this.verifier) return undefined;
    this.checkWrite(req);
    const found = findToken(req, false);
    if (!found) throw new AuthRequired('send a token as Authorization: Bearer <jwt>');
    return this.verifier.verify(found.token);
  }

  /** Throws TOPIC_FORBIDDEN unless the principal may publish to `topic` (a no-op with auth off). */
  assertPublish(principal: Principal | undefined, topic: string): void {
    if (!this.verifier) return;
    if (!principal || !allowedBy(principal.publish, topic, principal.sub)) {
      throw new TopicForbidden('publishing to', describe(topic));
    }
  }

  /** True when the request's origin is trusted for writes (CORS_ORIGINS, or this host). */
  trustsOrigin(req: AuthRequest): boolean {
    return isTrustedOrigin(req, this.corsOrigins);
  }
}
