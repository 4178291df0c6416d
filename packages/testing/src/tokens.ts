import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  SignJWT,
  base64url,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type KeyLike,
} from 'jose';

/** A signing key of a test issuer: its private key and its public JWK (with `kid` and `alg`). */
export interface TestSigningKey {
  alg: 'RS256' | 'ES256';
  kid: string;
  privateKey: KeyLike;
  publicJwk: JWK;
}

/** Generates an RS256 or ES256 key pair for minting test tokens. */
export async function generateSigningKey(
  alg: 'RS256' | 'ES256',
  kid: string,
): Promise<TestSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicJwk };
}

/** The JSON Web Key Set publishing these keys' public halves. */
export function keySet(...keys: TestSigningKey[]): JSONWebKeySet {
  return { keys: keys.map((k) => k.publicJwk) };
}

export interface MintOptions {
  /** Claims, `sse` included; `exp` defaults to an hour from now (set `exp: undefined` to omit). */
  claims?: JWTPayload;
  /** HS256 secret, or an RS256 / ES256 key. */
  key: string | TestSigningKey;
}

/** Signs a JWT: HS256 with a secret, or RS256 / ES256 with a generated key (its `kid` in the header). */
export async function mintToken({ claims = {}, key }: MintOptions): Promise<string> {
  const payload: JWTPayload = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  for (const name of Object.keys(payload)) {
    if (payload[name] === undefined) delete payload[name];
  }
  if (typeof key === 'string') {
    return new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(key, 'utf8'));
  }
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .sign(key.privateKey);
}

/** An unsigned token (`alg: none`), as an attacker would send it. */
export function unsignedToken(claims: JWTPayload): string {
  const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
  const payload = base64url.encode(
    JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }),
  );
  return `${header}.${payload}.`;
}

/** A token with its payload replaced and the original signature kept. */
export function tamperedToken(token: string, claims: JWTPayload): string {
  const [header, , signature] = token.split('.');
  const payload = base64url.encode(
    JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }),
  );
  return `${header}.${payload}.${signature}`;
}

/** A JWKS endpoint on 127.0.0.1 whose key set and availability a test controls. */
export interface JwksServer {
  url: string;
  /** Requests served so far. */
  readonly requests: number;
  setKeys(jwks: JSONWebKeySet): void;
  /** While down, every request is answered 500. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function serveJwks(initial: JSONWebKeySet): Promise<JwksServer> {
  let jwks = initial;
  let down = false;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    if (down) {
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    setKeys: (next) => {
      jwks = next;
    },
    setDown: (value) => {
      down = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
