import { createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { NotReady, TokenExpired, TokenInvalid } from '@streamcast/protocol';
import type { JSONWebKeySet, JWTHeaderParameters, JWTPayload, KeyLike, errors } from 'jose';

/**
 * jose, loaded when a verifier is built: a gateway without JWT settings (open mode, or a
 * trusted network) never verifies a token, and jose is about 2 MB of its heap.
 */
let joseModule: typeof import('jose') | undefined;
const jose = (): typeof import('jose') =>
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (above)
  (joseModule ??= require('jose') as typeof import('jose'));

export interface TokenVerifierOptions {
  /** Shared secret for HS256 (JWT_SECRET). */
  secret?: string;
  /** URL of a JSON Web Key Set for RS256 / ES256 (JWT_JWKS_URL); fetched and cached. */
  jwksUrl?: string;
  /** File holding a JSON Web Key Set for RS256 / ES256 (JWT_JWKS_FILE); read once. */
  jwksFile?: string;
  /** A key set given directly (embedding, tests). */
  jwks?: JSONWebKeySet;
  /** Required `iss` (JWT_ISSUER). */
  issuer?: string;
  /** Accepted `aud` values; the token's `aud` must name one (JWT_AUDIENCE). */
  audience?: readonly string[];
  /** Tolerance for `exp` and `nbf`, in seconds (JWT_CLOCK_SKEW_S). @default 30 */
  clockSkewS?: number;
}

/** What a verified token allows. */
export interface Principal {
  /** The token's `sub`, if any: the subject counted by MAX_STREAMS_PER_SUBJECT and `{sub}`. */
  sub: string | undefined;
  subscribe: readonly string[];
  publish: readonly string[];
  /** When the token stops being accepted here (`exp` plus the clock skew), in ms since the epoch. */
  expiresAt: number;
  /** Every claim of the token: which private fields of events its streams see. */
  claims: Readonly<Record<string, unknown>>;
}

/** Longer than any reasonable JWT: refused before any parsing. */
const MAX_TOKEN_LENGTH = 8192;
const MAX_PATTERNS = 256;
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

type GetKey = (header: JWTHeaderParameters) => Promise<KeyLike | Uint8Array | KeyObject>;

/**
 * Verifies JWTs with `jose`: HS256 with the shared secret, RS256 / ES256 with a key set (file
 * or URL). The algorithm allowlist comes from the keys configured, so `alg: none` and
 * algorithm confusion (an HS256 token "signed" with a public key) are refused.
 */
export class TokenVerifier {
  private readonly getKey: GetKey;
  private readonly algorithms: string[];
  private readonly clockSkewS: number;

  constructor(private readonly options: TokenVerifierOptions) {
    this.clockSkewS = options.clockSkewS ?? 30;
    const secret = options.secret
      ? createSecretKey(Buffer.from(options.secret, 'utf8'))
      : undefined;
    let keySet: ((header: JWTHeaderParameters) => Promise<KeyLike>) | undefined;
    let remote = false;
    const { createLocalJWKSet, createRemoteJWKSet, errors } = jose();
    if (options.jwks) {
      keySet = createLocalJWKSet(options.jwks);
    } else if (options.jwksFile) {
      keySet = createLocalJWKSet(readKeySetFile(options.jwksFile));
    } else if (options.jwksUrl) {
      keySet = createRemoteJWKSet(new URL(options.jwksUrl), {
        timeoutDuration: 3000,
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
      });
      remote = true;
    }
    this.algorithms = [...(secret ? ['HS256'] : []), ...(keySet ? ['RS256', 'ES256'] : [])];
    if (this.algorithms.length === 0) throw new TypeError('TokenVerifier: no keys configured');
    this.getKey = async (header) => {
      if (header.alg === 'HS256' && secret) return secret;
      if (!keySet)
        throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
      try {
        return await keySet(header);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'ERR_JWKS_NO_MATCHING_KEY' || code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS')
          throw err;
        // The key set could not be had (unreachable, not 200, not a key set): our fault, not
        // the client's. Streams get "retry later"; publishes get 503.
        throw new NotReady(remote ? 'the key set at JWT_JWKS_URL cannot be fetched' : 'no key set');
      }
    };
  }

  /** Verifies `token`; throws TOKEN_INVALID, TOKEN_EXPIRED, or NOT_READY (key set unreachable). */
  async verify(token: string): Promise<Principal> {
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenInvalid('longer than 8192 characters');
    if (!JWT_RE.test(token)) throw new TokenInvalid('not a compact JWT');
    let payload: JWTPayload;
    try {
      ({ payload } = await jose().jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        issuer: this.options.issuer,
        audience: this.options.audience?.length ? [...this.options.audience] : undefined,
        clockTolerance: this.clockSkewS,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw describeFailure(err);
    }
    return {
      sub: typeof payload.sub === 'string' ? payload.sub : undefined,
      ...readClaims(payload.sse),
      expiresAt: ((payload.exp as number) + this.clockSkewS) * 1000,
      claims: payload,
    };
  }
}

/** Reads a JWKS file; throws an Error naming the file when it is not one. */
export function readKeySetFile(path: string): JSONWebKeySet {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    !Array.isArray((parsed as { keys?: unknown }).keys)
  ) {
    throw new Error(`${path} is not a JSON Web Key Set ({"keys": [...]})`);
  }
  return parsed as JSONWebKeySet;
}

/** The `sse` claim: `{"subscribe": [patterns], "publish": [patterns]}`, both optional. */
function readClaims(claim: unknown): { subscribe: string[]; publish: string[] } {
  if (claim === undefined) return { subscribe: [], publish: [] };
  if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) {
    throw new TokenInvalid(
      'claim "sse" must be an object {"subscribe"?: [...], "publish"?: [...]}',
    );
  }
  const { subscribe, publish } = claim as Record<string, unknown>;
  return {
    subscribe: patternList(subscribe, 'subscribe'),
    publish: patternList(publish, 'publish'),
  };
}

function patternList(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  if (
    !Array.isArray(value) ||
    value.length > MAX_PATTERNS ||
    !value.every((p) => typeof p === 'string' && p.length > 0 && p.length <= 256)
  ) {
    throw new TokenInvalid(
      `claim "sse.${name}" must be a list of at most ${MAX_PATTERNS} topic patterns`,
    );
  }
  return value as string[];
}

/** jose's failures as the API's errors; messages never quote the token. */
function describeFailure(err: unknown): Error {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case 'NOT_READY':
    case 'TOKEN_INVALID':
      return err as Error;
    case 'ERR_JWT_EXPIRED':
      return new TokenExpired();
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (err as errors.JWTClaimValidationFailed).claim;
      const reason = (err as errors.JWTClaimValidationFailed).reason;
      if (claim === 'nbf') return new TokenInvalid('not yet valid (nbf)');
      if (claim === 'iss') return new TokenInvalid('wrong issuer (iss)');
      if (claim === 'aud') return new TokenInvalid('wrong audience (aud)');
      if (reason === 'missing') return new TokenInvalid(`no "${claim}" claim`);
      return new TokenInvalid(`claim "${claim}" is invalid`);
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return new TokenInvalid('its algorithm is not accepted here');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new TokenInvalid('bad signature');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return new TokenInvalid('no key of the key set matches it');
    default:
      return new TokenInvalid('malformed');
  }
}
