import { topicFingerprint as gatewayFingerprint } from '@streamcast/protocol';
import { connect, topicFingerprint, type StreamcastOptions } from './index';

/**
 * The client's reconnection schedule, against a fake EventSource and fake timers (the browser
 * tests, test/client-library.test.ts, cover it end to end against real gateways).
 */

type Listener = (event: { data?: string; lastEventId?: string }) => void;

class FakeEventSource {
  static instances: FakeEventSource[] = [];
  readyState = 0;
  closed = false;
  readonly listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  emit(type: string, event: { data?: string; lastEventId?: string } = {}): void {
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }

  open(): void {
    this.readyState = 1;
    this.emit('open');
  }

  /** A non-200 answer: EventSource gives up (CLOSED). */
  refuse(): void {
    this.readyState = 2;
    this.emit('error');
  }
}

const g = globalThis as unknown as Record<string, unknown>;
const latest = () => FakeEventSource.instances[FakeEventSource.instances.length - 1]!;

beforeEach(() => {
  jest.useFakeTimers({ now: 0 });
  jest.spyOn(Math, 'random').mockReturnValue(0.999);
  FakeEventSource.instances = [];
  g.EventSource = FakeEventSource;
});

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
  delete g.EventSource;
});

/** Advances the clock 10 ms at a time until a new EventSource is made; returns the time it took. */
async function nextSource(): Promise<number> {
  const count = FakeEventSource.instances.length;
  const started = Date.now();
  while (FakeEventSource.instances.length === count) {
    if (Date.now() - started > 60_000) throw new Error('no reconnection within a minute');
    await jest.advanceTimersByTimeAsync(10);
  }
  return Math.round((Date.now() - started) / 10) * 10;
}

const base: StreamcastOptions = {
  url: 'http://gateway.test',
  topics: ['news'],
  lastEventId: '1~0.e1.1.0',
  transport: 'sse',
  minDelayMs: 100,
  maxDelayMs: 1000,
};

it('backs off exponentially up to the ceiling while refused, resuming from the cursor', async () => {
  const client = connect<{ headline: { title: string } }>(base);
  const seen: string[] = [];
  client.on('headline', (data, meta) => seen.push(`${data.title} ${meta.id} ${meta.topic}`));
  await jest.advanceTimersByTimeAsync(0);
  expect(FakeEventSource.instances).toHaveLength(1);
  expect(latest().url).toBe('http://gateway.test/events?topic=news&lastEventId=1~0.e1.1.0');
  latest().open();
  latest().emit('headline', { data: '{"title":"hi"}', lastEventId: '1~0.e1.2.0' });
  expect(seen).toEqual(['hi 1~0.e1.2.0 news']);
  expect(client.lastEventId).toBe('1~0.e1.2.0');

  // Refused again and again (503 from a balancer): each wait doubles (random() ≈ 1), capped.
  latest().refuse();
  expect(client.state).toBe('reconnecting');
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    waits.push(await nextSource());
    latest().refuse();
  }
  // The first wait follows a healthy stream (an event): the minimum; then 200, 400, 800, 1000…
  expect(waits).toEqual([100, 200, 400, 800, 1000, 1000]);
  expect(
    FakeEventSource.instances.every(
      (es, i) => i === FakeEventSource.instances.length - 1 || es.closed,
    ),
  ).toBe(true);
  expect(latest().url).toBe('http://gateway.test/events?topic=news&lastEventId=1~0.e1.2.0');

  // Open and healthy again (3 s): the next failure waits the minimum again.
  await nextSource();
  latest().open();
  await jest.advanceTimersByTimeAsync(3000);
  expect(client.state).toBe('open');
  latest().refuse();
  expect(await nextSource()).toBe(100);
  client.close();
  expect(client.state).toBe('closed');
  expect(latest().closed).toBe(true);
});

it('leaves reconnection to EventSource without a token, and takes it over with one', async () => {
  const plain = connect(base);
  await jest.advanceTimersByTimeAsync(0);
  latest().open();
  // A network error or the end of the stream: EventSource retries by itself (CONNECTING).
  latest().readyState = 0;
  latest().emit('error');
  expect(latest().closed).toBe(false);
  expect(FakeEventSource.instances).toHaveLength(1);
  expect(plain.state).toBe('reconnecting');
  plain.close();

  let n = 0;
  const withToken = connect({ ...base, token: async () => `tok${++n}` });
  await jest.advanceTimersByTimeAsync(0);
  expect(latest().url).toBe(
    'http://gateway.test/events?topic=news&lastEventId=1~0.e1.1.0&token=tok1',
  );
  latest().open();
  latest().emit('message', { data: '1', lastEventId: '1~0.e1.3.0' });
  latest().readyState = 0; // the gateway ended the stream at the token's exp
  latest().emit('error');
  expect(latest().closed).toBe(true);
  await jest.advanceTimersByTimeAsync(100);
  expect(FakeEventSource.instances).toHaveLength(3);
  expect(latest().url).toBe(
    'http://gateway.test/events?topic=news&lastEventId=1~0.e1.3.0&token=tok2',
  );
  withToken.close();
});

it('reads the topic of an event from the cursor on a multi-topic connection', async () => {
  const [fa, fb] = [gatewayFingerprint('a'), gatewayFingerprint('b')];
  const client = connect({
    ...base,
    topics: ['b', 'a'],
    lastEventId: `2~${fa}.e1.1.0~${fb}.e2.1.0`,
  });
  const topics: (string | undefined)[] = [];
  client.on('message', (_data, meta) => topics.push(meta.topic));
  await jest.advanceTimersByTimeAsync(0);
  expect(latest().url).toContain('?topic=a&topic=b&');
  latest().open();
  latest().emit('message', { data: '1', lastEventId: `2~${fa}.e1.1.0~${fb}.e2.2.0` });
  latest().emit('message', { data: '2', lastEventId: `2~${fa}.e1.2.0~${fb}.e2.2.0` });
  // An entry for a topic this client does not have tells nothing.
  latest().emit('message', { data: '3', lastEventId: `2~${fa}.e1.2.0~${fb}.e2.2.0~zzzzzz.e3.1.0` });
  expect(topics).toEqual(['b', 'a', undefined]);
  client.close();
});

it('computes the same topic fingerprints as the gateway', () => {
  const topics = ['a', 'news', 'stocks/AAPL', 'user/42/inbox', 'x'.repeat(200), 'A-Z_a-z.0-9:/'];
  for (let i = 0; i < 2000; i++) topics.push(`room/${i}`, `t${(i * 7919).toString(36)}`);
  expect(topics.map(topicFingerprint)).toEqual(topics.map(gatewayFingerprint));
});

it('reads the topic from cursors of the previous format too (gateways before the upgrade)', async () => {
  const client = connect({ ...base, topics: ['b', 'a'], lastEventId: '1~0.e1.1.0~1.e2.1.0' });
  const topics: (string | undefined)[] = [];
  client.on('message', (_data, meta) => topics.push(meta.topic));
  await jest.advanceTimersByTimeAsync(0);
  expect(latest().url).toContain('?topic=a&topic=b&');
  latest().open();
  latest().emit('message', { data: '1', lastEventId: '1~0.e1.1.0~1.e2.2.0' }); // index 1: b
  latest().emit('message', { data: '2', lastEventId: '1~0.e1.2.0~1.e2.2.0' }); // index 0: a
  expect(topics).toEqual(['b', 'a']);
  client.close();
});
