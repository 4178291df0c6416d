/**
 * Fastify's validation and serialization compilers (Ajv through @fastify/ajv-compiler,
 * fast-json-stringify), loaded the first time a route with a schema needs one rather than when
 * Fastify starts. None of the gateway's routes has a schema (the API validates in its handlers,
 * with its own error codes), and loading them costs every gateway about 3 MB of RSS and a
 * hundred modules. Fastify's own copies, resolved from where Fastify is installed.
 */
export const fastifyCompilersOnDemand = {
  buildValidator: (...args: unknown[]) => fastifyDependency('@fastify/ajv-compiler')()(...args),
  buildSerializer: (...args: unknown[]) =>
    fastifyDependency('@fastify/fast-json-stringify-compiler')()(...args),
};

function fastifyDependency(name: string) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand (above)
  return require(require.resolve(name, { paths: [require.resolve('fastify')] }));
}
