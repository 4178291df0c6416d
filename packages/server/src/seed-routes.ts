import { ParamInvalid } from '@streamcast/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * The routes the seed's browser pages use (API.md, "Routes that the seed's pages use"): each is
 * the same subscription as /events?topic=…, with the same resume and guarantees.
 */

const SYMBOL_RE = /^[A-Z0-9.-]{1,12}$/;
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The seed's greeting on /api/chat-updates: no id (it is not in history), sent on every connect. */
export const CHAT_GREETING = `data: ${JSON.stringify({ status: 'connected', message: 'SSE 连接已建立' })}\n\n`;

function param(request: FastifyRequest, name: string): string {
  return (request.params as Record<string, string>)[name] ?? '';
}

/** `:symbol` upper-cased; 1-12 of A-Z 0-9 . - */
export function stockTopic(symbol: string): string {
  const upper = symbol.toUpperCase();
  if (!SYMBOL_RE.test(upper)) {
    throw new ParamInvalid(
      `stock symbol ${JSON.stringify(symbol.slice(0, 40))} must be 1-12 of A-Z 0-9 . -`,
    );
  }
  return `stocks/${upper}`;
}

function idTopic(kind: string, family: string, id: string): string {
  if (!ID_RE.test(id)) {
    throw new ParamInvalid(
      `${kind} ${JSON.stringify(id.slice(0, 80))} must be 1-64 of A-Z a-z 0-9 _ -`,
    );
  }
  return `${family}/${id}`;
}

export async function seedRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/events', (_req, reply) => reply.sse(['events']));
  app.get('/api/stocks/:symbol', (req, reply) => reply.sse([stockTopic(param(req, 'symbol'))]));
  app.get('/api/blog/updates', (_req, reply) => reply.sse(['blog']));
  app.get('/api/upload-progress/:fileId', (req, reply) =>
    reply.sse([idTopic('file id', 'uploads', param(req, 'fileId'))]),
  );
  app.get('/api/chat-updates', (_req, reply) => reply.sse(['chat'], { preamble: CHAT_GREETING }));
  app.get('/api/match/:id/live-updates', (req, reply) =>
    reply.sse([idTopic('match id', 'matches', param(req, 'id'))]),
  );
  app.get('/api/system/monitoring', (_req, reply) => reply.sse(['system/monitoring']));
  app.get('/api/social/updates', (_req, reply) => reply.sse(['social']));
}
