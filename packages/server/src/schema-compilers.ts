/**
 * Fastify's validation and serialization compilers (Ajv through @fastify/ajv-compiler,
 * fast-json-stringify), loaded the first time a route with a schema needs one rather than when
 * Fastify starts. None of the gateway's routes has a schema (the API validates in its handlers,
 * with its own error codes), and loading them costs every gateway about 3 MB of RSS and a
 * hundred modules. Fastify's own copies, resolved from where Fastify is installed; each made
 * once, as Fastify makes its defaults, so that its pool of compilers (one Ajv per set of shared
 * schemas and options) is shared by every route and context.
 */
import type { FastifyServerOptions } from 'fastify';

type Factories = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;
type BuildValidator = NonNullable<Factories['buildValidator']>;
type BuildSerializer = NonNullable<Factories['buildSerializer']>;

let validator: BuildValidator | undefined;
let serializer: BuildSerializer | undefined;

export const fastifyCompilersOnDemand: Required<Factories> = {
  buildValidator: (...args) =>
    (validator ??= fastifyDependency<BuildValidator>('@fastify/ajv-compiler'))(...args),
  buildSerializer: (...args) =>
    (serializer ??= fastifyDependency<BuildSerializer>('@fastify/fast-json-stringify-compiler'))(
      ...args,
    ),
};

/** A selector module of Fastify's (`module.exports = function Selector() {...}`), called once. */
function fastifyDependency<T>(name: string): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand (above)
  const selector = require(
    require.resolve(name, { paths: [require.resolve('fastify')] }),
  ) as () => T;
  return selector();
}
