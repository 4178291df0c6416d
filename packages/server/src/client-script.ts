import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Where every gateway serves the browser client (docs/client.md, "Client library"). */
export const CLIENT_SCRIPT_PATH = '/streamcast-client.js';

/**
 * The browser build of @streamcast/client: the plain script that defines the global
 * `Streamcast`, made at build time (`npm run build`: packages/client/scripts/build-browser.js)
 * from the package's CommonJS output. Read from the package, so a gateway never loads a
 * compiler; missing until the client is built (the test setup builds it).
 */
export function readClientScript(): string {
  let file: string;
  try {
    file = require.resolve('@streamcast/client/streamcast-client.js');
  } catch (err) {
    throw new Error(
      `@streamcast/client is not built (run npm run build): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return readFileSync(file, 'utf8');
}

/** GET /streamcast-client.js: built once at start, cached by browsers, revalidated by ETag. */
export async function clientScriptRoute(app: FastifyInstance): Promise<void> {
  const body = readClientScript();
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  app.get(CLIENT_SCRIPT_PATH, (request, reply) => {
    reply
      .header('content-type', 'text/javascript; charset=utf-8')
      // Short: the URL is not versioned, so a new gateway's client reaches pages within minutes.
      .header('cache-control', 'public, max-age=300')
      .header('etag', etag)
      .header('x-content-type-options', 'nosniff');
    const match = request.headers['if-none-match'];
    if (match && match.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) {
      return reply.code(304).send();
    }
    return reply.send(body);
  });
}
