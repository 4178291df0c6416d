import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import ts from 'typescript';

/** Where every gateway serves the browser client (README, "Client library"). */
export const CLIENT_SCRIPT_PATH = '/streamcast-client.js';

/**
 * The browser build of @streamcast/client: its single source file transpiled to ES2017 and
 * wrapped as a plain script that defines the global `Streamcast`. No bundler: the file imports
 * nothing, and typescript is loaded already (the gateway runs on ts-node).
 */
export function buildClientScript(
  source = readFileSync(require.resolve('@streamcast/client'), 'utf8'),
): string {
  const { outputText } = ts.transpileModule(source, {
    fileName: 'streamcast-client.ts',
    compilerOptions: {
      target: ts.ScriptTarget.ES2017,
      module: ts.ModuleKind.CommonJS,
      removeComments: true,
    },
  });
  if (/\brequire\(/.test(outputText)) {
    throw new Error('@streamcast/client must not import anything: it is served as one plain script');
  }
  return (
    '/* @streamcast/client: defines the global Streamcast (README, "Client library") */\n' +
    '(function (root) {\n' +
    "'use strict';\n" +
    'var exports = {};\n' +
    `${outputText.trim()}\n` +
    'root.Streamcast = exports;\n' +
    "})(typeof globalThis !== 'undefined' ? globalThis : self);\n"
  );
}

/** GET /streamcast-client.js: built once at start, cached by browsers, revalidated by ETag. */
export async function clientScriptRoute(app: FastifyInstance): Promise<void> {
  const body = buildClientScript();
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
