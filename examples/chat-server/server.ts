/**
 * The seed's chat server (`server.js` in shared/seed) on `@streamcast/express`: the same route
 * and events, but every instance on one Redis serves the same chat, a client may reconnect to
 * any of them and resumes where it left off.
 *
 * Run two instances on one Redis, from the repository root:
 *
 *   export REDIS_URL=redis://127.0.0.1:6379
 *   npm run build   (the example imports the packages' compiled dist/)
 *   PORT=3001 node -r ts-node/register/transpile-only examples/chat-server/server.ts
 *   PORT=3002 node -r ts-node/register/transpile-only examples/chat-server/server.ts
 *
 *   curl -N localhost:3002/api/chat-updates                      # a client of the second
 *   curl -X POST localhost:3001/api/chat/messages \
 *     -H 'content-type: application/json' -d '{"user":"Alice","text":"hi"}'   # sent to the first
 *
 * or open http://localhost:3001/chat.html and http://localhost:3002/chat.html. Without
 * REDIS_URL it runs on the in-process memory engine (one instance). SIMULATE=0 turns off the
 * seed's simulated chat activity; HOST defaults to 127.0.0.1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createBroadcaster, sse, type Broadcaster } from '@streamcast/express';
import express, { type NextFunction, type Request, type Response } from 'express';

/** The seed's greeting: sent to each new connection only, with no id, and not stored. */
const CONNECTED = 'data: {"status": "connected", "message": "SSE 连接已建立"}\n\n';
const USERS = ['Alice', 'Bob', 'Charlie', 'Diana'];
const MESSAGES = ['你好大家!', '今天天气真好', '有人在吗?', '这个 SSE 示例很棒!', '谢谢分享'];

interface HttpError {
  statusCode?: number;
  status?: number;
  code?: string;
  message?: string;
}

export interface ChatServerOptions {
  /** Unset: the in-process memory engine (a single instance). */
  redisUrl?: string;
  /** Redis key prefix; instances that share a chat share it. @default 'sse' */
  keyPrefix?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Publish the seed's random joins, messages and leaves. @default true */
  simulate?: boolean;
}

export interface ChatServer {
  url: string;
  broadcaster: Broadcaster;
  close(): Promise<void>;
}

export async function startChatServer(options: ChatServerOptions = {}): Promise<ChatServer> {
  const broadcaster = await createBroadcaster({
    redisUrl: options.redisUrl,
    keyPrefix: options.keyPrefix,
  });
  const app = express();
  app.use(express.static(join(__dirname, 'public')));
  app.use(express.json());

  app.get(
    '/api/chat-updates',
    sse({
      broadcaster,
      topics: () => ['chat'],
      preamble: CONNECTED,
      headers: { 'access-control-allow-origin': '*' },
    }),
  );

  // Anyone may post here: this is a demo. The event reaches the clients of every instance.
  app.post('/api/chat/messages', async (req: Request, res: Response) => {
    const { user, text } = (req.body ?? {}) as { user?: unknown; text?: unknown };
    if (!isText(user, 50) || !isText(text, 2000)) {
      res.status(400).json({
        error: {
          code: 'BODY_INVALID',
          message: 'send {"user": 1-50 characters, "text": 1-2000 characters}',
        },
      });
      return;
    }
    const id = await broadcaster.publish('chat', 'new-message', { user, text });
    res.json({ id });
  });

  // Errors in the broadcaster's shape: its own carry a status and a stable code.
  app.use((err: HttpError, _req: Request, res: Response, _next: NextFunction) => {
    const status = err.statusCode ?? err.status ?? 500;
    const code =
      err.code && /^[A-Z][A-Z_]+$/.test(err.code)
        ? err.code
        : status === 413
          ? 'BODY_TOO_LARGE'
          : status < 500
            ? 'BODY_INVALID'
            : 'INTERNAL';
    if (status >= 500 && code !== 'NOT_READY') console.error(err);
    const message = status < 500 || code === 'NOT_READY' ? String(err.message) : 'internal error';
    res.status(status).json({ error: { code, message } });
  });

  const timers = options.simulate === false ? [] : simulateChat(broadcaster);
  const server = createServer(app);
  await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    broadcaster,
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      // End the open streams first: the server waits for its connections before closing.
      await broadcaster.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

/** The seed's chat activity, published only while this instance has clients, as the seed did. */
function simulateChat(broadcaster: Broadcaster): NodeJS.Timeout[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
  const every = (ms: number, event: string, data: () => unknown) =>
    setInterval(() => {
      if (broadcaster.hub.connectionCount === 0) return;
      broadcaster.publish('chat', event, data()).catch((err: Error) => {
        console.error(`chat: ${event} not published: ${err.message}`);
      });
    }, ms);
  return [
    every(10_000, 'user-joined', () => ({ name: pick(USERS) })),
    every(5_000, 'new-message', () => ({ user: pick(USERS), text: pick(MESSAGES) })),
    every(15_000, 'user-left', () => ({ name: pick(USERS) })),
  ];
}

function isText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= max;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

if (require.main === module) {
  const rawPort = process.env.PORT ?? '3000';
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`chat-server: PORT must be an integer 0-65535 (got "${rawPort}")\n`);
    process.exit(1);
  }
  startChatServer({
    redisUrl: process.env.REDIS_URL || undefined,
    keyPrefix: process.env.REDIS_PREFIX || undefined,
    port,
    host: process.env.HOST || '127.0.0.1',
    simulate: process.env.SIMULATE !== '0',
  }).then(
    (chat) => {
      console.log(`chat server on ${chat.url} (${chat.broadcaster.engine.kind} engine)`);
      const stop = () => {
        chat.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    },
    (err: Error) => {
      process.stderr.write(`chat-server: ${err.message}\n`);
      process.exit(1);
    },
  );
}
