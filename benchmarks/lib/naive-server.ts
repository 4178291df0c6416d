/**
 * The naive design the gateway is compared with (run as its own process by naive.ts): every SSE
 * client gets its own Redis subscriber connection, and every message is JSON.parse'd,
 * JSON.stringify'd and written, once per client. Publishers PUBLISH straight to Redis.
 *
 * Env: REDIS_URL, NAIVE_PREFIX (channel = `<prefix>:<topic>`), PORT. Binds 127.0.0.1.
 */
import Fastify from 'fastify';
import Redis from 'ioredis';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.NAIVE_PREFIX ?? 'naive';
const port = Number(process.env.PORT ?? 0);

const app = Fastify({ logger: false });
let open = 0;

app.get('/events', (request, reply) => {
  const topic = String((request.query as Record<string, unknown>).topic ?? '');
  reply.hijack();
  const res = reply.raw;
  res.socket?.setNoDelay(true);
  const sub = new Redis(redisUrl);
  sub.on('error', () => {});
  open++;
  res.once('close', () => {
    open--;
    sub.disconnect();
  });
  sub.on('message', (_channel: string, message: string) => {
    const data: unknown = JSON.parse(message);
    res.write(`data: ${JSON.stringify(data)}\n\n`);
  });
  // Like the gateway, the first bytes go out only once the subscription is live.
  sub.subscribe(`${prefix}:${topic}`).then(
    () => {
      if (res.destroyed) return;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      });
      // A comment after retry: the clients take their first frame other than a bare retry:
      // (what a server that cannot serve sends before closing) as "the stream is live".
      res.write('retry: 3000\n\n: live\n\n');
    },
    () => res.destroy(),
  );
});

app.get('/healthz', async () => ({ status: 'ok', open }));

app.listen({ host: '127.0.0.1', port }).then(
  (address) => process.send?.({ type: 'listening', address }),
  (err: Error) => {
    process.stderr.write(`naive server: ${err.message}\n`);
    process.exit(1);
  },
);

process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
