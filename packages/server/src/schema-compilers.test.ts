import Fastify from 'fastify';
import { fastifyCompilersOnDemand } from './schema-compilers';

/**
 * The on-demand compilers are Fastify's own: a route with a schema, on an instance built with
 * them, validates its body and serializes its reply exactly as with Fastify's defaults.
 */
describe('fastifyCompilersOnDemand', () => {
  it('validates and serializes a route that has a schema', async () => {
    const app = Fastify({ schemaController: { compilersFactory: fastifyCompilersOnDemand } });
    app.post(
      '/echo',
      {
        schema: {
          body: {
            type: 'object',
            required: ['n'],
            properties: { n: { type: 'integer', minimum: 1 } },
          },
          response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } },
        },
      },
      async (request) => ({ ...(request.body as { n: number }), secret: 'not in the schema' }),
    );
    try {
      const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/echo`;
      const post = (body: unknown) =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const ok = await post({ n: 2 });
      expect(ok.status).toBe(200);
      // The serializer writes only what the response schema names.
      expect(await ok.json()).toEqual({ n: 2 });
      const bad = await post({ n: 0 });
      expect(bad.status).toBe(400);
      const error = (await bad.json()) as { code: string; message: string };
      expect(error.code).toBe('FST_ERR_VALIDATION');
      expect(error.message).toMatch(/must be >= 1/);
    } finally {
      await app.close();
    }
  });

  it('makes one pool of validators, as Fastify does: the same schemas and options, one compiler', () => {
    type Args = Parameters<typeof fastifyCompilersOnDemand.buildValidator>;
    const args = [{}, { customOptions: {}, plugins: [] }] as unknown as Args;
    const first = fastifyCompilersOnDemand.buildValidator(...args);
    expect(fastifyCompilersOnDemand.buildValidator(...args)).toBe(first);
  });
});
