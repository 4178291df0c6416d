'use strict';
/**
 * `node-http` in the benchmarks: an SSE server with resume in plain `node:http`, to set the
 * gateway's cost against what Node itself charges for a request, a stream and a write. No
 * framework, no Redis, no limits, no auth, no cursor codec: history is an array per topic in
 * this process, ids are one counter, and a stream resuming after `Last-Event-ID: <n>` gets the
 * events after n. Every write goes through its `ServerResponse`. Plain JavaScript, so it runs on
 * the gateway's Node (BENCH_GATEWAY_NODE).
 *
 *   POST /publish  {"topic": "<t>", "data": <JSON>}  → {"id": "<n>"}, sent to the topic's streams
 *   GET /events?topic=<t>  (Last-Event-ID: <n>)      → text/event-stream
 *
 * Env: PORT. Binds 127.0.0.1; tells its parent (IPC) once it listens.
 */
const { createServer } = require('node:http');

/** Events kept per topic: as many as a gateway's channel keeps in memory (RECENT_MAX_EVENTS). */
const HISTORY = 128;
/** topic → { events: [{ id, frame }], streams: Set<ServerResponse> } */
const topics = new Map();
let nextId = 1;

function topicOf(name) {
  let topic = topics.get(name);
  if (!topic) topics.set(name, (topic = { events: [], streams: new Set() }));
  return topic;
}

function publish(req, res) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    let parsed;
    try {
      parsed = JSON.parse(body);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const topic = topicOf(String(parsed.topic));
    const id = nextId++;
    const frame = Buffer.from(`id: ${id}\ndata: ${JSON.stringify(parsed.data)}\n\n`);
    topic.events.push({ id, frame });
    if (topic.events.length > HISTORY) topic.events.shift();
    for (const stream of topic.streams) stream.write(frame);
    res.writeHead(200, { 'content-type': 'application/json' }).end(`{"id":"${id}"}`);
  });
}

function subscribe(req, res, name) {
  const topic = topicOf(name);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  });
  // A new stream starts live; a resuming one gets what came after its id (of what is kept: no
  // reset for an id older than that, which a real server owes its client; none comes up here).
  const last = req.headers['last-event-id'];
  const after = last === undefined ? Infinity : Number(last);
  const owed = topic.events.filter((e) => e.id > after).map((e) => e.frame);
  // The load tester's clients take the first frame after retry: as "the stream is live".
  res.write(Buffer.concat([Buffer.from('retry: 3000\n\n: live\n\n'), ...owed]));
  topic.streams.add(res);
  res.once('close', () => topic.streams.delete(res));
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://node-http');
  if (req.method === 'POST' && url.pathname === '/publish') return publish(req, res);
  if (req.method === 'GET' && url.pathname === '/events') {
    return subscribe(req, res, url.searchParams.get('topic') ?? '');
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('listening'));
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
