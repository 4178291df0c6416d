import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';

/**
 * The repository's demo pages, apps/web/public, found from this file's place in the repository
 * (a path, not an import: packages never import apps).
 */
export const REPO_WEB_ROOT = join(__dirname, '..', '..', '..', 'apps', 'web', 'public');

/**
 * The folder a gateway serves pages from, or undefined for none: `WEB_ROOT` as configured
 * (`none`: none), else the repository's demo pages when they are there.
 * @default REPO_WEB_ROOT when it holds an index.html
 */
export function resolveWebRoot(setting: string): string | undefined {
  if (setting === 'none') return undefined;
  if (setting !== '') return setting;
  return existsSync(join(REPO_WEB_ROOT, 'index.html')) ? REPO_WEB_ROOT : undefined;
}

/**
 * Serves the files of `root` (index.html at `/`) with @fastify/static, loaded only then (about
 * 2 MB of heap that a gateway without pages does not need).
 */
export async function registerWebPages(app: FastifyInstance, root: string): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when used (above)
  const fastifyStatic = (require('@fastify/static') as typeof import('@fastify/static')).default;
  await app.register(fastifyStatic, {
    root,
    // One route per file found at start and no catch-all: /events, /api/*, /healthz, … stay as
    // they are, and unknown paths keep the API's JSON 404.
    wildcard: false,
    // Leaves reply.sendFile free for a plugin of its own.
    decorateReply: false,
  });
}
