import {
  SseClient,
  fetchJson,
  mintToken,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  type GatewayProcess,
} from '@streamcast/testing';

/**
 * Private fields (docs/security.md, "Private fields") through real gateways on one Redis with JWT auth:
 * two audiences on one topic, live, in history replay on another gateway, and over long polling.
 * The private values must never appear in an unprivileged response's bytes.
 */
describe('private fields', () => {
  const SECRET = 'private-fields-test-secret-0123456789';
  let a: GatewayProcess;
  let b: GatewayProcess;
  let publisher: string;
  let staff: string;
  let customer: string;
  const open: SseClient[] = [];

  const order = { order: 42, total: 99.5, email: 'ann@example.com', margin: 0.31 };
  const privateSpec = [
    { fields: ['email'], claim: 'staff' },
    { fields: ['margin'], claim: 'role=finance' },
  ];

  beforeAll(async () => {
    const env = {
      REDIS_URL: testRedisUrl(),
      REDIS_PREFIX: testPrefix(),
      JWT_SECRET: SECRET,
      PUBLIC_TOPICS: 'orders,orders2',
    };
    [a, b] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    publisher = await mintToken({ key: SECRET, claims: { sub: 'shop', sse: { publish: ['*'] } } });
    staff = await mintToken({
      key: SECRET,
      claims: { sub: 'bob', staff: true, role: ['finance'], sse: { subscribe: ['other'] } },
    });
    customer = await mintToken({
      key: SECRET,
      claims: { sub: 'ann', staff: false, role: 'customer' },
    });
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  async function publish(body: Record<string, unknown>): Promise<{ status: number; body: any }> {
    return fetchJson(`${a.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${publisher}` },
      body: JSON.stringify(body),
    });
  }

  async function subscribe(
    gateway: GatewayProcess,
    query: string,
    token?: string,
  ): Promise<SseClient> {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const client = await SseClient.open(`${gateway.url}/events?${query}`, headers);
    open.push(client);
    expect(client.status).toBe(200);
    return client;
  }

  const publicView = { order: 42, total: 99.5 };

  it('strips fields per audience, live and in replay, and never sends them', async () => {
    const anonymous = await subscribe(a, 'topic=orders');
    const withCustomerToken = await subscribe(a, 'topic=orders', customer);
    const withStaffToken = await subscribe(b, 'topic=orders', staff);
    const multiTopic = await subscribe(a, 'topic=orders&topic=other', staff);
    await anonymous.waitForEvents(0);
    const first = await publish({ topic: 'orders', event: 'order', data: { order: 1 } });
    expect(first.status).toBe(200);
    const res = await publish({
      topic: 'orders',
      event: 'order',
      data: order,
      private: privateSpec,
    });
    expect(res.status).toBe(200);

    for (const client of [anonymous, withCustomerToken, withStaffToken, multiTopic]) {
      await client.waitForEvents(2, 10_000, 'order');
    }
    expect(anonymous.data('order')[1]).toEqual(publicView);
    expect(withCustomerToken.data('order')[1]).toEqual(publicView);
    expect(withStaffToken.data('order')[1]).toEqual(order);
    expect(multiTopic.data('order')[1]).toEqual(order);
    for (const client of [anonymous, withCustomerToken]) {
      expect(client.raw).not.toContain('ann@example.com');
      expect(client.raw).not.toContain('0.31');
    }

    // Replay from history, on the other gateway, from before the event.
    const cursor = encodeURIComponent(first.body.id);
    const replayAnonymous = await subscribe(b, `topic=orders&lastEventId=${cursor}`);
    const replayStaff = await subscribe(b, `topic=orders&lastEventId=${cursor}&token=${staff}`);
    await replayAnonymous.waitForEvents(1, 10_000, 'order');
    await replayStaff.waitForEvents(1, 10_000, 'order');
    expect(replayAnonymous.data('order')).toEqual([publicView]);
    expect(replayStaff.data('order')).toEqual([order]);
    expect(replayAnonymous.raw).not.toContain('ann@example.com');

    // Long polling: the same views.
    const polled = await fetchJson(`${a.url}/poll?topic=orders&lastEventId=${cursor}`);
    expect(polled.body.events.map((e: { data: unknown }) => e.data)).toEqual([publicView]);
    expect(JSON.stringify(polled.body)).not.toContain('ann@example.com');
    const polledStaff = await fetchJson(`${b.url}/poll?topic=orders&lastEventId=${cursor}`, {
      headers: { authorization: `Bearer ${staff}` },
    });
    expect(polledStaff.body.events.map((e: { data: unknown }) => e.data)).toEqual([order]);
  });

  it('refuses a bad "private" with BODY_INVALID and stores nothing', async () => {
    const before = await publish({ topic: 'orders2', data: { n: 0 } });
    const bad: unknown[] = [
      { fields: ['email'] },
      { fields: [], claim: 'staff' },
      { fields: ['email'], claim: 'has space' },
      { fields: ['email'], claim: 'staff', extra: 1 },
      'staff',
      [],
    ];
    for (const spec of bad) {
      const res = await publish({ topic: 'orders2', data: order, private: spec });
      expect({ spec, status: res.status, code: res.body.error?.code }).toEqual({
        spec,
        status: 400,
        code: 'BODY_INVALID',
      });
    }
    const notAnObject = await publish({ topic: 'orders2', data: [1], private: privateSpec });
    expect(notAnObject.body.error?.code).toBe('BODY_INVALID');
    const after = await fetchJson(
      `${a.url}/poll?topic=orders2&timeout=0&lastEventId=${encodeURIComponent(before.body.id)}`,
    );
    expect(after.body.events).toEqual([]);
  });
});
