import { createPublisher, type Publisher } from '@streamcast/publisher';
import { MAX_DATA_DEPTH } from '@streamcast/protocol';
import {
  fetchJson,
  startGatewayProcess,
  testPrefix,
  testRedisUrl,
  type GatewayProcess,
} from '@streamcast/testing';

/**
 * The fixed nesting limit of `data` (docs/api.md, "Error codes": BODY_INVALID), the same through every way to
 * publish (straight into Redis, and a gateway's POST /publish), and the same on every Node
 * version (CI runs this on 20, 24 and 26): at the limit stored, past it refused with nothing stored.
 */
describe(`data nested deeper than ${MAX_DATA_DEPTH} levels`, () => {
  const prefix = testPrefix();
  let gateway: GatewayProcess;
  const publishers: Publisher[] = [];
  const nested = (depth: number): unknown => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);

  beforeAll(async () => {
    gateway = await startGatewayProcess({ REDIS_URL: testRedisUrl(), REDIS_PREFIX: prefix });
    publishers.push(
      await createPublisher({ redisUrl: testRedisUrl(), keyPrefix: prefix }),
      await createPublisher({ gatewayUrl: gateway.url }),
    );
  });

  afterAll(async () => {
    await Promise.all(publishers.map((p) => p.close()));
    await gateway?.stop();
  });

  it('is stored at the limit and refused past it, by the publisher library and POST /publish', async () => {
    for (const publisher of publishers) {
      const topic = `depth-${publisher.target}`;
      const first = await publisher.publish(topic, 'message', nested(MAX_DATA_DEPTH));
      for (const depth of [MAX_DATA_DEPTH + 1, 50_000]) {
        await expect(publisher.publish(topic, 'message', nested(depth))).rejects.toMatchObject({
          name: 'PublishError',
          code: 'BODY_INVALID',
        });
      }
      const raw = await fetchJson(`${gateway.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic, data: nested(MAX_DATA_DEPTH + 1) }),
      });
      expect([raw.status, raw.body.error?.code]).toEqual([400, 'BODY_INVALID']);
      const after = await fetchJson(
        `${gateway.url}/poll?topic=${topic}&timeout=0&lastEventId=${encodeURIComponent(first)}`,
      );
      expect({ target: publisher.target, events: after.body.events }).toEqual({
        target: publisher.target,
        events: [],
      });
    }
  });
});
